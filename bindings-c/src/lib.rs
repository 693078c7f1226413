//! C ABI of the event bus: the `eb_*` functions of `include/event_bus.h`.
//!
//! cbindgen reads this crate (starting here and following the `mod` declarations) to write the
//! header; the `///` comments of the exported items become the header's documentation. One file
//! per concern:
//! - [`status`]: `eb_status`, `eb_strerror`, `eb_last_error`, the kind-to-code mapping and the
//!   one guard every `extern "C"` body runs in;
//! - [`strings`]: C string arguments, JSON checks, strings handed out and `eb_string_free`;
//! - [`callback`]: context pointers with their `drop`, and the inside-a-callback marker;
//! - [`client`]: the `eb_client` handle registry and the lifecycle (`eb_client_new` ...
//!   `eb_shutdown`);
//! - [`publish`], [`subscribe`], [`rooms`]: the three ways of moving events;
//! - [`dead`]: the dead letters of durable subscriptions (list, replay, purge);
//! - [`monitor`]: health, stats and state-change callbacks; [`log`]: the log sink.
//!
//! Every body is `guard(|| ...)`: errors become an [`eb_status`] plus the thread's last-error
//! message, panics are caught. Blocking calls wait on the core's shared runtime with
//! `event_bus::runtime::block_on`, which is safe from C threads and from inside handlers.
#![allow(non_camel_case_types)]
#![deny(unsafe_op_in_unsafe_fn)]

mod callback;
mod client;
mod dead;
mod log;
mod monitor;
mod publish;
mod rooms;
mod status;
mod strings;
mod subscribe;

pub use callback::eb_drop_fn;
pub use client::eb_client;
pub use log::{eb_log_fn, eb_log_level};
pub use monitor::eb_state_fn;
pub use publish::{eb_publish_result, EB_ID_BUFFER_SIZE, EB_TIME_BUFFER_SIZE};
pub use status::eb_status;
pub use subscribe::{eb_event, eb_handler, eb_handler_fn};

use std::ffi::c_char;

use status::guard;

/// The library version (static string, never freed).
#[no_mangle]
pub extern "C" fn eb_version() -> *const c_char {
    guard(|| Ok(concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()))
}
