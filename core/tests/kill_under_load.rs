//! Kill under load: a private redis-server is SIGKILLed while 10,000 events are published at
//! about 2,000/s, and restarted on the same port 2 s later.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use event_bus::{Delivery, ErrorKind, EventBusClient, HandlerError, PublishOptions, StateEvent};

const TOTAL: usize = 10_000;
const RATE_PER_TICK: usize = 20; // 20 per 10 ms = 2,000/s
const PUBLISH_TIMEOUT_MS: u64 = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Outcome {
    Success,
    Failed,
    Unknown,
}

/// (started, settled, outcome, error kind)
type Settled = (Instant, Instant, Outcome, Option<ErrorKind>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_under_load() {
    let server = Arc::new(Mutex::new(RedisServer::start()));
    let url = server.lock().unwrap().url();
    let service = unique("killload");
    let cfg = config(
        &service,
        &url,
        &format!(
            r#""reconnectDelay":50,"reconnectDelayMax":200,"publishTimeout":{PUBLISH_TIMEOUT_MS},"heartbeatInterval":1000"#
        ),
        "",
    );
    let bus = EventBusClient::from_json(&cfg).unwrap();
    bus.connect().await.unwrap();
    let states = StateLog::attach(&bus);
    let tag = unique("kl");
    let pattern = format!("{tag}.*");
    let exact = format!("{tag}.exact");

    // Subscriber records (seq, time received).
    let received: Arc<Mutex<Vec<(usize, Instant)>>> = Arc::default();
    let r = received.clone();
    let handler = Arc::new(move |d: Delivery| {
        let seq = d.data()["seq"].as_u64().unwrap() as usize;
        r.lock().unwrap().push((seq, Instant::now()));
        async { Ok::<(), HandlerError>(()) }
    });
    let opts = event_bus::SubscriptionOptions {
        max_pending: Some(TOTAL * 2),
        ..Default::default()
    };
    bus.subscribe(&pattern, handler, opts.clone())
        .await
        .unwrap();
    let exact_col = Collector::new();
    bus.subscribe(&exact, exact_col.handler(), opts)
        .await
        .unwrap();

    // Health poller.
    let health: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hp = {
        let (bus, health, stop) = (bus.clone(), health.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let h = bus.health_check().await;
                health.lock().unwrap().push((Instant::now(), h.status));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // Publisher: 20 publishes every 10 ms, each in its own task, recording start, end, outcome.
    let results: Arc<Mutex<HashMap<usize, Settled>>> = Arc::default();
    let start = Instant::now();
    let mut kill_at = None;
    let mut restart_at = None;
    let mut resubscribed_at: Option<Instant> = None;
    let mut tasks = Vec::with_capacity(TOTAL);
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    let mut seq = 0;
    let mut admin: Option<redis::Connection> = None;
    while seq < TOTAL {
        ticker.tick().await;
        for _ in 0..RATE_PER_TICK {
            if seq >= TOTAL {
                break;
            }
            let (bus, results) = (bus.clone(), results.clone());
            let ty = format!("{tag}.ev");
            let s = seq;
            tasks.push(tokio::spawn(async move {
                let t0 = Instant::now();
                let data = raw(&format!(r#"{{"seq":{s}}}"#));
                let r = bus.publish(&ty, &data, &PublishOptions::default()).await;
                let (o, k) = match &r {
                    Ok(_) => (Outcome::Success, None),
                    Err(f) if f.error.kind() == ErrorKind::OutcomeUnknown => {
                        (Outcome::Unknown, Some(f.error.kind()))
                    }
                    Err(f) => (Outcome::Failed, Some(f.error.kind())),
                };
                results
                    .lock()
                    .unwrap()
                    .insert(s, (t0, Instant::now(), o, k));
            }));
            seq += 1;
        }
        let el = start.elapsed();
        if kill_at.is_none() && el >= Duration::from_secs(2) {
            server.lock().unwrap().kill();
            kill_at = Some(Instant::now());
        }
        if restart_at.is_none() && kill_at.is_some_and(|k| k.elapsed() >= Duration::from_secs(2)) {
            // Restart off the async workers (it polls PING until the server is up).
            let srv = server.clone();
            let at = tokio::task::spawn_blocking(move || {
                srv.lock().unwrap().restart();
                Instant::now()
            })
            .await
            .unwrap();
            restart_at = Some(at);
            admin = Some(raw_conn(&url));
        }
        if let (Some(_), None, Some(c)) = (restart_at, resubscribed_at, admin.as_mut()) {
            if numpat(c) == 1 && numsub(c, &exact) == 1 {
                resubscribed_at = Some(Instant::now());
            }
        }
    }
    // Keep watching for the resubscribe if publishing finished first.
    if resubscribed_at.is_none() {
        let c = admin.as_mut().expect("restarted");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if numpat(c) == 1 && numsub(c, &exact) == 1 {
                resubscribed_at = Some(Instant::now());
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let restart_at = restart_at.expect("restarted");
    let resubscribed_at = resubscribed_at.expect("subscriber resubscribed");
    let resub = resubscribed_at.saturating_duration_since(restart_at);
    println!("resubscribed {} ms after the restart", resub.as_millis());
    assert!(
        resub <= Duration::from_secs(1),
        "resubscribe took {resub:?}"
    );

    // Every publish settled, within the publish timeout, and the counts add up.
    let results = results.lock().unwrap().clone();
    assert_eq!(results.len(), TOTAL);
    let mut counts: HashMap<Outcome, usize> = HashMap::new();
    let mut kinds: HashMap<String, usize> = HashMap::new();
    let mut slowest = Duration::ZERO;
    for (t0, t1, o, k) in results.values() {
        *counts.entry(*o).or_default() += 1;
        if let Some(k) = k {
            *kinds.entry(format!("{k:?}")).or_default() += 1;
        }
        slowest = slowest.max(*t1 - *t0);
    }
    println!("outcomes {counts:?}, failure kinds {kinds:?}, slowest publish {slowest:?}");
    // Timer slack on a shared, noisy machine: the publish timeout plus 500 ms.
    assert!(
        slowest <= Duration::from_millis(PUBLISH_TIMEOUT_MS + 500),
        "a publish took {slowest:?}"
    );
    assert_eq!(counts.values().sum::<usize>(), TOTAL);

    // Wait for the tail of deliveries.
    let expect_after: HashSet<usize> = results
        .iter()
        .filter(|(_, (t0, _, o, _))| *o == Outcome::Success && *t0 >= resubscribed_at)
        .map(|(s, _)| *s)
        .collect();
    assert!(
        !expect_after.is_empty(),
        "some publishes happened after the resubscribe"
    );
    wait_until(Duration::from_secs(10), || {
        let got: HashSet<usize> = received.lock().unwrap().iter().map(|(s, _)| *s).collect();
        expect_after.is_subset(&got)
    })
    .await;
    let got: Vec<usize> = received.lock().unwrap().iter().map(|(s, _)| *s).collect();
    let got_set: HashSet<usize> = got.iter().copied().collect();
    assert_eq!(got.len(), got_set.len(), "no event delivered twice");
    for s in &got_set {
        let o = results[s].2;
        assert!(
            o == Outcome::Success || o == Outcome::Unknown,
            "event {s} was received but its publish was reported {o:?}"
        );
    }
    let missing: Vec<usize> = expect_after.difference(&got_set).copied().collect();
    assert!(
        missing.is_empty(),
        "{} events published after the resubscribe were not received, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    println!(
        "received {} of {} successful publishes",
        got.len(),
        counts.get(&Outcome::Success).unwrap_or(&0)
    );

    // Health went degraded, then healthy again.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    hp.await.unwrap();
    let h = health.lock().unwrap().clone();
    let first_degraded = h
        .iter()
        .position(|(_, s)| s == "degraded")
        .expect("health was degraded during the outage");
    assert!(
        h[first_degraded..].iter().any(|(_, s)| s == "healthy"),
        "health back to healthy after the restart"
    );
    assert_eq!(bus.health_check().await.status, "healthy");

    // A gap notice was emitted, after a subscriber disconnect.
    let names = states.names();
    assert!(names.contains(&"disconnected"), "{names:?}");
    assert!(names.contains(&"reconnecting"), "{names:?}");
    assert!(names.contains(&"gap"), "{names:?}");
    let gap = states
        .events
        .lock()
        .unwrap()
        .iter()
        .find_map(|(_, e)| match e {
            StateEvent::Gap { duration, .. } => Some(*duration),
            _ => None,
        })
        .unwrap();
    println!("gap reported: {gap} ms");
    assert!(gap >= 1500, "gap covers the outage: {gap} ms");
    let st = bus.stats();
    assert!(st.reconnects >= 2, "both connections reconnected: {st:?}");
    bus.disconnect().await.unwrap();
}
