//! Slow subscribers and Redis's `client-output-buffer-limit pubsub`.
//!
//! The core reads the subscriber socket continuously: handlers sit behind bounded
//! per-subscription queues, so a blocked handler never stops the reads and Redis's output
//! buffer for the client never fills. So the issue's scenario (a blocked handler, 50,000 x 1 KB
//! events, `pubsub 1mb 256kb 5`) does NOT get the client evicted: the first test asserts
//! exactly that, plus the queue bound. The second test forces an eviction deterministically (one
//! message larger than the 1 MB hard limit) to prove an eviction is detected, reported and
//! followed by a resubscribe, with the publisher connection untouched.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use event_bus::{BatchItem, Delivery, EventBusClient, HandlerError, Link, SubscriptionOptions};

const LIMIT: [&str; 2] = ["--client-output-buffer-limit", "pubsub 1mb 256kb 5"];

fn ids_by_name(c: &mut redis::Connection) -> HashMap<String, String> {
    client_list(c)
        .into_iter()
        .filter_map(|m| Some((m.get("name")?.clone(), m.get("id")?.clone())))
        .filter(|(n, _)| !n.is_empty())
        .collect()
}

fn sub_disconnects(states: &StateLog) -> Vec<String> {
    states.disconnect_reasons(Some(Link::Subscriber))
}

fn pub_disconnects(states: &StateLog) -> usize {
    states.disconnect_reasons(Some(Link::Publisher)).len()
}

async fn client(server: &RedisServer, service: &str) -> (EventBusClient, StateLog) {
    let bus = EventBusClient::from_json(&config(
        service,
        &server.url(),
        r#""reconnectDelay":50,"reconnectDelayMax":200"#,
        "",
    ))
    .unwrap();
    bus.connect().await.unwrap();
    let states = StateLog::attach(&bus);
    (bus, states)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_handler_is_not_evicted_because_reads_never_stop() {
    let server = RedisServer::start_with(&LIMIT);
    let service = unique("slowsub");
    let (bus, states) = client(&server, &service).await;
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    let sub = bus
        .subscribe(
            "slow.chan",
            Arc::new(move |_d: Delivery| {
                s.fetch_add(1, Ordering::SeqCst);
                let g = g.clone();
                async move {
                    let _p = g.acquire().await; // blocked until the test adds permits
                    Ok::<(), HandlerError>(())
                }
            }),
            SubscriptionOptions {
                max_pending: Some(1000),
                timeout: Some(600_000),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut admin = server.conn();
    let before = ids_by_name(&mut admin);
    let data = raw(&format!(r#"{{"pad":"{}"}}"#, "k".repeat(1000)));
    let total = 50_000;
    let mut sent = 0;
    while sent < total {
        let items: Vec<BatchItem> = (0..500)
            .map(|_| BatchItem {
                event_type: "slow.chan".into(),
                data: data.clone(),
                options: Default::default(),
            })
            .collect();
        for r in bus.publish_batch(&items).await {
            r.expect("publisher unaffected");
        }
        sent += 500;
        assert!(bus.pending_events(&sub.id).unwrap() <= 1000);
        // Keep the publisher at most two batches ahead of the reader: the point is that a
        // blocked handler never stops the reads, not a race between publisher and reader
        // (on a starved machine the publisher could otherwise fill Redis's 1 MB limit).
        assert!(
            wait_until(Duration::from_secs(30), || bus.stats().events_received
                + 1000
                >= sent as u64)
            .await,
            "reads stalled at {} of {sent}",
            bus.stats().events_received
        );
    }
    assert!(
        wait_until(Duration::from_secs(60), || bus.stats().events_received
            == total as u64)
        .await,
        "every message was read off the socket: {}",
        bus.stats().events_received
    );
    let st = bus.stats();
    println!(
        "received {}, dropped {}, queued {}",
        st.events_received,
        st.events_dropped,
        bus.pending_events(&sub.id).unwrap()
    );
    assert!(
        sub_disconnects(&states).is_empty(),
        "not evicted: {:?}",
        sub_disconnects(&states)
    );
    assert_eq!(pub_disconnects(&states), 0);
    assert_eq!(
        ids_by_name(&mut admin),
        before,
        "both connections are the original ones"
    );
    assert_eq!(bus.pending_events(&sub.id), Some(1000), "queue bound held");
    assert_eq!(
        st.events_dropped,
        total as u64 - 1 - 1000,
        "drops = received - in handler - queued"
    );
    gate.add_permits(10_000);
    bus.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_is_detected_reported_and_recovered() {
    let server = RedisServer::start_with(&LIMIT);
    let service = unique("evict");
    let (bus, states) = client(&server, &service).await;
    let col = Collector::new();
    bus.subscribe("evict.chan", col.handler(), Default::default())
        .await
        .unwrap();
    let mut admin = server.conn();
    let before = ids_by_name(&mut admin);
    let pub_name = format!("{service}:pub");
    let sub_name = format!("{service}:sub");
    assert!(before.contains_key(&pub_name) && before.contains_key(&sub_name));

    // One message over the 1 MB hard limit: Redis closes the subscriber at once.
    let big = vec![b'x'; 2 * 1024 * 1024];
    assert_eq!(raw_publish(&mut admin, "evict.chan", &big), 1);
    assert!(
        wait_until(Duration::from_secs(5), || !sub_disconnects(&states)
            .is_empty())
        .await,
        "eviction reported"
    );
    println!("reported: {:?}", sub_disconnects(&states));
    assert!(
        wait_until(Duration::from_secs(5), || states.has("gap")).await,
        "reconnected with a gap notice: {:?}",
        states.names()
    );
    assert!(bus.wait_until_up(Duration::from_secs(5)).await);
    assert_eq!(numsub(&mut admin, "evict.chan"), 1, "resubscribed");
    let after = ids_by_name(&mut admin);
    assert_ne!(
        after[&sub_name], before[&sub_name],
        "a new subscriber connection"
    );
    assert_eq!(
        after[&pub_name], before[&pub_name],
        "publisher connection unaffected"
    );
    assert_eq!(pub_disconnects(&states), 0);
    let r = bus
        .publish("evict.chan", &raw(r#"{"after":true}"#), &Default::default())
        .await
        .unwrap();
    assert_eq!(r.delivered_to, 1);
    assert_eq!(col.wait_for(1, Duration::from_secs(5)).await, 1);
    assert_eq!(col.all()[0].data()["after"], true);
    assert!(bus.stats().reconnects >= 1);
    bus.disconnect().await.unwrap();
}

/// A subscriber that reads slower than a publisher of the same process writes (its link capped
/// at 4 MB/s by the fault proxy, the publisher's not) is not pushed past Redis's pub/sub output
/// limit (8 MB here, no soft limit): the publisher waits for it instead of filling Redis's
/// buffer for it. 1,000 events of 16 KB (16 MB), in bursts of 250: without the wait Redis holds
/// most of them for the subscriber at once and cuts it off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_waits_for_a_slow_subscriber_of_its_own_process() {
    let server = RedisServer::start_with(&["--client-output-buffer-limit", "pubsub 8mb 0 0"]);
    let proxy = fault_proxy(server.port);
    let cfg = |service: &str| {
        config(
            service,
            &proxy.url(),
            r#""publishTimeout":60000,"reconnectDelay":50,"reconnectDelayMax":200"#,
            "",
        )
    };
    let (pub_service, sub_service) = (unique("ahead-pub"), unique("ahead-sub"));
    let publisher = EventBusClient::from_json(&cfg(&pub_service)).unwrap();
    let subscriber = EventBusClient::from_json(&cfg(&sub_service)).unwrap();
    publisher.connect().await.unwrap();
    subscriber.connect().await.unwrap();
    let states = StateLog::attach(&subscriber);
    let got = Arc::new(AtomicUsize::new(0));
    let g = got.clone();
    subscriber
        .subscribe(
            "ahead.chan",
            Arc::new(move |_d: Delivery| {
                g.fetch_add(1, Ordering::Relaxed);
                async { Ok::<(), HandlerError>(()) }
            }),
            SubscriptionOptions {
                max_pending: Some(10_000),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        proxy.must(&format!("bandwidth 4000000 {sub_service}:sub")),
        "ok 1",
        "the subscriber's link is capped"
    );
    let total = 1_000;
    let data = raw(&format!(r#"{{"pad":"{}"}}"#, "x".repeat(16_000)));
    let opts = event_bus::PublishOptions::default();
    for _ in 0..total / 250 {
        let futs = (0..250).map(|_| publisher.publish("ahead.chan", &data, &opts));
        for r in futures_util::future::join_all(futs).await {
            r.expect("published");
        }
    }
    wait_until(Duration::from_secs(60), || {
        got.load(Ordering::Relaxed) >= total || !sub_disconnects(&states).is_empty()
    })
    .await;
    assert_eq!(
        sub_disconnects(&states),
        Vec::<String>::new(),
        "the subscriber was never cut off"
    );
    assert_eq!(got.load(Ordering::Relaxed), total, "every event arrived");
    publisher.disconnect().await.unwrap();
    subscriber.disconnect().await.unwrap();
}
