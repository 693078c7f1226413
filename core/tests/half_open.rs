//! Half-open links: a client talks to a private redis-server through the fault proxy, whose
//! current connections are black-holed, so both of the client's sockets stay open but nothing
//! crosses them, which TCP alone would not notice for hours. The PING heartbeat must find out, and the
//! client reconnect, resubscribe, report the gap and deliver again; a publish written into the
//! frozen link ends as "outcome unknown" at its timeout instead of hanging.

mod common;

use std::time::Duration;

use common::*;
use event_bus::{ErrorKind, EventBusClient, PublishOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_detects_a_frozen_link_and_the_client_recovers() {
    let srv = RedisServer::start();
    let proxy = fault_proxy(srv.port);
    let bus = EventBusClient::from_json(&config(
        &unique("halfopen"),
        &proxy.url(),
        r#""heartbeatInterval":300,"reconnectDelay":50,"reconnectDelayMax":200,"publishTimeout":1500"#,
        "",
    ))
    .unwrap();
    bus.connect().await.unwrap();
    let states = StateLog::attach(&bus);
    let chan = unique("halfopen.chan");
    let col = Collector::new();
    bus.subscribe(&chan, col.handler(), Default::default())
        .await
        .unwrap();
    let data = raw(r#"{"n":1}"#);
    let r = bus
        .publish(&chan, &data, &PublishOptions::default())
        .await
        .unwrap();
    assert_eq!(r.delivered_to, 1);
    assert_eq!(col.wait_for(1, Duration::from_secs(5)).await, 1);
    let before = proxy.accepted();
    assert_eq!(before, 2, "publisher and subscriber connections");

    // Freeze both links. Redis still counts the old subscriber (it saw no close), but nothing
    // it sends reaches the client.
    assert_eq!(proxy.must("blackhole all"), "ok 2");
    let frozen_at = std::time::Instant::now();
    assert!(states.names().is_empty(), "{:?}", states.names());

    // A publish written into the frozen link is neither lost silently nor hung: it fails as
    // "outcome unknown" at its timeout (or, if the heartbeat already closed the link, as
    // unknown or unsent), and says so.
    let e = bus
        .publish(&chan, &data, &PublishOptions::default())
        .await
        .expect_err("a publish into a frozen link cannot succeed");
    assert!(
        matches!(
            e.error.kind(),
            ErrorKind::OutcomeUnknown | ErrorKind::Timeout | ErrorKind::Closed
        ),
        "{}",
        e.error
    );

    // Both heartbeats time out, both connections are replaced through the proxy, and the
    // subscription comes back with a gap notice.
    assert!(
        wait_until(Duration::from_secs(30), || proxy.accepted() >= before + 2
            && states.has("gap"))
        .await,
        "no recovery: {} connections, states {:?}",
        proxy.accepted(),
        states.names()
    );
    println!(
        "recovered {} ms after the freeze (heartbeat 300 ms)",
        frozen_at.elapsed().as_millis()
    );
    let reasons = states.disconnect_reasons(None);
    assert!(
        reasons.iter().any(|r| r.contains("heartbeat")),
        "disconnect reasons: {reasons:?}"
    );

    // Events flow again both ways: ours reach Redis and Redis's reach our handler.
    let got = col.len();
    let mut delivered = 0;
    for _ in 0..100 {
        match bus.publish(&chan, &data, &PublishOptions::default()).await {
            Ok(r) if r.delivered_to >= 1 => {
                delivered = r.delivered_to;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(delivered >= 1, "publishes succeed again");
    assert!(col.wait_for(got + 1, Duration::from_secs(5)).await > got);
    bus.disconnect().await.unwrap();
}
