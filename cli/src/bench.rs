//! `event-bus bench pub|e2e|latency`: publish rate, end-to-end delivery rate and
//! publish-to-handler latency against the configured Redis, with HDR-histogram percentiles.
//!
//! - `pub`: `--clients` clients each publish their share of `--msgs` events in bursts of
//!   `--burst` concurrent publishes; the latency is each publish's round trip.
//! - `e2e`: the same publishers, and one subscribing client; rate is events delivered per
//!   second from the first publish to the last delivery; latency is publish start to handler.
//! - `latency`: one event at a time (or `--rate` per second), each awaited into the handler.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use event_bus::{Delivery, EventBusClient, HandlerError, PublishOptions, SubscriptionOptions};
use hdrhistogram::Histogram;
use serde_json::json;
use serde_json::value::RawValue;

use crate::conn::ConnArgs;
use crate::{exit, CliError, CliResult};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Kind {
    /// Publish rate and publish round trip
    Pub,
    /// Publish and receive in one process: delivered/s and publish-to-handler latency
    E2e,
    /// One event at a time into a handler: publish-to-handler latency
    Latency,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(value_enum)]
    pub kind: Kind,
    /// Events in total
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub msgs: u64,
    /// Data size in bytes (JSON object padded to about this size)
    #[arg(long, default_value_t = 200, value_name = "BYTES")]
    pub size: usize,
    /// Publishing clients (pub, e2e)
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub clients: usize,
    /// Publishes in flight per client (pub, e2e)
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub burst: usize,
    /// latency: events per second (default: the next as soon as the last arrived)
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Print one JSON object instead of the text summary
    #[arg(long)]
    pub json: bool,
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

/// A handler that records `now - data.t` into `h` and counts into `got`.
fn recorder(h: Arc<Mutex<Histogram<u64>>>, got: Arc<AtomicU64>) -> Arc<dyn event_bus::Handler> {
    Arc::new(move |d: Delivery| {
        let now = now_us();
        if let Some(t) = d.data()["t"].as_u64() {
            let _ = h.lock().unwrap().record(now.saturating_sub(t).max(1));
        }
        got.fetch_add(1, SeqCst);
        async { Ok::<(), HandlerError>(()) }
    })
}

fn summary(h: &Histogram<u64>) -> serde_json::Value {
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

/// Publish `n` events of `ty` from `bus` in bursts of `burst`; each round trip into `h`.
async fn publish_share(
    bus: EventBusClient,
    ty: String,
    n: u64,
    size: usize,
    burst: usize,
) -> (Histogram<u64>, u64) {
    let mut h = hist();
    let mut failed = 0;
    let opts = PublishOptions::default();
    let mut left = n;
    while left > 0 {
        let k = left.min(burst as u64);
        left -= k;
        let futs = (0..k).map(|_| {
            let (bus, ty, opts) = (&bus, &ty, &opts);
            async move {
                let t = now_us();
                let d = data(size, t);
                let r = bus.publish(ty, &d, opts).await;
                (r.is_ok(), now_us().saturating_sub(t))
            }
        });
        for (ok, us) in futures_util::future::join_all(futs).await {
            if ok {
                let _ = h.record(us.max(1));
            } else {
                failed += 1;
            }
        }
    }
    (h, failed)
}

pub async fn run(conn: &ConnArgs, a: BenchArgs) -> CliResult {
    if a.clients == 0 || a.burst == 0 || a.msgs == 0 {
        return Err(CliError::new(
            exit::USAGE,
            "--msgs, --clients and --burst must be at least 1",
        ));
    }
    let ty = format!("bench.cli.{}.{}", std::process::id(), now_us());
    let mut pubs = Vec::with_capacity(a.clients);
    for _ in 0..a.clients {
        pubs.push(conn.connect().await?);
    }
    let sub_needed = !matches!(a.kind, Kind::Pub);
    let lat = Arc::new(Mutex::new(hist()));
    let got = Arc::new(AtomicU64::new(0));
    let sub = if sub_needed {
        let s = conn.connect().await?;
        let opts =
            SubscriptionOptions::from_json(&format!(r#"{{"maxPending":{}}}"#, a.msgs.max(1)))
                .map_err(|e| CliError::new(exit::BAD_INPUT, e.to_string()))?;
        s.subscribe(&ty, recorder(lat.clone(), got.clone()), opts)
            .await
            .map_err(|e| CliError::new(exit::FAILED, format!("subscribe: {e}")))?;
        Some(s)
    } else {
        None
    };

    let start = Instant::now();
    let mut rtt = hist();
    let mut failed = 0;
    match a.kind {
        Kind::Pub | Kind::E2e => {
            let per = a.msgs / a.clients as u64;
            let extra = a.msgs % a.clients as u64;
            let tasks: Vec<_> = pubs
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let n = per + u64::from((i as u64) < extra);
                    tokio::spawn(publish_share(b.clone(), ty.clone(), n, a.size, a.burst))
                })
                .collect();
            for t in tasks {
                let (h, f) = t
                    .await
                    .map_err(|e| CliError::new(exit::FAILED, e.to_string()))?;
                let _ = rtt.add(&h);
                failed += f;
            }
        }
        Kind::Latency => {
            let bus = &pubs[0];
            let opts = PublishOptions::default();
            let interval = a.rate.map(|r| Duration::from_secs_f64(1.0 / r.max(1e-6)));
            let mut next = tokio::time::Instant::now();
            for i in 0..a.msgs {
                if let Some(iv) = interval {
                    tokio::time::sleep_until(next).await;
                    next += iv;
                }
                let t = now_us();
                match bus.publish(&ty, &data(a.size, t), &opts).await {
                    Ok(_) => {
                        let _ = rtt.record(now_us().saturating_sub(t).max(1));
                    }
                    Err(_) => failed += 1,
                }
                // Wait for this one to arrive before the next.
                let want = i + 1 - failed;
                let deadline = Instant::now() + Duration::from_secs(10);
                while got.load(SeqCst) < want && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_micros(50)).await;
                }
            }
        }
    }
    let published = a.msgs - failed;
    if sub_needed {
        // Until every published event arrived, or nothing arrived for 5 s.
        let mut last = (got.load(SeqCst), Instant::now());
        while got.load(SeqCst) < published {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let g = got.load(SeqCst);
            if g != last.0 {
                last = (g, Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(5) {
                break;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let delivered = got.load(SeqCst);
    let counted = if sub_needed { delivered } else { published };
    let rate = counted as f64 / secs;
    let wire = a.size as f64 + 260.0; // data plus the envelope's ids, timestamps and names
    let out = json!({
        "bench": format!("{:?}", a.kind).to_lowercase(),
        "clients": a.clients,
        "msgs": a.msgs,
        "size": a.size,
        "published": published,
        "failed": failed,
        "delivered": if sub_needed { Some(delivered) } else { None },
        "seconds": secs,
        "msgsPerSec": rate,
        "msgsPerSecPerClient": rate / a.clients as f64,
        "mbPerSec": rate * wire / 1e6,
        "publishLatencyMs": summary(&rtt),
        "deliveryLatencyMs": if sub_needed { Some(summary(&lat.lock().unwrap())) } else { None },
    });
    for b in pubs.iter().chain(sub.iter()) {
        let _ = b.disconnect().await;
    }
    if a.json {
        println!("{out}");
    } else {
        println!(
            "{} {} msgs ({} B data, {} client(s)) in {:.3} s: {:.0} msgs/s, {:.1} MB/s",
            out["bench"].as_str().unwrap_or(""),
            counted,
            a.size,
            a.clients,
            secs,
            rate,
            rate * wire / 1e6
        );
        let line = |name: &str, s: &serde_json::Value| {
            if s["count"].as_u64().unwrap_or(0) > 0 {
                println!(
                    "  {name}: p50 {:.3} ms  p95 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
                    s["p50"].as_f64().unwrap_or(0.0),
                    s["p95"].as_f64().unwrap_or(0.0),
                    s["p99"].as_f64().unwrap_or(0.0),
                    s["max"].as_f64().unwrap_or(0.0)
                );
            }
        };
        line("publish round trip", &out["publishLatencyMs"]);
        line("publish to handler", &out["deliveryLatencyMs"]);
    }
    if failed > 0 || (sub_needed && delivered < published) {
        return Err(CliError::new(
            exit::FAILED,
            format!(
                "{failed} publish(es) failed, {} of {published} delivered",
                delivered
            ),
        ));
    }
    Ok(())
}
