//! Durable delivery on Redis Streams: what persistent publishes write and durable
//! subscriptions read. `docs/durable.md` says what it guarantees.
//!
//! - this file: the key names (one hash tag per event type, so a type's stream, dead letters
//!   and dedupe keys share a cluster slot) and the public records ([`DeadLetter`],
//!   [`DurableStats`]);
//! - `reader`: a durable subscription's tasks (read, claim, maintenance) and how an entry is
//!   handled, acknowledged or dead-lettered;
//! - `dead`: reading, replaying and purging dead letters;
//! - `tail`: reading a type's stream outside any group (an observer, e.g. `event-bus tail
//!   --stream`).
//!
//! The Redis side (which connection, which node) lives in `transport::redis::streams`.

pub(crate) mod dead;
pub(crate) mod reader;
pub mod tail;
mod value;

use serde::Serialize;
use serde_json::Value;

/// The stream of event type `t`: `<prefix>events:{<t>}`.
pub fn stream_key(prefix: &str, t: &str) -> String {
    format!("{prefix}events:{{{t}}}")
}

/// The dead-letter stream of event type `t`: `<prefix>events:{<t>}:dead`.
pub fn dead_key(prefix: &str, t: &str) -> String {
    format!("{prefix}events:{{{t}}}:dead")
}

/// The key that marks event `id` of type `t` handled by `group`:
/// `<prefix>events:{<t>}:seen:<group>:<id>`.
pub fn seen_key(prefix: &str, t: &str, group: &str, id: &str) -> String {
    format!("{prefix}events:{{{t}}}:seen:{group}:{id}")
}

/// An entry that failed `maxDeliveries` times, as kept in the type's dead-letter stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// The event envelope as published.
    pub event: Value,
    /// Why the last delivery failed: `{message, code?}`.
    pub error: Value,
    /// Deliveries made before it was dead-lettered.
    pub deliveries: u64,
    /// When it was dead-lettered (ms since the epoch).
    pub failed_at: u64,
    /// Its id in the dead-letter stream.
    pub stream_id: String,
    /// Its id in the type's stream when it failed.
    pub original_id: String,
}

impl DeadLetter {
    /// JSON form, camelCase (`{event, error, deliveries, failedAt, streamId, originalId}`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// One durable subscription in `getStats().durable`.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DurableStats {
    /// Subscription id.
    pub id: String,
    /// Consumer group.
    pub group: String,
    /// This member's consumer name.
    pub consumer: String,
    /// Event types read.
    pub types: Vec<String>,
    /// Entries delivered to the group and not acknowledged yet, all types (XINFO GROUPS).
    pub pending: u64,
    /// Entries not yet delivered to the group, all types; `None` when Redis cannot tell
    /// (after trimming or deletions).
    pub lag: Option<u64>,
    /// Entries this subscription dead-lettered.
    pub dead_lettered: u64,
    /// Entries this subscription claimed from idle members (or its own earlier self).
    pub reclaimed: u64,
}
