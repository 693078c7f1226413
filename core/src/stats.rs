//! Counters and recent-window measurements behind `getStats()`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::metrics::{Hist, LatencySummary};

/// Whole seconds from the first call to `at`, on the monotonic clock: the time base of the
/// received-rate window, so recording an event reuses the instant it was read at instead of
/// reading the clock again.
fn mono_sec(at: Instant) -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    at.saturating_duration_since(*BASE.get_or_init(Instant::now))
        .as_secs()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

const RATE_SLOTS: usize = 10;

/// Live counters of one client.
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) published: AtomicU64,
    pub(crate) publish_failed: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) handler_failed: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) invalid: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) total_subscriptions: AtomicU64,
    pub(crate) total_connections: AtomicU64,
    pub(crate) filtered: AtomicU64,
    pub(crate) failovers: AtomicU64,
    pub(crate) redirects: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) reclaimed: AtomicU64,
    pub(crate) trimmed_unread: AtomicU64,
    pub(crate) persistent_published: AtomicU64,
    pub(crate) persistent_publish_only: AtomicU64,
    pub(crate) handlers_late_completed: AtomicU64,
    /// Publish round trip (event encoded to Redis's answer).
    pub(crate) publish_rtt: Hist,
    /// Publish-to-handler latency (the event's timestamp to its handler's start).
    pub(crate) latency: Hist,
    /// Handler call durations.
    pub(crate) handler: Hist,
    rate: Mutex<RateWindow>,
}

/// Where a face reports handler runs that finished after the core stopped waiting for them
/// ([`StatsSnapshot::handlers_late_completed`]); from
/// [`EventBusClient::late_completions`](crate::EventBusClient::late_completions).
#[derive(Debug, Clone)]
pub struct LateCompletions(pub(crate) std::sync::Arc<Stats>);

impl LateCompletions {
    /// One more handler run finished late. Call it once per run.
    pub fn record(&self) {
        self.0.handlers_late_completed.fetch_add(1, Relaxed);
    }
}

/// Per-second buckets of received events over the last `RATE_SLOTS` seconds.
#[derive(Debug, Default)]
struct RateWindow {
    slots: [(u64, u64); RATE_SLOTS], // (second, count)
}

impl RateWindow {
    fn add(&mut self, sec: u64) {
        let i = (sec as usize) % RATE_SLOTS;
        if self.slots[i].0 != sec {
            self.slots[i] = (sec, 0);
        }
        self.slots[i].1 += 1;
    }

    fn rate(&self, now_sec: u64) -> f64 {
        // Full seconds only: the current second is still filling.
        let total: u64 = self
            .slots
            .iter()
            .filter(|(s, _)| *s < now_sec && now_sec - *s < RATE_SLOTS as u64)
            .map(|(_, c)| c)
            .sum();
        total as f64 / (RATE_SLOTS as f64 - 1.0)
    }
}

/// The `getStats()` snapshot: the TS `EventBusStats` fields plus this library's additions.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    /// Open connections (publisher + subscriber that are up).
    pub active_connections: u64,
    /// Connections opened since `connect()`, reconnects included.
    pub total_connections: u64,
    /// Successful publishes.
    pub events_published: u64,
    /// Valid events read from the broker.
    pub events_received: u64,
    /// Handler runs that succeeded.
    pub events_delivered: u64,
    /// Failed publishes + handler failures (after retries) + invalid messages.
    pub events_failed: u64,
    /// Live subscriptions.
    pub active_subscriptions: u64,
    /// Subscriptions created since start.
    pub total_subscriptions: u64,
    /// Rooms joined (Socket.IO).
    pub active_rooms: u64,
    /// Mean publish-to-handler-start latency over every event since start (ms).
    pub average_latency: f64,
    /// p95 of the same (ms).
    pub p95_latency: f64,
    /// p99 of the same (ms).
    pub p99_latency: f64,
    /// The latency distributions (HDR histograms over every event since start) as
    /// count/mean/p50/p95/p99/max in ms.
    pub latency: Latencies,
    /// Events received per second over the last few seconds.
    pub messages_per_second: f64,
    /// `eventsFailed / (eventsPublished + eventsReceived + invalidMessages)`: computed here
    /// once, for every face.
    pub error_rate: f64,
    /// ms since `connect()`.
    pub uptime: u64,
    /// Events dropped because a subscription's queue was full.
    pub events_dropped: u64,
    /// Messages that were not valid events.
    pub invalid_messages: u64,
    /// Reconnections of either connection.
    pub reconnects: u64,
    /// Events skipped by subscription filters.
    pub events_filtered: u64,
    /// Process memory, like Node's `process.memoryUsage()` (rss from /proc; heap fields 0).
    pub memory_usage: MemoryUsage,
    /// Failovers followed: a master switch announced by the sentinels, or a cluster link that
    /// moved to another node because its node failed.
    pub failovers: u64,
    /// Sharded pub/sub: publishes sent again after `MOVED`/`ASK`, and channels subscribed again
    /// after their slot moved.
    pub redirects: u64,
    /// Durable delivery: entries moved to a dead-letter stream after `maxDeliveries`.
    pub events_dead_lettered: u64,
    /// Durable delivery: pending entries claimed from idle consumers.
    pub events_reclaimed: u64,
    /// Durable delivery: entries trimmed from a stream before a group read them.
    pub events_trimmed_unread: u64,
    /// Persistent publishes appended to their type's stream.
    pub persistent_published: u64,
    /// Persistent publishes stored in their stream whose PUBLISH (the live copy) failed:
    /// successes for durable readers, missed by live subscribers.
    pub persistent_live_failed: u64,
    /// Handler runs that finished after the core had stopped waiting for them (their timeout
    /// passed, or the subscription or client went away first), each counted once. The core
    /// cannot stop a host's code: a face signals the handler where its host allows (Node: an
    /// `AbortSignal`; Python asyncio: the task is cancelled) and reports the run when it
    /// finishes anyway.
    pub handlers_late_completed: u64,
    /// Durable subscriptions of this client.
    pub durable: Vec<crate::durable::DurableStats>,
    /// Where the client is connected (absent before `connect()`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topology: Option<TopologySnapshot>,
}

/// `getStats().latency`.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Latencies {
    /// Publish round trip: event encoded to Redis's answer.
    pub publish: LatencySummary,
    /// Publish-to-handler: the event's `metadata.timestamp` to its handler's start (includes
    /// clock skew between hosts).
    pub delivery: LatencySummary,
    /// One handler call.
    pub handler: LatencySummary,
}

/// `getStats().topology`: the servers the client knows and which ones its connections use.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TopologySnapshot {
    /// `single`, `sentinel`, `cluster`, `cluster-sharded` or `memory`.
    pub mode: String,
    /// Every server the client knows of (`host:port`): the server; the sentinels; the cluster
    /// masters last read and the seeds.
    pub nodes: Vec<String>,
    /// The masters: the server; the one the sentinels name; the cluster's, by slot.
    pub masters: Vec<String>,
    /// The node(s) each connection uses right now.
    pub connections: ConnectionNodes,
}

/// Which node each link is connected to (sharded pub/sub uses one per master it needs).
#[derive(Debug, Clone, Serialize, Default)]
pub struct ConnectionNodes {
    /// The publisher link's node(s).
    pub publisher: Vec<String>,
    /// The subscriber link's node(s).
    pub subscriber: Vec<String>,
}

/// `MemoryUsage`.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct MemoryUsage {
    /// Not tracked natively (0); the Node face fills it from V8.
    pub heap_used: u64,
    /// Not tracked natively (0); the Node face fills it from V8.
    pub heap_total: u64,
    /// Not tracked natively (0).
    pub external: u64,
    /// Resident set size in bytes.
    pub rss: u64,
}

/// Resident set size of this process in bytes (Linux; 0 elsewhere).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

impl Stats {
    /// An event read off the connection at `at`.
    pub(crate) fn record_received(&self, at: Instant) {
        self.received.fetch_add(1, Relaxed);
        let sec = mono_sec(at);
        self.rate.lock().unwrap_or_else(|p| p.into_inner()).add(sec);
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let latency = Latencies {
            publish: self.publish_rtt.summary(),
            delivery: self.latency.summary(),
            handler: self.handler.summary(),
        };
        let mps = self
            .rate
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .rate(mono_sec(Instant::now()));
        let published = self.published.load(Relaxed);
        let received = self.received.load(Relaxed);
        let invalid = self.invalid.load(Relaxed);
        let failed =
            self.publish_failed.load(Relaxed) + self.handler_failed.load(Relaxed) + invalid;
        let denom = published + received + invalid;
        StatsSnapshot {
            events_published: published,
            events_received: received,
            events_delivered: self.delivered.load(Relaxed),
            events_failed: failed,
            total_subscriptions: self.total_subscriptions.load(Relaxed),
            total_connections: self.total_connections.load(Relaxed),
            failovers: self.failovers.load(Relaxed),
            redirects: self.redirects.load(Relaxed),
            average_latency: latency.delivery.mean,
            p95_latency: latency.delivery.p95,
            p99_latency: latency.delivery.p99,
            latency,
            messages_per_second: mps,
            error_rate: if denom > 0 {
                failed as f64 / denom as f64
            } else {
                0.0
            },
            events_dropped: self.dropped.load(Relaxed),
            invalid_messages: invalid,
            reconnects: self.reconnects.load(Relaxed),
            events_filtered: self.filtered.load(Relaxed),
            events_dead_lettered: self.dead_lettered.load(Relaxed),
            events_reclaimed: self.reclaimed.load(Relaxed),
            events_trimmed_unread: self.trimmed_unread.load(Relaxed),
            persistent_published: self.persistent_published.load(Relaxed),
            persistent_live_failed: self.persistent_publish_only.load(Relaxed),
            handlers_late_completed: self.handlers_late_completed.load(Relaxed),
            memory_usage: MemoryUsage {
                rss: rss_bytes(),
                ..Default::default()
            },
            ..Default::default()
        }
    }
}
