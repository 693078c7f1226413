//! Connection state changes, delivered to listeners registered on the client
//! (Node events, Python callbacks, the C state callback).

use std::sync::{Arc, RwLock};

use serde::Serialize;

/// The delay before reconnect attempt `attempt` (1-based): `base` doubling up to `cap`, with
/// jitter in [delay/2, delay] so clients do not all return at the same instant after a server
/// restart. Shared by the Redis links and the Socket.IO link.
pub(crate) fn reconnect_delay(
    base: std::time::Duration,
    cap: std::time::Duration,
    attempt: u64,
) -> std::time::Duration {
    use rand::Rng;
    let base = base.as_millis().max(1) as f64;
    let cap = cap.as_millis().max(1) as f64;
    let exp = (base * 2f64.powi(attempt.saturating_sub(1).min(30) as i32)).min(cap);
    let ms = rand::rng().random_range(exp / 2.0..=exp);
    std::time::Duration::from_millis(ms as u64)
}

/// Which of the client's two Redis connections an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    /// The publishing connection.
    Publisher,
    /// The subscribing connection.
    Subscriber,
    /// The Socket.IO hub connection.
    Socketio,
}

/// A state change.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum StateEvent {
    /// A connection is up (first connect or after a reconnect).
    Connected {
        /// Which connection.
        connection: Link,
        /// True after a reconnect.
        reconnect: bool,
    },
    /// A connection was lost.
    Disconnected {
        /// Which connection.
        connection: Link,
        /// Why, as far as can be told.
        reason: String,
    },
    /// A reconnect attempt is scheduled.
    Reconnecting {
        /// Which connection.
        connection: Link,
        /// Attempt number (1-based).
        attempt: u64,
        /// Delay before it, ms.
        delay: u64,
    },
    /// Events may have been missed while the subscriber was disconnected (pub/sub is
    /// at-most-once). Emitted once the subscriptions are back.
    Gap {
        /// Since when events may have been missed (ISO): the last moment the subscriber
        /// connection was known to deliver (a message or a heartbeat answer), which for a
        /// half-open link is before the loss was noticed.
        from: String,
        /// When the subscriptions were restored (ISO).
        to: String,
        /// Length of the gap, ms.
        duration: u64,
    },
    /// Something failed that the caller could not be told about otherwise (a resubscribe
    /// refused by Redis, ...). The library keeps retrying.
    Error {
        /// Which connection.
        connection: Link,
        /// What failed.
        message: String,
        /// A stable code for errors a program may act on (`DEAD_LETTERED`,
        /// `EVENTS_TRIMMED`, or the error code of a refused resubscribe such as
        /// `PERMISSION_DENIED`); absent otherwise.
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
}

impl StateEvent {
    /// The event name: `connected`, `disconnected`, `reconnecting`, `gap`, `error`.
    pub fn name(&self) -> &'static str {
        match self {
            StateEvent::Connected { .. } => "connected",
            StateEvent::Disconnected { .. } => "disconnected",
            StateEvent::Reconnecting { .. } => "reconnecting",
            StateEvent::Gap { .. } => "gap",
            StateEvent::Error { .. } => "error",
        }
    }

    /// JSON form (`{"type": name, ...fields}`), what the bindings hand to hosts.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A state listener.
pub type StateListener = Arc<dyn Fn(&StateEvent) + Send + Sync>;

/// The listeners of one client.
#[derive(Default)]
pub(crate) struct Emitter {
    listeners: RwLock<Vec<(u64, StateListener)>>,
    next: std::sync::atomic::AtomicU64,
}

impl Emitter {
    pub(crate) fn add(&self, l: StateListener) -> u64 {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.listeners
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, l));
        id
    }

    pub(crate) fn remove(&self, id: u64) -> bool {
        let mut g = self.listeners.write().unwrap_or_else(|p| p.into_inner());
        let before = g.len();
        g.retain(|(i, _)| *i != id);
        g.len() != before
    }

    pub(crate) fn clear(&self) {
        self.listeners
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    pub(crate) fn emit(&self, ev: StateEvent) {
        let ls: Vec<StateListener> = self
            .listeners
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(_, l)| l.clone())
            .collect();
        for l in ls {
            // A listener that panics must not take the connection supervisor down with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| l(&ev)));
        }
    }
}
