//! Subscription changes made while Redis is down are applied on reconnect: the server ends up
//! with exactly the registry's set.

mod common;

use std::time::Duration;

use common::*;
use event_bus::EventBusClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_a_subscribe_b_while_down() {
    let mut server = RedisServer::start();
    let cfg = config(
        &unique("offchg"),
        &server.url(),
        r#""reconnectDelay":50,"reconnectDelayMax":200"#,
        "",
    );
    let bus = EventBusClient::from_json(&cfg).unwrap();
    bus.connect().await.unwrap();
    let col = Collector::new();
    let a_chan = bus
        .subscribe("a.chan", col.handler(), Default::default())
        .await
        .unwrap();
    let a_pat = bus
        .subscribe("a.pat.*", col.handler(), Default::default())
        .await
        .unwrap();
    let keep = bus
        .subscribe("k.chan", col.handler(), Default::default())
        .await
        .unwrap();
    let mut c = server.conn();
    assert_eq!(channels(&mut c, "*"), ["a.chan", "k.chan"]);
    assert_eq!(numpat(&mut c), 1);
    drop(c);

    server.kill();
    assert!(
        wait_until(Duration::from_secs(5), || bus.stats().active_connections
            == 0)
        .await,
        "client noticed the outage"
    );
    assert!(bus.unsubscribe(&a_chan.id).await.unwrap());
    assert!(bus.unsubscribe(&a_pat.id).await.unwrap());
    bus.subscribe("b.chan", col.handler(), Default::default())
        .await
        .unwrap();
    bus.subscribe("b.pat.*", col.handler(), Default::default())
        .await
        .unwrap();
    let _ = keep;
    server.restart();
    assert!(bus.wait_until_up(Duration::from_secs(5)).await);
    let mut c = server.conn();
    // The subscriber marks itself up only after its resubscribe was confirmed.
    assert_eq!(channels(&mut c, "*"), ["b.chan", "k.chan"]);
    assert_eq!(numpat(&mut c), 1);
    assert_eq!(raw_publish(&mut c, "a.pat.x", b"{}"), 0, "old pattern gone");
    assert_eq!(
        raw_publish(&mut c, "b.pat.x", b"{}"),
        1,
        "new pattern there"
    );
    let r = bus
        .publish("b.chan", &raw("1"), &Default::default())
        .await
        .unwrap();
    assert_eq!(r.delivered_to, 1);
    bus.disconnect().await.unwrap();
}
