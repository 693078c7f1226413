//! Network faults between the client and a private redis-server, through the fault proxy
//! (`tests/fault-proxy`): latency with jitter, a black-holed subscriber link, a publisher reset
//! in the middle of a pipeline, refused connections. Each test states what must hold; none
//! measures time against a threshold.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::*;
use event_bus::{ErrorKind, EventBusClient, PublishOptions};

fn client_via(proxy: &fault_proxy::FaultProxy, service: &str, extra: &str) -> EventBusClient {
    EventBusClient::from_json(&config(service, &proxy.url(), extra, "")).unwrap()
}

/// Latency 50 ms ± 20 ms both ways: concurrent publishes keep their order on the connection,
/// a publish timeout longer than the round trip is met, and the heartbeat (300 ms, so several
/// beats cross the slow link) never takes the slow link for a dead one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_with_jitter_keeps_order_and_is_not_taken_for_a_dead_link() {
    let srv = RedisServer::start();
    let proxy = fault_proxy(srv.port);
    let extra = r#""heartbeatInterval":300,"publishTimeout":5000"#;
    let publisher = client_via(&proxy, &unique("lat-pub"), extra);
    let subscriber = client_via(&proxy, &unique("lat-sub"), extra);
    publisher.connect().await.unwrap();
    subscriber.connect().await.unwrap();
    let states = StateLog::attach(&subscriber);
    let pstates = StateLog::attach(&publisher);
    let chan = unique("lat.chan");
    let col = Collector::new();
    subscriber
        .subscribe(&chan, col.handler(), Default::default())
        .await
        .unwrap();
    proxy.must("latency 50 20");
    // 300 publishes in flight at once, in waves, over ~3 s of slow link.
    for wave in 0..10u64 {
        let futs: Vec<_> = (0..30u64)
            .map(|i| {
                let (p, c) = (&publisher, &chan);
                let n = wave * 30 + i;
                async move {
                    p.publish(
                        c,
                        &raw(&format!(r#"{{"n":{n}}}"#)),
                        &PublishOptions::default(),
                    )
                    .await
                }
            })
            .collect();
        for (i, r) in futures_util::future::join_all(futs)
            .await
            .into_iter()
            .enumerate()
        {
            let r = r.unwrap_or_else(|f| {
                panic!(
                    "publish {} under latency: {}",
                    wave * 30 + i as u64,
                    f.error
                )
            });
            assert_eq!(r.delivered_to, 1);
        }
    }
    assert_eq!(col.wait_for(300, Duration::from_secs(30)).await, 300);
    assert_eq!(
        col.numbers(),
        (0..300).collect::<Vec<_>>(),
        "in publish order, each once"
    );
    // A few more heartbeats across the slow link: still no reconnect on either client.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(subscriber.stats().reconnects, 0, "{:?}", states.names());
    assert_eq!(publisher.stats().reconnects, 0, "{:?}", pstates.names());
    assert!(!states.has("disconnected"), "{:?}", states.names());
    proxy.must("heal");
    publisher.disconnect().await.unwrap();
    subscriber.disconnect().await.unwrap();
}

/// A publish timeout shorter than the link's latency: the publish fails with the timeout code
/// (or "outcome unknown" once written), never hangs and never reports success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_timeout_is_honoured_on_a_slow_link() {
    let srv = RedisServer::start();
    let proxy = fault_proxy(srv.port);
    let bus = client_via(
        &proxy,
        &unique("lat-timeout"),
        r#""publishTimeout":200,"heartbeatInterval":5000"#,
    );
    bus.connect().await.unwrap();
    proxy.must("latency 600");
    let e = bus
        .publish(&unique("lat.t"), &raw("{}"), &PublishOptions::default())
        .await
        .expect_err("a 200 ms timeout on a 1.2 s round trip");
    assert!(
        matches!(
            e.error.kind(),
            ErrorKind::Timeout | ErrorKind::OutcomeUnknown
        ),
        "{:?}: {}",
        e.error.kind(),
        e.error
    );
    proxy.must("heal");
    bus.disconnect().await.unwrap();
}

/// Only the subscriber link is black-holed: its heartbeat notices, it reconnects, reports the
/// gap and subscribes exactly the current set again; the publisher link is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_subscriber_link_is_noticed_and_resubscribed_exactly() {
    let srv = RedisServer::start();
    let proxy = fault_proxy(srv.port);
    let service = unique("bh");
    let bus = client_via(
        &proxy,
        &service,
        r#""heartbeatInterval":300,"reconnectDelay":50,"reconnectDelayMax":200"#,
    );
    bus.connect().await.unwrap();
    let states = StateLog::attach(&bus);
    let (a, b) = (unique("bh.a"), unique("bh.b"));
    let pattern = format!("{}.*", unique("bh.p"));
    let (ca, cb, cp) = (Collector::new(), Collector::new(), Collector::new());
    bus.subscribe(&a, ca.handler(), Default::default())
        .await
        .unwrap();
    let gone = bus
        .subscribe(&b, cb.handler(), Default::default())
        .await
        .unwrap();
    bus.subscribe(&pattern, cp.handler(), Default::default())
        .await
        .unwrap();
    let names = proxy.open_names();
    assert!(names.contains(&format!("{service}:sub")), "{names:?}");
    // One subscription goes before the fault: the resubscribe must not bring it back.
    assert!(bus.unsubscribe(&gone.id).await.unwrap());
    assert_eq!(proxy.must("blackhole :sub"), "ok 1");
    assert!(
        wait_until(Duration::from_secs(30), || states.has("gap")).await,
        "no gap: {:?}",
        states.names()
    );
    let reasons = states.disconnect_reasons(None);
    assert!(
        reasons.iter().any(|r| r.contains("heartbeat")),
        "{reasons:?}"
    );
    // Exactly the current set on the new subscriber connection: `a` and the pattern.
    let mut c = srv.conn();
    let subs: Vec<HashMap<String, String>> = client_list(&mut c)
        .into_iter()
        .filter(|m| m.get("name").map(String::as_str) == Some(&format!("{service}:sub")))
        .collect();
    let newest = subs
        .iter()
        .max_by_key(|m| m["id"].parse::<u64>().unwrap())
        .unwrap();
    assert_eq!(newest["sub"], "1", "{newest:?}");
    assert_eq!(newest["psub"], "1", "{newest:?}");
    // The publisher link was never cut.
    assert_eq!(
        states.count(|e| matches!(
            e,
            event_bus::StateEvent::Disconnected {
                connection: event_bus::Link::Publisher,
                ..
            }
        )),
        0
    );
    // Events flow again.
    let r = bus
        .publish(&a, &raw(r#"{"n":1}"#), &PublishOptions::default())
        .await
        .unwrap();
    assert!(r.delivered_to >= 1);
    assert!(ca.wait_for(1, Duration::from_secs(5)).await >= 1);
    bus.disconnect().await.unwrap();
}

/// The publisher's connection is reset in the middle of a burst of pipelined publishes: every
/// publish ends with exactly one outcome; each success was delivered (the subscriber, on a link
/// the proxy leaves alone, got it); a failure is "outcome unknown" (written, no reply) or a
/// failure before sending; nothing is delivered twice (no silent resend).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_reset_mid_pipeline_loses_nothing_silently() {
    let srv = RedisServer::start();
    let proxy = fault_proxy(srv.port);
    let service = unique("rst");
    let extra = r#""reconnectDelay":50,"reconnectDelayMax":200,"publishTimeout":10000"#;
    let publisher = client_via(&proxy, &service, extra);
    publisher.connect().await.unwrap();
    // The subscriber connects straight to Redis: only the publisher's link is hit.
    let subscriber =
        EventBusClient::from_json(&config(&unique("rst-sub"), &srv.url(), "", "")).unwrap();
    subscriber.connect().await.unwrap();
    let chan = unique("rst.chan");
    let col = Collector::new();
    subscriber
        .subscribe(
            &chan,
            col.handler(),
            event_bus::SubscriptionOptions {
                max_pending: Some(1_000_000),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // About 40 KB into the burst (each PUBLISH is ~300 bytes), the link is reset.
    assert_eq!(proxy.must(&format!("reset {service}:pub 40000")), "ok 1");
    let total = 2000u64;
    let futs: Vec<_> = (0..total)
        .map(|n| {
            let (p, c) = (&publisher, &chan);
            async move {
                p.publish(
                    c,
                    &raw(&format!(r#"{{"n":{n}}}"#)),
                    &PublishOptions::default(),
                )
                .await
            }
        })
        .collect();
    let outcomes = futures_util::future::join_all(futs).await;
    let mut ok = HashSet::new();
    let (mut unknown, mut unsent) = (0, 0);
    for (n, o) in outcomes.iter().enumerate() {
        match o {
            Ok(r) => {
                assert_eq!(r.delivered_to, 1, "publish {n}");
                ok.insert(n as u64);
            }
            Err(f) if f.error.kind() == ErrorKind::OutcomeUnknown => unknown += 1,
            Err(f) => {
                assert!(
                    matches!(
                        f.error.kind(),
                        ErrorKind::Connection | ErrorKind::Closed | ErrorKind::Timeout
                    ),
                    "publish {n}: {:?} {}",
                    f.error.kind(),
                    f.error
                );
                unsent += 1;
            }
        }
    }
    println!(
        "{} succeeded, {unknown} outcome unknown, {unsent} failed before sending",
        ok.len()
    );
    assert!(unknown + unsent > 0, "the reset hit no publish");
    assert!(!ok.is_empty(), "nothing went through before the reset");
    // Every success arrived; what arrived arrived once; and nothing arrived that its caller
    // was told had failed before it was sent.
    assert!(col.wait_for(ok.len(), Duration::from_secs(20)).await >= ok.len());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = col.numbers();
    let seen: HashSet<u64> = got.iter().copied().collect();
    assert_eq!(seen.len(), got.len(), "an event was delivered twice");
    assert!(ok.is_subset(&seen), "a success was not delivered");
    for n in seen.difference(&ok) {
        match &outcomes[*n as usize] {
            Err(f) => assert_eq!(
                f.error.kind(),
                ErrorKind::OutcomeUnknown,
                "publish {n} was delivered but reported {}",
                f.error
            ),
            Ok(_) => unreachable!(),
        }
    }
    // The publisher comes back through the proxy and publishes again.
    let mut back = false;
    for _ in 0..100 {
        if let Ok(r) = publisher
            .publish(&chan, &raw(r#"{"after":1}"#), &PublishOptions::default())
            .await
        {
            back = r.delivered_to == 1;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "the publisher did not recover");
    publisher.disconnect().await.unwrap();
    subscriber.disconnect().await.unwrap();
}

/// New connections refused for a while: connect() fails with a clear error naming the address;
/// once the proxy accepts again, connect() succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_fail_connect_clearly_then_recover() {
    let srv = RedisServer::start();
    let proxy = fault_proxy(srv.port);
    proxy.must("refuse 600000");
    let bus = client_via(&proxy, &unique("refuse"), r#""connectTimeout":2000"#);
    let e = bus
        .connect()
        .await
        .expect_err("every connection is refused");
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(
        e.to_string().contains(&proxy.port().to_string()),
        "the error names the address: {e}"
    );
    assert!(proxy.refused() >= 1);
    proxy.must("heal");
    bus.connect().await.unwrap();
    assert!(bus.is_connected());
    bus.disconnect().await.unwrap();
}

/// The `n` of a numbered publish.
fn numbered(n: u64) -> Box<serde_json::value::RawValue> {
    raw(&format!(r#"{{"n":{n}}}"#))
}

/// An outage of 120 s (existing connections reset, new ones refused) while two publishers go
/// on publishing, 20 a second each. The offline queue holds at most `offlineQueueSize`
/// publishes, the rest fail at once with QUEUE_FULL; the patient publisher's queued publishes
/// (publishTimeout longer than the outage) all succeed once the link is back and are delivered
/// once each, in order; the hasty one's (publishTimeout 2 s) fail with TIMEOUT, never sent,
/// except those made in the last 2 s before the link came back, which are sent and succeed.
/// Every publish ends with exactly one of those outcomes, and memory stays flat meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_of_120_s_keeps_the_offline_queue_bounded_and_loses_nothing_silently() {
    const OUTAGE: Duration = Duration::from_secs(120);
    const QUEUE: usize = 300;
    let srv = RedisServer::start();
    let proxy = fault_proxy(srv.port);
    let reconnect = r#""reconnectDelay":100,"reconnectDelayMax":1000,"offlineQueueSize":300"#;
    let patient = client_via(
        &proxy,
        &unique("outage-patient"),
        &format!(r#"{reconnect},"publishTimeout":200000"#),
    );
    let hasty = client_via(
        &proxy,
        &unique("outage-hasty"),
        &format!(r#"{reconnect},"publishTimeout":2000"#),
    );
    // The subscriber reaches the server directly: it sees what the publishers got through.
    let subscriber =
        EventBusClient::from_json(&config(&unique("outage-sub"), &srv.url(), "", "")).unwrap();
    for c in [&patient, &hasty, &subscriber] {
        c.connect().await.unwrap();
    }
    let (pchan, hchan) = (unique("outage.patient"), unique("outage.hasty"));
    let (pcol, hcol) = (Collector::new(), Collector::new());
    subscriber
        .subscribe(&pchan, pcol.handler(), Default::default())
        .await
        .unwrap();
    subscriber
        .subscribe(&hchan, hcol.handler(), Default::default())
        .await
        .unwrap();

    proxy.must("refuse 100000000");
    proxy.must("reset all");
    let start = std::time::Instant::now();
    let opts = PublishOptions::default();
    // Each outcome is boiled down to a few bytes as it arrives, so what the test keeps does
    // not hide (or fake) the client's own memory curve.
    type Outcome = (
        usize,
        u64,
        Duration,
        std::result::Result<u64, (ErrorKind, String)>,
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Outcome>();
    let mut rss = Vec::new();
    let mut i = 0usize;
    let mut n = 0u64;
    while start.elapsed() < OUTAGE {
        for (bus, chan) in [(&patient, &pchan), (&hasty, &hchan)] {
            let (bus, chan, opts, tx) = (bus.clone(), chan.clone(), opts.clone(), tx.clone());
            let at = start.elapsed();
            tokio::spawn(async move {
                let r = match bus.publish(&chan, &numbered(n), &opts).await {
                    Ok(r) => Ok(r.delivered_to),
                    Err(f) => Err(match f.error.kind() {
                        k @ (ErrorKind::QueueFull | ErrorKind::Timeout) => (k, String::new()),
                        k => (k, f.error.to_string()),
                    }),
                };
                let _ = tx.send((i, n, at, r));
            });
            i += 1;
        }
        n += 1;
        if n.is_multiple_of(200) {
            rss.push(rss_kib());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.must("heal");
    let healed = start.elapsed();
    let (mut ok, mut hasty_ok) = (Vec::new(), Vec::new());
    let (mut full, mut timed_out) = (0usize, 0usize);
    let (mut other, mut unknown) = (Vec::new(), Vec::new());
    drop(tx);
    let mut outcomes = Vec::with_capacity(i);
    while let Some(o) = rx.recv().await {
        outcomes.push(o);
    }
    assert_eq!(outcomes.len(), i, "every publish settled");
    outcomes.sort_by_key(|o| o.0);
    for (i, n, at, r) in outcomes {
        let patient_side = i % 2 == 0;
        match (n, at, r) {
            (n, at, Ok(delivered_to)) => {
                assert_eq!(delivered_to, 1);
                if patient_side {
                    ok.push(n);
                } else {
                    // Still within its 2 s publishTimeout when the link came back.
                    assert!(
                        healed - at < Duration::from_millis(2500),
                        "hasty publish {n} made {at:?} into the outage (healed at {healed:?}) succeeded"
                    );
                    hasty_ok.push(n);
                }
            }
            (_, _, Err((ErrorKind::QueueFull, _))) => full += 1,
            (_, _, Err((ErrorKind::Timeout, _))) if !patient_side => timed_out += 1,
            // Written just as the reset landed, before the client saw it.
            (n, at, Err((ErrorKind::OutcomeUnknown, _))) if at < Duration::from_secs(1) => {
                unknown.push((patient_side, n))
            }
            (n, _, Err((kind, text))) => other.push((patient_side, n, kind, text)),
        }
    }
    assert!(other.is_empty(), "unexpected outcomes: {other:?}");
    let total = n as usize;
    assert_eq!(
        ok.len(),
        QUEUE,
        "exactly the queue's worth waited and succeeded"
    );
    assert_eq!(
        ok.len() + hasty_ok.len() + full + timed_out + unknown.len(),
        2 * total,
        "one outcome per publish"
    );
    assert!(
        timed_out > 0,
        "the hasty publisher's queued publishes timed out"
    );
    assert!(
        pcol.wait_for(QUEUE, Duration::from_secs(30)).await >= QUEUE,
        "every success delivered"
    );
    // An outcome-unknown publish may or may not have arrived; the rest must match exactly.
    let arrived = |col: &Collector, side: bool| -> Vec<u64> {
        col.numbers()
            .into_iter()
            .filter(|n| !unknown.contains(&(side, *n)))
            .collect()
    };
    assert_eq!(
        arrived(&pcol, true),
        ok,
        "delivered once each, in publish order"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        arrived(&hcol, false),
        hasty_ok,
        "the hasty publisher's successes delivered, nothing it was told failed was sent"
    );
    // Flat: after the queue filled (the first samples), the process grew by less than 16 MiB
    // over 2,400 refused publishes.
    let (first, last) = (rss[1], *rss.last().unwrap());
    assert!(
        last < first + 16 * 1024,
        "RSS grew from {first} KiB to {last} KiB during the outage: {rss:?}"
    );
    eprintln!(
        "outage 120 s: {} publishes, {} + {} succeeded after, {full} QUEUE_FULL, {timed_out} TIMEOUT, {} OUTCOME_UNKNOWN; RSS KiB {rss:?}",
        2 * total,
        ok.len(),
        hasty_ok.len(),
        unknown.len()
    );
    for c in [&patient, &hasty, &subscriber] {
        c.disconnect().await.unwrap();
    }
}

/// This process's resident set, KiB.
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}

/// Redis restarted with a new password: the reconnect fails with a clear authentication
/// error (an `error` state event, the password never in it), the client keeps retrying, and it
/// recovers, subscriptions included, once the server takes its password again. (The core has
/// no credential refresh: the config's password is the one it uses.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_a_new_password_is_reported_retried_and_recovered() {
    let mut srv = RedisServer::start_with(&["--requirepass", "first-secret"]);
    let url = format!("redis://:first-secret@127.0.0.1:{}", srv.port);
    let bus = EventBusClient::from_json(&config(
        &unique("newpass"),
        &url,
        r#""reconnectDelay":50,"reconnectDelayMax":300"#,
        "",
    ))
    .unwrap();
    bus.connect().await.unwrap();
    let states = StateLog::attach(&bus);
    let chan = unique("newpass.chan");
    let col = Collector::new();
    bus.subscribe(&chan, col.handler(), Default::default())
        .await
        .unwrap();

    srv.restart_with(&["--requirepass", "second-secret"]);
    let auth_errors = || {
        states.count(|e| {
            matches!(e, event_bus::StateEvent::Error { message, .. }
                if message.to_lowercase().contains("auth") || message.contains("WRONGPASS"))
        })
    };
    assert!(
        wait_until(Duration::from_secs(20), || auth_errors() >= 1).await,
        "an authentication error is reported: {:?}",
        states.events.lock().unwrap()
    );
    for (_, e) in states.events.lock().unwrap().iter() {
        let text = format!("{e:?}");
        assert!(
            !text.contains("first-secret") && !text.contains("second-secret"),
            "a password in a state event: {text}"
        );
    }
    let attempts = states.count(|e| matches!(e, event_bus::StateEvent::Reconnecting { .. }));
    assert!(
        wait_until(Duration::from_secs(20), || {
            states.count(|e| matches!(e, event_bus::StateEvent::Reconnecting { .. })) > attempts + 2
        })
        .await,
        "keeps retrying"
    );
    assert_ne!(bus.health_check().await.status, "healthy");

    // The config is right again: the server takes the client's password.
    let mut admin = srv.conn();
    let _: () = redis::cmd("AUTH")
        .arg("second-secret")
        .query(&mut admin)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("first-secret")
        .query(&mut admin)
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || states.has("gap")).await,
        "resubscribed: {:?}",
        states.names()
    );
    let r = bus
        .publish(&chan, &numbered(1), &PublishOptions::default())
        .await
        .unwrap();
    assert_eq!(r.delivered_to, 1);
    assert_eq!(col.wait_for(1, Duration::from_secs(5)).await, 1);
    bus.disconnect().await.unwrap();
}

/// `CLIENT PAUSE 3000` and `DEBUG SLEEP 3`: the server answers nothing for 3 s. Publishes made
/// meanwhile wait and complete (their publishTimeout, 10 s, is longer), health says
/// `degraded` (its PING gives up after 2 s), and neither link is taken for half-open: the
/// heartbeat waits min(heartbeatInterval, 5 s) for its PONG, here 4 s, longer than the stall.
/// A stall longer than that wait would be taken for a dead link and reconnected (nothing is
/// lost: in-flight publishes become OUTCOME_UNKNOWN), so keep heartbeatInterval above the
/// longest stall expected (a DEBUG SLEEP, a CLIENT PAUSE, a slow fork).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_or_sleeping_server_delays_publishes_without_a_false_reconnect() {
    let srv = RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let extra = r#""heartbeatInterval":4000,"publishTimeout":10000"#;
    let bus = EventBusClient::from_json(&config(&unique("pause"), &srv.url(), extra, "")).unwrap();
    bus.connect().await.unwrap();
    let states = StateLog::attach(&bus);
    let chan = unique("pause.chan");
    let col = Collector::new();
    bus.subscribe(&chan, col.handler(), Default::default())
        .await
        .unwrap();
    let mut n = 0u64;
    for stall in [["CLIENT", "PAUSE", "3000"], ["DEBUG", "SLEEP", "3"]] {
        let port = srv.port;
        // DEBUG SLEEP blocks the server, so its caller waits too: on a thread of its own.
        let staller = std::thread::spawn(move || {
            let mut c = raw_conn(&format!("redis://127.0.0.1:{port}"));
            let _: redis::Value = redis::cmd(stall[0])
                .arg(stall[1])
                .arg(stall[2])
                .query(&mut c)
                .unwrap();
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let health = bus.health_check();
        let publishes: Vec<_> = (0..20)
            .map(|_| {
                n += 1;
                let (bus, chan, n) = (bus.clone(), chan.clone(), n);
                async move {
                    bus.publish(&chan, &numbered(n), &PublishOptions::default())
                        .await
                }
            })
            .collect();
        let (health, results) = tokio::join!(health, futures_util::future::join_all(publishes));
        assert_eq!(health.status, "degraded", "{stall:?}: {:?}", health.checks);
        for r in results {
            let r = r.unwrap_or_else(|f| panic!("{stall:?}: a publish failed: {}", f.error));
            assert_eq!(r.delivered_to, 1);
        }
        staller.join().unwrap();
    }
    assert_eq!(col.wait_for(40, Duration::from_secs(10)).await, 40);
    assert_eq!(col.numbers(), (1..=40).collect::<Vec<_>>());
    // Beyond the stalls, a few more heartbeats: still no reconnect.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(bus.stats().reconnects, 0, "{:?}", states.names());
    assert!(!states.has("disconnected"), "{:?}", states.names());
    assert_eq!(bus.health_check().await.status, "healthy");
    bus.disconnect().await.unwrap();
}

/// The server's `maxclients` reached: connect() fails with a Connection error naming the
/// address and the server's reason (never a bare reset or broken pipe); once a slot is free,
/// connect() succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxclients_reached_fails_connect_clearly_then_succeeds() {
    let srv = RedisServer::start_with(&["--maxclients", "3"]);
    let holders: Vec<redis::Connection> = (0..3).map(|_| raw_conn(&srv.url())).collect();
    let bus = EventBusClient::from_json(&config(
        &unique("maxclients"),
        &srv.url(),
        r#""connectTimeout":3000"#,
        "",
    ))
    .unwrap();
    let e = bus.connect().await.expect_err("no client slot is free");
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    let text = e.to_string();
    assert!(
        text.contains(&srv.port.to_string()),
        "names the address: {text}"
    );
    // Redis writes "-ERR max number of clients reached" and closes at once; even when the
    // client's first command crosses that close (a reset, the reply lost), the core reads the
    // server's reason on a connection of its own and names it.
    assert!(
        text.contains("the server refused a new client: max number of clients reached"),
        "says why: {text}"
    );
    // The same reason, every time (not only when the reply happens to win the race).
    for _ in 0..5 {
        let e = bus.connect().await.expect_err("still no slot");
        assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
        assert!(
            e.to_string().contains("max number of clients reached"),
            "{e}"
        );
    }
    drop(holders);
    assert!(
        wait_until(Duration::from_secs(10), || {
            let mut c = raw_conn(&srv.url());
            client_list(&mut c).len() == 1
        })
        .await
    );
    bus.connect().await.unwrap();
    let r = bus
        .publish(
            &unique("maxclients.ch"),
            &numbered(1),
            &PublishOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(r.delivered_to, 0);
    bus.disconnect().await.unwrap();
}

/// TLS with an expired certificate, or one issued for another host: connect() is refused
/// with the reason, and nothing is sent in plain text instead (the server sees no client of
/// ours at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_expired_or_wrong_host_certificates_are_refused_with_the_reason() {
    for (san, days, why) in [
        ("IP:127.0.0.1, DNS:localhost", "-1", "(it has expired)"),
        (
            "DNS:elsewhere.invalid",
            "2",
            "(it is not issued for this host name)",
        ),
    ] {
        let files = TlsFiles::generate_with(san, days);
        let srv = RedisServer::start_tls_unverified(&files);
        let ca = String::from_utf8(files.ca_pem()).unwrap();
        let cfg = serde_json::json!({
            "serviceName": unique("tlsbad"),
            "logLevel": "error",
            "redis": { "url": srv.url(), "tls": { "ca": ca }, "connectTimeout": 3000 },
        });
        let bus = EventBusClient::from_json(&cfg.to_string()).unwrap();
        let e = bus
            .connect()
            .await
            .expect_err("a bad certificate is refused");
        assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
        let text = e.to_string();
        assert!(
            text.contains(&format!("rediss://127.0.0.1:{}", srv.port)),
            "{text}"
        );
        assert!(
            text.contains("the server's TLS certificate is not trusted") && text.contains(why),
            "{why}: {text}"
        );
        let names: Vec<String> = client_list(&mut srv.conn())
            .into_iter()
            .filter_map(|c| c.get("name").cloned())
            .filter(|n| n.contains("tlsbad"))
            .collect();
        assert!(names.is_empty(), "a client of ours got through: {names:?}");
    }
}
