//! # event-bus-node — the Node.js face of the event bus (napi-rs 3)
//!
//! The native half of the npm package `@shared-infra/event-bus`. It adapts the core
//! ([`event_bus::EventBusClient`]) to JavaScript and does nothing else: validation, options,
//! channel choice, the envelope, glob matching, timeouts, retries, counters and log lines all
//! live in the core. The documented, TS-compatible surface is hand-written in `js/index.js` +
//! `js/index.d.ts`.
//!
//! - [`error`]: the one mapping from core errors to JS errors (`code` + the core's message),
//!   and panics turned into exceptions.
//! - [`dispatch`]: events into JS in batches, handler outcomes back, promises settled from the
//!   core's runtime.
//! - [`client`]: the `NativeClient` class.
//! - [`validate`]: the validator, glob and log-format functions.
//!
//! Data crosses as JSON text: JS calls `JSON.stringify` (V8's serializer is the fastest way to
//! walk a JS object graph) and the core takes the text as raw JSON; received events cross back
//! as one JSON array per batch that JS parses with one `JSON.parse`.

pub mod client;
pub mod dispatch;
pub mod error;
pub mod validate;
