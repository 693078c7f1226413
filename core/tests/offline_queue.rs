//! The bounded offline queue: while Redis is down, publishes past `redis.offlineQueueSize`
//! fail at once with QueueFull; queued ones fail at the publish timeout with Timeout. None is
//! lost without its caller being told.

mod common;

use std::time::{Duration, Instant};

use common::*;
use event_bus::{ErrorKind, EventBusClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_queue_cap_and_timeout() {
    let mut server = RedisServer::start();
    let cap = 5;
    let timeout_ms = 1500u64;
    let cfg = config(
        &unique("offq"),
        &server.url(),
        &format!(
            r#""offlineQueueSize":{cap},"publishTimeout":{timeout_ms},"reconnectDelay":50,"reconnectDelayMax":200"#
        ),
        "",
    );
    let bus = EventBusClient::from_json(&cfg).unwrap();
    bus.connect().await.unwrap();
    server.kill();
    assert!(
        wait_until(Duration::from_secs(5), || bus.stats().active_connections
            == 0)
        .await
    );

    let total = cap + 4;
    let mut tasks = Vec::new();
    let t0 = Instant::now();
    for i in 0..total {
        let bus = bus.clone();
        tasks.push(tokio::spawn(async move {
            let r = bus
                .publish("offq.ev", &raw(&format!("{i}")), &Default::default())
                .await;
            (Instant::now(), r)
        }));
        // Keep them in order so the first `cap` take the queue slots.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut full = Vec::new();
    let mut timed_out = Vec::new();
    for t in tasks {
        let (at, r) = t.await.unwrap();
        let f = r.expect_err("Redis is down: no publish can succeed");
        match f.error.kind() {
            ErrorKind::QueueFull => full.push(at - t0),
            ErrorKind::Timeout => timed_out.push(at - t0),
            other => panic!("unexpected {other:?}: {}", f.error),
        }
        assert!(f.error.is_not_sent());
        assert!(!f.event_id.is_empty());
    }
    println!("queue-full after {full:?}; timed out after {timed_out:?}");
    assert_eq!(full.len(), total - cap);
    assert_eq!(timed_out.len(), cap);
    // "At once": well before the publish timeout; the queued ones at the timeout.
    for d in &full {
        assert!(*d < Duration::from_millis(timeout_ms / 2), "{d:?}");
    }
    for d in &timed_out {
        assert!(*d >= Duration::from_millis(timeout_ms - 50), "{d:?}");
    }
    let st = bus.stats();
    assert_eq!(st.events_failed, total as u64);
    assert_eq!(st.events_published, 0);

    // The slots are free again: after the restart, publishes go through and the queued ones
    // that timed out were never sent.
    server.restart();
    assert!(bus.wait_until_up(Duration::from_secs(5)).await);
    let r = bus.publish("offq.ev", &raw("1"), &Default::default()).await;
    assert!(r.is_ok(), "{:?}", r.err());
    bus.disconnect().await.unwrap();
}
