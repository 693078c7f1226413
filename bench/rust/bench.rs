//! Benchmark driver for the Rust core (used by bench/run.sh; not a test).
//!
//! `cargo run --release -p event-bus-bench -- SCENARIO [N] [SIZE]` prints one JSON object with
//! the figures. Scenarios:
//! - `burst`: N publishes issued concurrently (bursts of 1,000 in flight), events/s;
//! - `batch`: the same bursts, each through one `publish_batch` call of 1,000 events;
//! - `serial`: N awaited publishes one at a time, events/s and p50/p99 latency;
//! - `e2e`: N events published in bursts into a subscriber of the same process, delivered/s;
//! - `fanout`: 1 publisher, 8 subscribing clients with 50 patterns each, delivered/s;
//! - `idle`: N events 1 ms apart, each awaited into a subscriber of the same process:
//!   publish-to-handler latency p50/p99 (what the Node and Python rows measure, without a host).
//!
//! The floor of each hop of one awaited publish (same payload size as `serial`'s envelope):
//! - `serial-core`: `serial`, but the loop runs on the core's own runtime (no crossing from
//!   the caller's runtime to the core's);
//! - `serial-redis`: PUBLISH through the redis crate's multiplexed connection alone (the
//!   caller's task and the crate's driver task, no hand-over or publisher task);
//! - `serial-raw`: PUBLISH written and its integer reply read on the caller's own task over a
//!   plain TCP socket (the loopback round trip, what `redis-benchmark -c1 -P1` does).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use event_bus::{
    BatchItem, Delivery, EventBusClient, HandlerError, PublishOptions, SubscriptionOptions,
};
use serde_json::value::RawValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn cfg(name: &str) -> String {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    format!(
        r#"{{"serviceName":"{name}","redis":{{"url":"{url}","publishTimeout":60000}},"logLevel":"error"}}"#
    )
}

fn data(size: usize) -> Box<RawValue> {
    // The sample photo.uploaded data (~320 bytes on the wire with the envelope), or padded.
    let base = r#"{"photoId":"photo-123","userId":"user-456","filename":"vacation.jpg","size":1024000,"mimeType":"image/jpeg","uploadedAt":"2026-11-27T04:00:00.000Z""#;
    let pad = size.saturating_sub(base.len() + 2);
    let s = if pad > 12 {
        format!(r#"{base},"pad":"{}"}}"#, "x".repeat(pad - 9))
    } else {
        format!("{base}}}")
    };
    RawValue::from_string(s).unwrap()
}

/// The figures of a publishing scenario: `n` events since `start`.
fn print_rate(scenario: &str, n: usize, start: Instant) {
    let s = start.elapsed().as_secs_f64();
    println!(
        r#"{{"scenario":"{scenario}","n":{n},"seconds":{s},"rate":{}}}"#,
        n as f64 / s
    );
}

/// Subscribe `sub` to `pattern` with a handler that counts each delivery into `got`, with room
/// for all `n` events to wait (none is dropped for a slow handler).
async fn count_deliveries(sub: &EventBusClient, pattern: &str, got: &Arc<AtomicU64>, n: usize) {
    let g = got.clone();
    sub.subscribe(
        pattern,
        Arc::new(move |_ev: Delivery| {
            g.fetch_add(1, Relaxed);
            async { Ok::<(), HandlerError>(()) }
        }),
        SubscriptionOptions {
            max_pending: Some(n + 1),
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

/// Publish `n` events of `ty` in bursts of 1,000 in flight, then wait (two minutes at most)
/// until `got` counts `want` deliveries; the seconds it all took.
async fn publish_until_delivered(
    bus: &EventBusClient,
    ty: &str,
    d: &RawValue,
    opts: &PublishOptions,
    n: usize,
    got: &AtomicU64,
    want: u64,
) -> f64 {
    let start = Instant::now();
    let mut done = 0;
    while done < n {
        let k = 1000.min(n - done);
        let futs = (0..k).map(|_| bus.publish(ty, d, opts));
        futures_util::future::join_all(futs).await;
        done += k;
    }
    while got.load(Relaxed) < want && start.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed().as_secs_f64()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Print the figures of an awaited-one-at-a-time scenario.
fn print_serial(scenario: &str, n: usize, start: Instant, lat: &mut [f64]) {
    let s = start.elapsed().as_secs_f64();
    println!(
        r#"{{"scenario":"{scenario}","n":{n},"seconds":{s},"rate":{},"p50_ms":{},"p99_ms":{}}}"#,
        n as f64 / s,
        pct(lat, 0.5),
        pct(lat, 0.99)
    );
}

/// N awaited client publishes, one at a time; latencies in ms.
async fn serial_publishes(
    bus: &EventBusClient,
    ty: &str,
    d: &RawValue,
    opts: &PublishOptions,
    n: usize,
) -> Vec<f64> {
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        bus.publish(ty, d, opts).await.unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    lat
}

/// A payload as long as the envelope `serial` publishes for `size` bytes of data.
fn envelope_sized(size: usize) -> String {
    "x".repeat(size + 130)
}

/// `serial-redis`: PUBLISH through a multiplexed connection of the redis crate, one at a time.
async fn serial_redis(channel: &str, payload: &str, n: usize) {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let _: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async(&mut conn)
            .await
            .unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    print_serial("serial-redis", n, start, &mut lat);
}

/// `serial-raw`: PUBLISH written and its `:N` reply read on this task over a TCP socket.
async fn serial_raw(channel: &str, payload: &str, n: usize) {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let addr = url.trim_start_matches("redis://").trim_end_matches('/');
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.set_nodelay(true).unwrap();
    let cmd = format!(
        "*3\r\n$7\r\nPUBLISH\r\n${}\r\n{channel}\r\n${}\r\n{payload}\r\n",
        channel.len(),
        payload.len()
    );
    let mut buf = [0u8; 64];
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        sock.write_all(cmd.as_bytes()).await.unwrap();
        let mut got = 0;
        loop {
            let k = sock.read(&mut buf[got..]).await.unwrap();
            assert!(k > 0, "Redis closed the connection");
            got += k;
            if buf[..got].ends_with(b"\r\n") {
                break;
            }
        }
        assert_eq!(buf[0], b':', "unexpected reply");
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    print_serial("serial-raw", n, start, &mut lat);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let scenario = args.get(1).map(String::as_str).unwrap_or("burst");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let size: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(200);
    let run = format!("bench{}", std::process::id());
    match scenario {
        "serial-redis" => return serial_redis(&run, &envelope_sized(size), n).await,
        "serial-raw" => return serial_raw(&run, &envelope_sized(size), n).await,
        _ => {}
    }
    let d = data(size);
    let bus = EventBusClient::from_json(&cfg("bench-rust")).unwrap();
    bus.connect().await.unwrap();
    let ty = format!("{run}.photo.uploaded");
    let opts = PublishOptions::default();
    match scenario {
        "burst" => {
            let start = Instant::now();
            let mut done = 0;
            while done < n {
                let k = 1000.min(n - done);
                let futs = (0..k).map(|_| bus.publish(&ty, &d, &opts));
                for r in futures_util::future::join_all(futs).await {
                    r.unwrap();
                }
                done += k;
            }
            print_rate("burst", n, start);
        }
        "batch" => {
            // The same bursts through one `publish_batch` call each (what the C row measures).
            let items: Vec<BatchItem> = (0..1000)
                .map(|_| BatchItem {
                    event_type: ty.clone(),
                    data: d.clone(),
                    options: PublishOptions::default(),
                })
                .collect();
            let start = Instant::now();
            let mut done = 0;
            while done < n {
                let k = 1000.min(n - done);
                for r in bus.publish_batch(&items[..k]).await {
                    r.unwrap();
                }
                done += k;
            }
            print_rate("batch", n, start);
        }
        "serial" => {
            let start = Instant::now();
            let mut lat = serial_publishes(&bus, &ty, &d, &opts, n).await;
            print_serial("serial", n, start, &mut lat);
        }
        "serial-core" => {
            // The same loop as a task of the core's runtime, where the publisher task runs.
            let (b, t, dd, o) = (bus.clone(), ty.clone(), d.clone(), opts.clone());
            let start = Instant::now();
            let mut lat =
                event_bus::runtime::spawn(
                    async move { serial_publishes(&b, &t, &dd, &o, n).await },
                )
                .await
                .unwrap();
            print_serial("serial-core", n, start, &mut lat);
        }
        "e2e" => {
            let got = Arc::new(AtomicU64::new(0));
            let sub = EventBusClient::from_json(&cfg("bench-rust-sub")).unwrap();
            sub.connect().await.unwrap();
            count_deliveries(&sub, &format!("{run}.*"), &got, n).await;
            let s = publish_until_delivered(&bus, &ty, &d, &opts, n, &got, n as u64).await;
            let stats = sub.stats();
            println!(
                r#"{{"scenario":"e2e","n":{n},"delivered":{},"seconds":{s},"rate":{},"dropped":{}}}"#,
                got.load(Relaxed),
                got.load(Relaxed) as f64 / s,
                stats.events_dropped
            );
            sub.disconnect().await.unwrap();
        }
        "fanout" => {
            let got = Arc::new(AtomicU64::new(0));
            let mut subs = Vec::new();
            for c in 0..8 {
                let sub = EventBusClient::from_json(&cfg(&format!("bench-fan-{c}"))).unwrap();
                sub.connect().await.unwrap();
                for p in 0..50 {
                    // Pattern 0 matches every event; the other 49 are live patterns that do not.
                    let pat = if p == 0 {
                        format!("{run}.*")
                    } else {
                        format!("{run}.other{p}.*")
                    };
                    count_deliveries(&sub, &pat, &got, n).await;
                }
                subs.push(sub);
            }
            let s = publish_until_delivered(&bus, &ty, &d, &opts, n, &got, (n * 8) as u64).await;
            println!(
                r#"{{"scenario":"fanout","n":{n},"clients":8,"patterns_per_client":50,"delivered":{},"seconds":{s},"rate":{}}}"#,
                got.load(Relaxed),
                got.load(Relaxed) as f64 / s
            );
            for s in subs {
                s.disconnect().await.unwrap();
            }
        }
        "idle" => {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
            let sub = EventBusClient::from_json(&cfg("bench-rust-sub")).unwrap();
            sub.connect().await.unwrap();
            sub.subscribe(
                &format!("{run}.*"),
                Arc::new(move |_ev: Delivery| {
                    let _ = tx.send(Instant::now());
                    async { Ok::<(), HandlerError>(()) }
                }),
                SubscriptionOptions::default(),
            )
            .await
            .unwrap();
            let mut lat = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                bus.publish(&ty, &d, &opts).await.unwrap();
                let got = rx.recv().await.unwrap();
                lat.push((got - t).as_secs_f64() * 1e3);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            println!(
                r#"{{"scenario":"idle","n":{n},"p50_ms":{},"p99_ms":{}}}"#,
                pct(&mut lat, 0.5),
                pct(&mut lat, 0.99)
            );
            sub.disconnect().await.unwrap();
        }
        other => panic!("unknown scenario {other}"),
    }
    bus.disconnect().await.unwrap();
}
