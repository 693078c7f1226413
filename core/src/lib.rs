//! # event_bus — the Rust core of `@shared-infra/event-bus`
//!
//! Services publish events and subscribe to glob patterns over Redis pub/sub. This crate is
//! the one implementation; the Node (napi-rs), Python (PyO3) and C faces are thin adapters.
//!
//! Where things are (each file starts with what lives there and why):
//! - [`client`]: [`EventBusClient`], the API every face wraps. `client/mod.rs` is the handle,
//!   connect/disconnect and subscribe/unsubscribe; `publish.rs` the publish family,
//!   `publish_batch` and `queue_batch` (one path: validate and encode, hand over, answer);
//!   `outcome.rs` what a publish returns ([`PublishReceipt`], [`PublishFailure`],
//!   [`OutcomeJson`]) and the batch items; `rooms.rs` the Socket.IO room calls; `health.rs`
//!   `healthCheck()` and `getStats()`.
//! - [`options`]: publish and subscription options, read from JSON and checked (the one
//!   interpreter of them); [`config`]: the TS package's `EventBusConfig` JSON shape and its
//!   defaults; [`validate`]: the TS package's event validation rules and messages;
//!   [`error`]: [`Error`] and its codes.
//! - [`event`]: the wire format. `encode.rs` writes the outgoing envelope in the TS key order
//!   and picks the channel; `decode.rs` reads received messages into [`Delivery`].
//! - `handler`: the contract with a face's handlers ([`Handler`], [`HandlerError`]) and, in
//!   [`outcomes`], how a host reports the outcomes of a batch of events.
//! - [`subscription`]: the registry (`mod.rs`), received messages to subscriptions
//!   (`dispatch.rs`), each subscription's bounded queue and worker: ordering, concurrency,
//!   timeout, retries, drops (`worker.rs`), and the duplicate check for events arriving by
//!   Redis and Socket.IO (`seen.rs`). [`filter`]: subscription filters with the TS operators;
//!   [`glob`]: Redis's glob matcher, byte for byte.
//! - `transport`: the brokers. `transport/redis/` has `mod.rs` (the `RedisTransport` glue),
//!   `connect.rs` (connecting, backoff, reconnect failure reports), `requests.rs` (the
//!   caller's side of a publish: states, offline queue, answers), `publisher.rs` (the
//!   pipelining publisher task) and `subscriber.rs` (the subscriber task: push dispatch,
//!   resubscribe, heartbeat); `transport/memory.rs` is the in-process memory broker.
//! - `socketio` (feature `socketio`): rooms over a Socket.IO hub. `mod.rs` is the client's
//!   handle, `connection.rs` the connection task, `protocol.rs` packets and acks,
//!   `engine.rs` the Engine.IO transports.
//! - [`durable`]: durable delivery on Redis Streams (persistent publishes, consumer-group
//!   subscriptions, dead letters); `client/durable.rs` is its part of the client API and
//!   `transport/redis/streams.rs` its connections.
//! - [`state`]: connection state events (`connected`, `disconnected`, `reconnecting`, `gap`,
//!   `error`); [`stats`]: the counters behind `getStats()`.
//! - [`runtime`]: the one lazily started tokio runtime and the blocking helper; `alloc`
//!   (feature `jemalloc`): the allocator of the Node and Python faces.
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
pub mod durable;
pub mod error;
pub mod event;
pub mod filter;
pub mod glob;
mod handler;
mod input;
pub mod logging;
pub mod metrics;
pub mod options;
pub mod runtime;
#[cfg(feature = "socketio")]
mod socketio;
/// Hooks into the Socket.IO packet parsers for fuzzing and property tests; not API.
#[cfg(feature = "socketio")]
#[doc(hidden)]
pub use socketio::hooks as socketio_hooks;
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
pub use durable::tail::{StreamTail, TailEntry, TailFrom};
pub use durable::{DeadLetter, DurableStats};
pub use error::{Error, ErrorKind, Result};
pub use event::{Delivery, DeliveryInfo, PublishOptions};
pub use glob::{is_pattern, matches_pattern};
pub use handler::outcomes;
pub use handler::{dropping_on_timeout, Handler, HandlerError, HandlerFuture};
pub use options::{DurableOptions, DurablePolicy, StartFrom, SubscriptionTarget};
pub use outcomes::{batch_outcomes, BatchOutcome, OutcomeReporter, SharedStates};
pub use state::{Link, StateEvent};
pub use stats::{LateCompletions, StatsSnapshot};
pub use subscription::{SubscriptionInfo, SubscriptionOptions};
pub use validate::EventValidator;
