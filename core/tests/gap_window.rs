//! A `gap` event must cover what was lost: its `from` is the last moment the subscriber link was
//! known to deliver, not the moment the loss was noticed. A black-holed subscriber link (open at
//! both ends, nothing crosses) loses every event published until the heartbeat gives up on it;
//! each of those was published inside the reported gap.

mod common;

use std::time::Duration;

use common::*;
use event_bus::{EventBusClient, PublishOptions, StateEvent};

fn epoch_ms(iso: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(iso)
        .unwrap_or_else(|e| panic!("{iso:?}: {e}"))
        .timestamp_millis()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_lost_to_a_half_open_link_falls_inside_the_gap() {
    let srv = RedisServer::start();
    let proxy = fault_proxy(srv.port);
    let bus = EventBusClient::from_json(&config(
        &unique("gapwin"),
        &proxy.url(),
        r#""heartbeatInterval":300,"reconnectDelay":50,"reconnectDelayMax":200"#,
        "",
    ))
    .unwrap();
    bus.connect().await.unwrap();
    let states = StateLog::attach(&bus);
    let chan = unique("gapwin.chan");
    let col = Collector::new();
    bus.subscribe(&chan, col.handler(), Default::default())
        .await
        .unwrap();
    // Published by a client connected straight to Redis (not through the proxy), each with the
    // time it was sent.
    let publisher =
        EventBusClient::from_json(&config(&unique("gapwin-pub"), &srv.url(), "", "")).unwrap();
    publisher.connect().await.unwrap();
    let mut sent: Vec<(u64, i64)> = Vec::new();
    let mut n = 0u64;
    while n < 20 || !states.has("gap") {
        if n == 20 {
            assert_eq!(col.wait_for(20, Duration::from_secs(10)).await, 20);
            assert_eq!(proxy.must("blackhole :sub"), "ok 1");
        }
        let t = now_ms();
        // Delivered to the black-holed link, to none while the client reconnects, or to the new
        // link: every one of them either arrives or falls in the gap.
        publisher
            .publish(
                &chan,
                &raw(&format!(r#"{{"n":{n}}}"#)),
                &PublishOptions::default(),
            )
            .await
            .unwrap();
        sent.push((n, t));
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(n < 20 + 50 * 30, "no gap within 30 s: {:?}", states.names());
    }
    let (from, to) = states
        .events
        .lock()
        .unwrap()
        .iter()
        .find_map(|(_, e)| match e {
            StateEvent::Gap { from, to, .. } => Some((epoch_ms(from), epoch_ms(to))),
            _ => None,
        })
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got: std::collections::HashSet<u64> = col.numbers().into_iter().collect();
    let lost: Vec<(u64, i64)> = sent
        .iter()
        .copied()
        .filter(|(n, _)| !got.contains(n))
        .collect();
    assert!(!lost.is_empty(), "the black hole swallowed nothing");
    // Clock readings in this test and in the client around one moment: a few ms apart at most.
    let slack = 5;
    for (n, t) in &lost {
        assert!(
            *t + slack >= from && *t <= to + slack,
            "event {n} published at {t} was lost outside the gap [{from}, {to}] \
             (the gap began {} ms after it)",
            from - t
        );
    }
    bus.disconnect().await.unwrap();
    publisher.disconnect().await.unwrap();
}
