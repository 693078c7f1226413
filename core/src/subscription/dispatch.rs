//! Received messages, from the transports to the subscriptions' queues.
//!
//! A message too large or not a valid event is counted and logged (rate-limited), never
//! delivered. A valid one becomes one [`Delivery`] offered to every subscription under its
//! key; with Socket.IO configured each subscription gets an event id once, whichever route
//! brought it first.

use std::sync::atomic::Ordering::Relaxed;

use super::Registry;
use crate::event::Delivery;

impl Registry {
    /// Count (and, rate-limited, log) a message that is not a valid event.
    pub(crate) fn count_invalid(&self, channel: &str, payload: &[u8], reason: &str) {
        let ctx = &self.ctx;
        ctx.stats.invalid.fetch_add(1, Relaxed);
        if let Some(suppressed) = ctx.invalid_log.check() {
            let prefix: String = String::from_utf8_lossy(&payload[..payload.len().min(64)])
                .chars()
                .collect();
            ctx.logger.warn(
                "Invalid message ignored",
                &[
                    ("channel", channel.to_string()),
                    ("reason", reason.to_string()),
                    ("bytes", payload.len().to_string()),
                    ("prefix", format!("{prefix:?}")),
                    ("suppressed", suppressed.to_string()),
                ],
            );
        }
    }

    fn decode(&self, channel: &str, pattern: Option<&str>, payload: Vec<u8>) -> Option<Delivery> {
        let max = self.ctx.max_message_size;
        if payload.len() > max {
            let e = format!(
                "message size ({} bytes) exceeds maximum allowed size ({max} bytes)",
                payload.len(),
            );
            self.count_invalid(channel, &payload, &e);
            return None;
        }
        match Delivery::decode_owned(channel, pattern, payload) {
            Ok(d) => Some(d),
            Err((e, payload)) => {
                self.count_invalid(channel, &payload, e.message());
                None
            }
        }
    }

    /// Hand a message to the subscriptions under its key. Called by the transports for every
    /// message; never blocks. `pattern` is what Redis reported for a pmessage.
    pub(crate) fn dispatch(&self, channel: &str, pattern: Option<&str>, payload: Vec<u8>) {
        let g = self.read();
        let entries = match pattern {
            Some(p) => g.by_pattern(p),
            None => g.by_channel(channel),
        };
        let Some(entries) = entries else {
            return; // a late message for a key just unsubscribed
        };
        let Some(delivery) = self.decode(channel, pattern, payload) else {
            return;
        };
        self.ctx.stats.record_received(delivery.received_at());
        crate::runtime::note_activity();
        let mut seen = self
            .seen
            .as_ref()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()));
        for e in entries {
            if let Some(seen) = seen.as_deref_mut() {
                if !seen.first_time(delivery.id(), e.seq) {
                    continue;
                }
            }
            self.offer(e, &delivery);
        }
    }

    /// An event that came over Socket.IO: it goes to the subscriptions whose pattern matches
    /// its type, except those that already had it (same id) from Redis. Its `channel` is the
    /// event type.
    #[cfg(feature = "socketio")]
    pub(crate) fn dispatch_by_type(&self, payload: &[u8]) {
        let Some(delivery) = self.decode("socket.io", None, payload.to_vec()) else {
            return;
        };
        let ty = delivery.event_type().to_string();
        let g = self.read();
        let mut seen = self
            .seen
            .as_ref()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()));
        let mut received = false;
        let exact = g.channels.get(&ty).map(|v| (None, v));
        let globs = g
            .patterns
            .iter()
            .filter(|(p, _)| crate::glob::matches_pattern(p, &ty))
            .map(|(p, v)| (Some(p.as_str()), v));
        for (pattern, entries) in exact.into_iter().chain(globs) {
            let routed = delivery.routed(&ty, pattern);
            for e in entries {
                if let Some(seen) = seen.as_deref_mut() {
                    if !seen.first_time(delivery.id(), e.seq) {
                        continue;
                    }
                }
                if !received {
                    received = true;
                    self.ctx.stats.record_received(delivery.received_at());
                }
                self.offer(e, &routed);
            }
        }
    }
}
