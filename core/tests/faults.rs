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
