//! Latency distributions (HDR histograms) and the Prometheus text exposition of a client.
//!
//! Three distributions are kept: the publish round trip (event encoded to Redis's answer),
//! publish-to-handler latency (the event's `metadata.timestamp` to its handler's start, so it
//! includes clock skew between hosts) and handler duration (one call, retries counted apart).
//! The client keeps each over all its events; every subscription keeps its own latency and
//! handler duration too, for the per-subscription series.
//!
//! Recording costs one short, uncontended-in-practice `Mutex` and an array increment: the
//! histogram has a fixed size (microseconds from 1 µs to one hour at three significant digits)
//! and never allocates after creation. Values above the range are clamped to its top.
//!
//! [`render`] writes the exposition format version 0.0.4 (`# HELP`, `# TYPE`, samples with
//! escaped label values); histogram buckets are read off the HDR histogram at fixed bounds.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest value a histogram tracks, in microseconds (one hour).
const MAX_US: u64 = 3_600_000_000;

/// Bucket bounds of the exported latency histograms, in seconds (100 µs to 30 s).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

struct HistInner {
    h: Histogram<u64>,
    /// Exact sum of the recorded values (µs), for `_sum`.
    sum_us: u64,
}

/// One latency distribution, in microseconds.
pub struct Hist {
    inner: Mutex<HistInner>,
}

impl std::fmt::Debug for Hist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hist")
            .field("summary", &self.summary())
            .finish()
    }
}

impl Default for Hist {
    fn default() -> Self {
        Hist {
            inner: Mutex::new(HistInner {
                h: Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds"),
                sum_us: 0,
            }),
        }
    }
}

/// A distribution summary in milliseconds, as `getStats()` reports it.
#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Mean (ms).
    pub mean: f64,
    /// Median (ms).
    pub p50: f64,
    /// 95th percentile (ms).
    pub p95: f64,
    /// 99th percentile (ms).
    pub p99: f64,
    /// Largest value (ms).
    pub max: f64,
}

/// A histogram read for the exposition: cumulative counts at [`LATENCY_BUCKETS`], count, sum (s).
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    /// Cumulative count at each bound of [`LATENCY_BUCKETS`].
    pub cumulative: Vec<u64>,
    /// All values (the `+Inf` bucket).
    pub count: u64,
    /// Sum of the values in seconds.
    pub sum_seconds: f64,
}

impl Hist {
    fn lock(&self) -> std::sync::MutexGuard<'_, HistInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record one value in microseconds (0 counts as 1 µs; above an hour as an hour).
    pub fn record_us(&self, us: u64) {
        let v = us.clamp(1, MAX_US);
        let mut g = self.lock();
        g.h.saturating_record(v);
        g.sum_us = g.sum_us.saturating_add(us);
    }

    /// Record one duration.
    pub fn record(&self, d: std::time::Duration) {
        self.record_us(d.as_micros().min(u128::from(u64::MAX)) as u64);
    }

    /// Record many values under one lock.
    pub fn record_all(&self, values_us: impl IntoIterator<Item = u64>) {
        let mut g = self.lock();
        for us in values_us {
            g.h.saturating_record(us.clamp(1, MAX_US));
            g.sum_us = g.sum_us.saturating_add(us);
        }
    }

    /// p50/p95/p99/max/mean in milliseconds (all 0 before the first value).
    pub fn summary(&self) -> LatencySummary {
        let g = self.lock();
        let h = &g.h;
        if h.is_empty() {
            return LatencySummary::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        LatencySummary {
            count: h.len(),
            mean: g.sum_us as f64 / h.len() as f64 / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }

    /// Cumulative counts at [`LATENCY_BUCKETS`] (to the histogram's resolution).
    pub fn buckets(&self) -> Buckets {
        let g = self.lock();
        let cumulative = LATENCY_BUCKETS
            .iter()
            .map(|s| {
                let us = (s * 1_000_000.0).round() as u64;
                g.h.count_between(0, us)
            })
            .collect();
        Buckets {
            cumulative,
            count: g.h.len(),
            sum_seconds: g.sum_us as f64 / 1_000_000.0,
        }
    }
}

/// What one subscription counts, beside the client's totals.
#[derive(Debug, Default)]
pub struct SubscriptionMetrics {
    /// Publish-to-handler latency of this subscription's events.
    pub latency: Hist,
    /// Handler call durations.
    pub handler: Hist,
    /// Handler runs that succeeded.
    pub delivered: AtomicU64,
    /// Handler runs that failed after their retries.
    pub failed: AtomicU64,
    /// Retries of a handler call.
    pub retries: AtomicU64,
    /// Events dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Events skipped by the filter.
    pub filtered: AtomicU64,
}

/// One subscription as the exposition shows it.
pub struct SubscriptionView<'a> {
    /// Subscription id.
    pub id: &'a str,
    /// Its pattern.
    pub pattern: &'a str,
    /// Events waiting in its queue.
    pub pending: usize,
    /// Its counters and histograms.
    pub metrics: &'a SubscriptionMetrics,
}

/// Everything [`render`] writes, gathered by the client.
pub struct Exposition<'a> {
    /// `serviceName`.
    pub service: &'a str,
    /// Transport mode: `single`, `sentinel`, `cluster`, `cluster-sharded`, `memory`.
    pub transport: &'a str,
    /// 1 while connected.
    pub connected: bool,
    /// The `getStats()` snapshot (counters and gauges).
    pub stats: &'a crate::stats::StatsSnapshot,
    /// Publish round trip.
    pub publish: &'a Hist,
    /// Live subscriptions.
    pub subscriptions: Vec<SubscriptionView<'a>>,
}

/// A label value escaped as the text format wants it (`\\`, `\"`, `\n`).
fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{k}=\"{}\"", escape(v));
    }
    s.push('}');
    s
}

/// A float as the text format writes it (`+Inf`, integers without a fraction).
fn num(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v}")
    }
}

struct Writer {
    out: String,
}

impl Writer {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, l: &str, v: f64) {
        let _ = writeln!(self.out, "{name}{l} {}", num(v));
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, l: &str, v: f64) {
        self.head(name, kind, help);
        self.sample(name, l, v);
    }

    fn histogram(&mut self, name: &str, base: &[(&str, &str)], b: &Buckets) {
        for (bound, c) in LATENCY_BUCKETS.iter().zip(&b.cumulative) {
            let le = num(*bound);
            let mut l = base.to_vec();
            l.push(("le", &le));
            self.sample(&format!("{name}_bucket"), &labels(&l), *c as f64);
        }
        let mut l = base.to_vec();
        l.push(("le", "+Inf"));
        self.sample(&format!("{name}_bucket"), &labels(&l), b.count as f64);
        let base_l = labels(base);
        self.sample(&format!("{name}_sum"), &base_l, b.sum_seconds);
        self.sample(&format!("{name}_count"), &base_l, b.count as f64);
    }
}

/// The Prometheus text exposition of one client.
pub fn render(x: &Exposition<'_>) -> String {
    let mut w = Writer {
        out: String::with_capacity(4096 + x.subscriptions.len() * 4096),
    };
    let base = [("service", x.service), ("transport", x.transport)];
    let bl = labels(&base);
    let s = x.stats;
    let counters: [(&str, &str, u64); 12] = [
        (
            "eventbus_events_published_total",
            "Events published (Redis answered).",
            s.events_published,
        ),
        (
            "eventbus_events_received_total",
            "Valid events read from the broker.",
            s.events_received,
        ),
        (
            "eventbus_events_delivered_total",
            "Handler runs that succeeded.",
            s.events_delivered,
        ),
        (
            "eventbus_events_failed_total",
            "Failed publishes, handler failures after retries and invalid messages.",
            s.events_failed,
        ),
        (
            "eventbus_events_dropped_total",
            "Events dropped because a subscription queue was full.",
            s.events_dropped,
        ),
        (
            "eventbus_events_filtered_total",
            "Events skipped by subscription filters.",
            s.events_filtered,
        ),
        (
            "eventbus_invalid_messages_total",
            "Received messages that were not valid events.",
            s.invalid_messages,
        ),
        (
            "eventbus_reconnects_total",
            "Reconnections of either connection.",
            s.reconnects,
        ),
        (
            "eventbus_connections_opened_total",
            "Connections opened, reconnects included.",
            s.total_connections,
        ),
        (
            "eventbus_failovers_total",
            "Failovers followed (sentinel master switch, cluster node failure).",
            s.failovers,
        ),
        (
            "eventbus_redirects_total",
            "Sharded pub/sub publishes or subscriptions sent again after a slot moved.",
            s.redirects,
        ),
        (
            "eventbus_handlers_late_completed_total",
            "Handler runs that finished after the client stopped waiting for them (timed out).",
            s.handlers_late_completed,
        ),
    ];
    for (name, help, v) in counters {
        w.one(name, "counter", help, &bl, v as f64);
    }
    w.one(
        "eventbus_subscriptions_created_total",
        "counter",
        "Subscriptions created since start.",
        &bl,
        s.total_subscriptions as f64,
    );
    let gauges: [(&str, &str, f64); 6] = [
        (
            "eventbus_connected",
            "1 between connect() and disconnect().",
            if x.connected { 1.0 } else { 0.0 },
        ),
        (
            "eventbus_connections_active",
            "Open connections (publisher, subscriber, Socket.IO hub).",
            s.active_connections as f64,
        ),
        (
            "eventbus_subscriptions_active",
            "Live subscriptions.",
            s.active_subscriptions as f64,
        ),
        (
            "eventbus_rooms_active",
            "Rooms joined on the Socket.IO hub.",
            s.active_rooms as f64,
        ),
        (
            "eventbus_uptime_seconds",
            "Seconds since connect().",
            s.uptime as f64 / 1000.0,
        ),
        (
            "eventbus_process_resident_memory_bytes",
            "Resident set size of the process.",
            s.memory_usage.rss as f64,
        ),
    ];
    for (name, help, v) in gauges {
        w.one(name, "gauge", help, &bl, v);
    }

    w.head(
        "eventbus_publish_duration_seconds",
        "histogram",
        "Publish round trip: event encoded to Redis's answer.",
    );
    w.histogram(
        "eventbus_publish_duration_seconds",
        &base,
        &x.publish.buckets(),
    );

    let sub_labels = |v: &SubscriptionView<'_>| {
        labels(&[
            ("service", x.service),
            ("transport", x.transport),
            ("subscription", v.id),
            ("pattern", v.pattern),
        ])
    };
    type Read = fn(&SubscriptionView<'_>) -> f64;
    let per_sub: [(&str, &str, &str, Read); 6] = [
        (
            "eventbus_subscription_delivered_total",
            "counter",
            "Handler runs that succeeded, per subscription.",
            |v| v.metrics.delivered.load(Relaxed) as f64,
        ),
        (
            "eventbus_subscription_failed_total",
            "counter",
            "Handler runs that failed after their retries, per subscription.",
            |v| v.metrics.failed.load(Relaxed) as f64,
        ),
        (
            "eventbus_subscription_retries_total",
            "counter",
            "Handler calls retried, per subscription.",
            |v| v.metrics.retries.load(Relaxed) as f64,
        ),
        (
            "eventbus_subscription_dropped_total",
            "counter",
            "Events dropped because the queue was full, per subscription.",
            |v| v.metrics.dropped.load(Relaxed) as f64,
        ),
        (
            "eventbus_subscription_filtered_total",
            "counter",
            "Events skipped by the filter, per subscription.",
            |v| v.metrics.filtered.load(Relaxed) as f64,
        ),
        (
            "eventbus_subscription_pending",
            "gauge",
            "Events waiting in the subscription's queue.",
            |v| v.pending as f64,
        ),
    ];
    for (name, kind, help, get) in per_sub {
        w.head(name, kind, help);
        for v in &x.subscriptions {
            w.sample(name, &sub_labels(v), get(v));
        }
    }
    type HistOf = fn(&SubscriptionMetrics) -> &Hist;
    let hists: [(&str, &str, HistOf); 2] = [
        (
            "eventbus_delivery_latency_seconds",
            "Publish-to-handler latency: the event's metadata.timestamp to its handler's start (includes clock skew between hosts).",
            |m| &m.latency,
        ),
        (
            "eventbus_handler_duration_seconds",
            "Duration of one handler call.",
            |m| &m.handler,
        ),
    ];
    for (name, help, get) in hists {
        w.head(name, "histogram", help);
        for v in &x.subscriptions {
            let l = [
                ("service", x.service),
                ("transport", x.transport),
                ("subscription", v.id),
                ("pattern", v.pattern),
            ];
            w.histogram(name, &l, &get(v.metrics).buckets());
        }
    }
    w.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_values() {
        let h = Hist::default();
        assert_eq!(h.summary(), LatencySummary::default());
        for ms in 1..=100u64 {
            h.record_us(ms * 1000);
        }
        let s = h.summary();
        assert_eq!(s.count, 100);
        assert!((s.p50 - 50.0).abs() < 0.1, "{s:?}");
        assert!((s.p95 - 95.0).abs() < 0.1, "{s:?}");
        assert!((s.p99 - 99.0).abs() < 0.1, "{s:?}");
        assert!((s.max - 100.0).abs() < 0.1, "{s:?}");
        assert!((s.mean - 50.5).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn buckets_are_cumulative_and_end_at_count() {
        let h = Hist::default();
        h.record_all([50, 200, 2_000, 40_000, 3_000_000, 99_000_000]);
        let b = h.buckets();
        assert_eq!(b.count, 6);
        assert!(b.cumulative.windows(2).all(|w| w[0] <= w[1]));
        // 100 µs bound holds one value; 1 ms two; 5 ms three; 50 ms four; 5 s five; 30 s five.
        let at = |s: f64| b.cumulative[LATENCY_BUCKETS.iter().position(|x| *x == s).unwrap()];
        assert_eq!(
            [
                at(0.0001),
                at(0.001),
                at(0.005),
                at(0.05),
                at(5.0),
                at(30.0)
            ],
            [1, 2, 3, 4, 5, 5]
        );
        assert!((b.sum_seconds - 102.04225).abs() < 1e-9);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            labels(&[("pattern", "a\"b\\c\nd")]),
            r#"{pattern="a\"b\\c\nd"}"#
        );
        assert_eq!(num(f64::INFINITY), "+Inf");
        assert_eq!(num(2.0), "2");
        assert_eq!(num(0.25), "0.25");
    }

    #[test]
    fn exposition_lines_are_well_formed() {
        let stats = crate::stats::StatsSnapshot {
            events_published: 3,
            ..Default::default()
        };
        let m = SubscriptionMetrics::default();
        m.handler.record_us(1500);
        m.delivered.fetch_add(1, Relaxed);
        let p = Hist::default();
        let text = render(&Exposition {
            service: "svc\"x",
            transport: "single",
            connected: true,
            stats: &stats,
            publish: &p,
            subscriptions: vec![SubscriptionView {
                id: "sub-1",
                pattern: "photo.*",
                pending: 2,
                metrics: &m,
            }],
        });
        assert!(text.contains(
            "eventbus_events_published_total{service=\"svc\\\"x\",transport=\"single\"} 3\n"
        ));
        assert!(text.contains("eventbus_subscription_pending{service=\"svc\\\"x\",transport=\"single\",subscription=\"sub-1\",pattern=\"photo.*\"} 2\n"));
        assert!(text.contains("eventbus_handler_duration_seconds_bucket{service=\"svc\\\"x\",transport=\"single\",subscription=\"sub-1\",pattern=\"photo.*\",le=\"0.0025\"} 1\n"));
        assert!(text.contains("eventbus_handler_duration_seconds_bucket{service=\"svc\\\"x\",transport=\"single\",subscription=\"sub-1\",pattern=\"photo.*\",le=\"0.001\"} 0\n"));
        // Every line: a comment, or `name{labels} value`.
        for line in text.lines() {
            if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
                continue;
            }
            let (_, value) = line.rsplit_once(' ').expect(line);
            assert!(value == "+Inf" || value.parse::<f64>().is_ok(), "{line}");
            assert!(line.starts_with("eventbus_"), "{line}");
        }
        // Each metric family has one TYPE line.
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
        let mut uniq = types.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(types.len(), uniq.len());
    }
}
