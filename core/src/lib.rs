//! # event_bus — the Rust core of `@shared-infra/event-bus`
//!
//! Services publish events and subscribe to glob patterns over Redis pub/sub. This crate is
//! the one implementation; the Node (napi-rs), Python (PyO3) and C faces are thin adapters.
//!
//! Where things are:
//! - [`client`]: [`EventBusClient`], the API every face wraps (connect, publish family,
//!   subscribe, health, stats, disconnect).
//! - [`config`]: the TS package's `EventBusConfig` JSON shape and its defaults.
//! - [`event`]: the wire format (SPEC §3): encoding in the TS key order, decoding of received
//!   messages into [`Delivery`].
//! - [`validate`]: the TS package's validation rules and messages.
//! - [`glob`]: Redis's glob matcher, byte for byte.
//! - [`filter`]: subscription filters with the TS operators.
//! - [`subscription`]: the [`Handler`] trait faces implement, the registry, the per-subscription
//!   queues and workers (ordering, concurrency, timeout, retries, drops).
//! - `transport`: Redis (publisher/subscriber supervisors, reconnection, pipelining) and the
//!   in-process memory broker.
//! - [`state`]: connection state events (`connected`, `disconnected`, `reconnecting`, `gap`,
//!   `error`).
//! - [`runtime`]: the one lazily started tokio runtime and the blocking helper.
//! - [`logging`]: the TS log line format, with a pluggable sink.
//!
//! ```no_run
//! # async fn demo() -> event_bus::Result<()> {
//! use std::sync::Arc;
//! use event_bus::{EventBusClient, Delivery, HandlerError};
//! let bus = EventBusClient::from_json(r#"{"serviceName":"svc","redis":{"host":"127.0.0.1","port":6379}}"#)?;
//! bus.connect().await?;
//! bus.subscribe("photo.*", Arc::new(|ev: Delivery| async move {
//!     println!("{} {}", ev.event_type(), ev.data_json());
//!     Ok::<(), HandlerError>(())
//! }), Default::default()).await?;
//! let data = serde_json::value::RawValue::from_string(r#"{"photoId":"p1"}"#.into()).unwrap();
//! let receipt = bus.publish("photo.uploaded", &data, &Default::default()).await;
//! bus.disconnect().await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

#[cfg(feature = "jemalloc")]
pub mod alloc;
pub mod client;
pub mod config;
pub mod error;
pub mod event;
pub mod filter;
pub mod glob;
mod handler;
pub mod logging;
pub mod options;
pub mod runtime;
#[cfg(feature = "socketio")]
mod socketio;
pub mod state;
pub mod stats;
pub mod subscription;
mod transport;
pub mod validate;

pub use client::{
    BatchItem, EventBusClient, HealthReport, IntoBatchItem, JsonItem, OutcomeJson, OutcomeShape,
    PublishFailure, PublishOutcome, PublishReceipt, VERSION,
};
pub use config::{EventBusConfig, LogLevel};
pub use error::{Error, ErrorKind, Result};
pub use event::{Delivery, PublishOptions};
pub use glob::{is_pattern, matches_pattern};
pub use handler::outcomes;
pub use handler::{Handler, HandlerError, HandlerFuture};
pub use outcomes::{batch_outcomes, BatchOutcome, OutcomeReporter, SharedStates};
pub use state::{Link, StateEvent};
pub use stats::StatsSnapshot;
pub use subscription::{SubscriptionInfo, SubscriptionOptions};
pub use validate::EventValidator;
