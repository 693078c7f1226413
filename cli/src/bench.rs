//! `event-bus bench pub|sub|e2e|latency`: publish rate, delivery rate and latency against the
//! configured Redis, with HDR-histogram percentiles, per client and in total (after `nats
//! bench`).
//!
//! - `pub`: `--clients` clients publish (each its share of `--msgs`, or for `--duration`),
//!   keeping up to `--burst` publishes in flight each, at most `--rate` per second in total;
//!   the latency is each publish's round trip.
//! - `sub`: `--clients` subscribing clients, each receiving every event of one publishing
//!   client (fan-out); rate is events received per second; latency is publish to handler.
//! - `e2e`: `--clients` publishing clients and one subscribing client; rate is events
//!   delivered per second from the first publish to the last delivery.
//! - `latency`: one event at a time (or `--rate` per second), each awaited into the handler.
//!
//! MB/s counts the events' data (`--size` bytes each); the envelope (id, type, timestamps,
//! names) adds about 250 bytes per event on the wire.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use event_bus::{Delivery, EventBusClient, HandlerError, PublishOptions, SubscriptionOptions};
use futures_util::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::conn::ConnArgs;
use crate::{exit, CliError, CliResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Publish rate and publish round trip
    Pub,
    /// Fan-out: --clients subscribers each receive every event of one publisher
    Sub,
    /// Publish and receive in one process: delivered/s and publish-to-handler latency
    E2e,
    /// One event at a time into a handler: publish-to-handler latency
    Latency,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Pub => "pub",
            Kind::Sub => "sub",
            Kind::E2e => "e2e",
            Kind::Latency => "latency",
        }
    }
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(value_enum)]
    pub kind: Kind,
    /// Events in total [default: 100000; with --duration: no limit]
    #[arg(long, value_name = "N")]
    pub msgs: Option<u64>,
    /// Publish for this long instead of a number of events (90s, 2m, 500ms)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
    pub duration: Option<Duration>,
    /// Data size in bytes (JSON object padded to about this size)
    #[arg(long, default_value_t = 200, value_name = "BYTES")]
    pub size: usize,
    /// pub, e2e: publishing clients; sub: subscribing clients
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub clients: usize,
    /// Publishes in flight per publishing client (pub, sub, e2e)
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub burst: usize,
    /// At most R events per second in total (latency: one every 1/R s) [default: as fast as
    /// Redis answers]
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Print one JSON object on stdout instead of the text summary
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV: a header, one row per client, and a total row
    #[arg(long)]
    pub csv: bool,
}

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    match crate::tail::parse_duration(s) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "expected a duration such as 30s, 2m, 500ms (got {s})"
        )),
    }
}

/// Microseconds since the first call: a clock every client of this process shares.
fn now_us() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_micros() as u64
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// Data of about `size` bytes that carries the send time (`t`, µs) for the handler.
fn data(size: usize, t: u64) -> Box<RawValue> {
    let head = format!(r#"{{"t":{t},"pad":""#);
    let pad = size.saturating_sub(head.len() + 2);
    RawValue::from_string(format!("{head}{}\"}}", "x".repeat(pad))).expect("valid JSON")
}

/// The send time `t` of [`data`]'s text, read from its known start without parsing the rest
/// (a full parse per event would make the handler, not the bus, what is measured).
fn sent_at(data: &str) -> Option<u64> {
    let rest = data.strip_prefix(r#"{"t":"#)?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

/// What one receiving client saw.
#[derive(Default)]
struct Received {
    hist: Option<Histogram<u64>>,
    count: u64,
    last_us: u64,
}

/// A handler that records `now - data.t` and counts; `total` counts over every receiver.
fn recorder(rx: Arc<Mutex<Received>>, total: Arc<AtomicU64>) -> Arc<dyn event_bus::Handler> {
    Arc::new(move |d: Delivery| {
        let now = now_us();
        {
            let mut r = rx.lock().unwrap();
            if let Some(t) = sent_at(d.data_json()) {
                let _ = r
                    .hist
                    .get_or_insert_with(hist)
                    .record(now.saturating_sub(t).max(1));
            }
            r.count += 1;
            r.last_us = now;
        }
        total.fetch_add(1, SeqCst);
        async { Ok::<(), HandlerError>(()) }
    })
}

fn summary(h: &Histogram<u64>) -> Value {
    let ms = |us: u64| us as f64 / 1000.0;
    if h.is_empty() {
        return json!({"count": 0});
    }
    json!({
        "count": h.len(),
        "mean": h.mean() / 1000.0,
        "p50": ms(h.value_at_quantile(0.5)),
        "p95": ms(h.value_at_quantile(0.95)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p999": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
    })
}

/// How much one publishing client publishes.
#[derive(Clone, Copy)]
struct Plan {
    /// At most this many events.
    msgs: Option<u64>,
    /// Until then.
    until: Option<Instant>,
    /// One event every so often (the client's share of `--rate`).
    interval: Option<Duration>,
    size: usize,
    burst: usize,
}

/// What one publishing client did.
struct Published {
    hist: Histogram<u64>,
    ok: u64,
    failed: u64,
    seconds: f64,
}

/// Publish from `bus` along `plan`, up to `burst` in flight; each round trip into the
/// histogram, each completion counted into `progress`.
async fn publish_share(
    bus: EventBusClient,
    ty: String,
    plan: Plan,
    progress: Arc<AtomicU64>,
) -> Published {
    let start = Instant::now();
    let mut h = hist();
    let (mut ok, mut failed, mut sent) = (0u64, 0u64, 0u64);
    let opts = PublishOptions::default();
    let mut in_flight = FuturesUnordered::new();
    let mut next = tokio::time::Instant::now();
    let more = |sent: u64| {
        plan.msgs.is_none_or(|m| sent < m) && plan.until.is_none_or(|u| Instant::now() < u)
    };
    loop {
        while in_flight.len() < plan.burst && more(sent) {
            if let Some(iv) = plan.interval {
                if tokio::time::Instant::now() < next {
                    break;
                }
                next += iv;
            }
            sent += 1;
            let (bus, ty, opts) = (&bus, &ty, &opts);
            in_flight.push(async move {
                let t = now_us();
                let d = data(plan.size, t);
                let r = bus.publish(ty, &d, opts).await;
                (r.is_ok(), now_us().saturating_sub(t))
            });
        }
        if in_flight.is_empty() {
            if !more(sent) {
                break;
            }
            // Rate-limited and nothing in flight: wait for the next slot.
            tokio::time::sleep_until(next).await;
            continue;
        }
        let done = if plan.interval.is_some() && more(sent) {
            tokio::select! {
                r = in_flight.next() => r,
                _ = tokio::time::sleep_until(next) => continue,
            }
        } else {
            in_flight.next().await
        };
        if let Some((good, us)) = done {
            if good {
                ok += 1;
                let _ = h.record(us.max(1));
            } else {
                failed += 1;
            }
            progress.fetch_add(1, SeqCst);
        }
    }
    Published {
        hist: h,
        ok,
        failed,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// One row of the report: a client or the total.
struct Row {
    role: &'static str,
    client: String,
    msgs: u64,
    seconds: f64,
    latency: Value,
}

impl Row {
    fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.msgs as f64 / self.seconds
        } else {
            0.0
        }
    }
    fn json(&self, size: usize) -> Value {
        json!({
            "role": self.role,
            "client": self.client,
            "msgs": self.msgs,
            "seconds": self.seconds,
            "msgsPerSec": self.rate(),
            "mbPerSec": self.rate() * size as f64 / 1e6,
            "latencyMs": self.latency,
        })
    }
}

/// A progress bar on stderr when it is a terminal (never in pipes, files or tests).
fn progress_bar(total: Option<u64>, what: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match total {
        Some(n) => indicatif::ProgressBar::new(n).with_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        ),
        None => indicatif::ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} {pos} ({per_sec})")
                .expect("valid template"),
        ),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar.set_message(what.to_string());
    Some(bar)
}

pub async fn run(conn: &ConnArgs, a: BenchArgs) -> CliResult {
    if a.clients == 0 || a.burst == 0 || a.msgs == Some(0) {
        return Err(CliError::new(
            exit::USAGE,
            "--msgs, --clients and --burst must be at least 1",
        ));
    }
    if let Some(r) = a.rate {
        if !(r > 0.0 && r.is_finite()) {
            return Err(CliError::new(
                exit::USAGE,
                "--rate must be a positive number of events per second",
            ));
        }
    }
    let msgs = match (a.msgs, a.duration) {
        (Some(m), _) => Some(m),
        (None, Some(_)) => None,
        (None, None) => Some(100_000),
    };
    let ty = format!("bench.cli.{}.{}", std::process::id(), now_us());
    let (n_pub, n_sub) = match a.kind {
        Kind::Pub => (a.clients, 0),
        Kind::Sub => (1, a.clients),
        Kind::E2e => (a.clients, 1),
        Kind::Latency => (1, 1),
    };
    let mut pubs = Vec::with_capacity(n_pub);
    for _ in 0..n_pub {
        pubs.push(conn.connect().await?);
    }
    let total_got = Arc::new(AtomicU64::new(0));
    let mut subs = Vec::with_capacity(n_sub);
    let max_pending = msgs.unwrap_or(1_000_000).clamp(1, 1_000_000);
    let sub_opts = SubscriptionOptions::from_json(&format!(r#"{{"maxPending":{max_pending}}}"#))
        .map_err(|e| CliError::new(exit::BAD_INPUT, e.to_string()))?;
    for _ in 0..n_sub {
        let s = conn.connect().await?;
        let rx = Arc::new(Mutex::new(Received::default()));
        s.subscribe(
            &ty,
            recorder(rx.clone(), total_got.clone()),
            sub_opts.clone(),
        )
        .await
        .map_err(|e| CliError::new(exit::FAILED, format!("subscribe: {e}")))?;
        subs.push((s, rx));
    }

    let expected = msgs.map(|m| m * n_sub.max(1) as u64);
    let bar = progress_bar(
        if a.duration.is_some() { None } else { expected },
        a.kind.name(),
    );
    let progress = Arc::new(AtomicU64::new(0));
    let ticker = bar.clone().map(|b| {
        let (p, g, counts_received) = (progress.clone(), total_got.clone(), n_sub > 0);
        tokio::spawn(async move {
            loop {
                b.set_position(if counts_received {
                    g.load(SeqCst)
                } else {
                    p.load(SeqCst)
                });
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });

    let start = Instant::now();
    let start_us = now_us();
    let until = a.duration.map(|d| start + d);
    let mut pub_results: Vec<Published> = Vec::with_capacity(n_pub);
    match a.kind {
        Kind::Pub | Kind::Sub | Kind::E2e => {
            let per = msgs.map(|m| (m / n_pub as u64, m % n_pub as u64));
            let interval = a.rate.map(|r| Duration::from_secs_f64(n_pub as f64 / r));
            // The publishers run here, on the command's own thread (it blocks on the runtime),
            // not as runtime tasks: the runtime's workers are left to the client's own tasks,
            // as in an application that publishes from its own threads.
            let shares = pubs.iter().enumerate().map(|(i, b)| {
                let plan = Plan {
                    msgs: per.map(|(p, extra)| p + u64::from((i as u64) < extra)),
                    until,
                    interval,
                    size: a.size,
                    burst: a.burst,
                };
                publish_share(b.clone(), ty.clone(), plan, progress.clone())
            });
            pub_results = futures_util::future::join_all(shares).await;
        }
        Kind::Latency => {
            let bus = &pubs[0];
            let opts = PublishOptions::default();
            let interval = a.rate.map(|r| Duration::from_secs_f64(1.0 / r));
            let mut next = tokio::time::Instant::now();
            let mut h = hist();
            let (mut ok, mut failed, mut i) = (0u64, 0u64, 0u64);
            while msgs.is_none_or(|m| i < m) && until.is_none_or(|u| Instant::now() < u) {
                i += 1;
                if let Some(iv) = interval {
                    tokio::time::sleep_until(next).await;
                    next += iv;
                }
                let t = now_us();
                match bus.publish(&ty, &data(a.size, t), &opts).await {
                    Ok(_) => {
                        ok += 1;
                        let _ = h.record(now_us().saturating_sub(t).max(1));
                    }
                    Err(_) => failed += 1,
                }
                progress.fetch_add(1, SeqCst);
                // Wait for this one to arrive before the next.
                let deadline = Instant::now() + Duration::from_secs(10);
                while total_got.load(SeqCst) < ok && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_micros(50)).await;
                }
            }
            pub_results.push(Published {
                hist: h,
                ok,
                failed,
                seconds: start.elapsed().as_secs_f64(),
            });
        }
    }
    let published: u64 = pub_results.iter().map(|p| p.ok).sum();
    let failed: u64 = pub_results.iter().map(|p| p.failed).sum();
    let want = published * n_sub as u64;
    if n_sub > 0 {
        // Until every published event arrived at every subscriber, or nothing arrived for 5 s.
        let mut last = (total_got.load(SeqCst), Instant::now());
        while total_got.load(SeqCst) < want {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let g = total_got.load(SeqCst);
            if g != last.0 {
                last = (g, Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(5) {
                break;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }

    // Per client rows, then the totals.
    let mut rtt = hist();
    let mut rows = Vec::new();
    for (i, p) in pub_results.iter().enumerate() {
        let _ = rtt.add(&p.hist);
        rows.push(Row {
            role: "pub",
            client: format!("pub-{}", i + 1),
            msgs: p.ok,
            seconds: p.seconds,
            latency: summary(&p.hist),
        });
    }
    let mut lat = hist();
    let mut delivered = 0;
    for (i, (_, rx)) in subs.iter().enumerate() {
        let r = rx.lock().unwrap();
        if let Some(h) = &r.hist {
            let _ = lat.add(h);
        }
        delivered += r.count;
        rows.push(Row {
            role: "sub",
            client: format!("sub-{}", i + 1),
            msgs: r.count,
            seconds: r.last_us.saturating_sub(start_us) as f64 / 1e6,
            latency: r.hist.as_ref().map(summary).unwrap_or(json!({"count": 0})),
        });
    }
    // The total: received events when something receives (sub, e2e, latency), else published.
    let counted = if n_sub > 0 { delivered } else { published };
    let total = Row {
        role: "total",
        client: "all".into(),
        msgs: counted,
        seconds: secs,
        latency: if n_sub > 0 {
            summary(&lat)
        } else {
            summary(&rtt)
        },
    };
    let rate = total.rate();
    let out = json!({
        "bench": a.kind.name(),
        "clients": a.clients,
        "publishers": n_pub,
        "subscribers": n_sub,
        "msgs": msgs,
        "durationLimitSec": a.duration.map(|d| d.as_secs_f64()),
        "size": a.size,
        "published": published,
        "failed": failed,
        "delivered": if n_sub > 0 { Some(delivered) } else { None },
        "seconds": secs,
        "msgsPerSec": rate,
        "msgsPerSecPerClient": rate / a.clients as f64,
        "mbPerSec": rate * a.size as f64 / 1e6,
        "publishLatencyMs": summary(&rtt),
        "deliveryLatencyMs": if n_sub > 0 { Some(summary(&lat)) } else { None },
        "perClient": rows.iter().map(|r| r.json(a.size)).collect::<Vec<_>>(),
    });
    for b in pubs.iter().chain(subs.iter().map(|(s, _)| s)) {
        let _ = b.disconnect().await;
    }
    if a.json {
        println!("{out}");
    } else if a.csv {
        println!("bench,role,client,msgs,bytes,seconds,msgs_per_sec,mb_per_sec,p50_ms,p95_ms,p99_ms,max_ms");
        for r in rows.iter().chain(std::iter::once(&total)) {
            let l = &r.latency;
            let f = |k: &str| l[k].as_f64().map(|v| format!("{v:.3}")).unwrap_or_default();
            println!(
                "{},{},{},{},{},{:.6},{:.1},{:.3},{},{},{},{}",
                a.kind.name(),
                r.role,
                r.client,
                r.msgs,
                r.msgs * a.size as u64,
                r.seconds,
                r.rate(),
                r.rate() * a.size as f64 / 1e6,
                f("p50"),
                f("p95"),
                f("p99"),
                f("max")
            );
        }
    } else {
        print_text(&a, &rows, &total, &out);
    }
    if failed > 0 || (n_sub > 0 && delivered < want) {
        return Err(CliError::new(
            exit::FAILED,
            format!("{failed} publish(es) failed, {delivered} of {want} deliveries arrived"),
        ));
    }
    Ok(())
}

fn print_text(a: &BenchArgs, rows: &[Row], total: &Row, out: &Value) {
    let line = |r: &Row| {
        format!(
            "{:.0} msgs/s ~ {:.2} MB/s ({} msgs in {:.3} s)",
            r.rate(),
            r.rate() * a.size as f64 / 1e6,
            r.msgs,
            r.seconds
        )
    };
    println!(
        "{} bench: {} B data per event, {} publisher(s), {} subscriber(s)",
        a.kind.name(),
        a.size,
        out["publishers"],
        out["subscribers"]
    );
    for role in ["pub", "sub"] {
        let of: Vec<&Row> = rows.iter().filter(|r| r.role == role).collect();
        if of.is_empty() {
            continue;
        }
        let sum: u64 = of.iter().map(|r| r.msgs).sum();
        println!("{role} stats: {sum} msgs");
        for r in &of {
            println!(" [{}] {}", r.client, line(r));
        }
        if of.len() > 1 {
            let rates: Vec<f64> = of.iter().map(|r| r.rate()).collect();
            let mean = rates.iter().sum::<f64>() / rates.len() as f64;
            let sd =
                (rates.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / rates.len() as f64).sqrt();
            println!(
                " min {:.0} | avg {:.0} | max {:.0} | stddev {:.0} msgs/s",
                rates.iter().cloned().fold(f64::INFINITY, f64::min),
                mean,
                rates.iter().cloned().fold(0.0, f64::max),
                sd
            );
        }
    }
    println!("total: {}", line(total));
    let pct = |name: &str, s: &Value| {
        if s["count"].as_u64().unwrap_or(0) > 0 {
            println!(
                "  {name}: p50 {:.3} ms  p95 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms",
                s["p50"].as_f64().unwrap_or(0.0),
                s["p95"].as_f64().unwrap_or(0.0),
                s["p99"].as_f64().unwrap_or(0.0),
                s["p999"].as_f64().unwrap_or(0.0),
                s["max"].as_f64().unwrap_or(0.0)
            );
        }
    };
    pct("publish round trip", &out["publishLatencyMs"]);
    pct("publish to handler", &out["deliveryLatencyMs"]);
}

#[cfg(test)]
mod tests {
    #[test]
    fn send_time_round_trips() {
        for size in [0, 10, 200, 5000] {
            let d = super::data(size, 1234567);
            assert_eq!(super::sent_at(d.get()), Some(1234567));
            assert!(serde_json::from_str::<serde_json::Value>(d.get()).is_ok());
        }
        assert_eq!(super::data(200, 1).get().len(), 200);
        assert_eq!(super::sent_at(r#"{"x":1}"#), None);
    }
}
