//! The memory transport: the same glob and channel semantics as Redis (every captured Redis 7
//! vector) and the same `deliveredTo`.

mod common;

use std::time::Duration;

use common::*;
use event_bus::EventBusClient;

#[path = "common/glob_vectors.rs"]
mod glob_vectors;

async fn mem(broker: &str, service: &str) -> EventBusClient {
    let bus = EventBusClient::from_json(&format!(
        r#"{{"serviceName":"{service}","logLevel":"error","redis":{{"url":"memory://{broker}"}}}}"#
    ))
    .unwrap();
    bus.connect().await.unwrap();
    bus
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glob_vectors_through_the_broker() {
    // Each vector: subscribe the pattern, publish on the channel, delivered iff Redis matched.
    let broker = unique("memglob");
    let bus = mem(&broker, "g").await;
    let mut checked = 0;
    let mut bad = Vec::new();
    for row in glob_vectors::rows() {
        // Only channels a publish can produce (valid event types) go through the API.
        if bus.validator().validate_event_type(&row.channel).is_err() {
            continue;
        }
        let c = Collector::new();
        let s = bus
            .subscribe(&row.pattern, c.handler(), Default::default())
            .await
            .unwrap();
        let r = bus
            .publish(&row.channel, &raw("1"), &Default::default())
            .await
            .unwrap();
        let delivered = r.delivered_to == 1;
        if delivered != row.matched {
            bad.push(format!(
                "{:?} {:?} redis={}",
                row.pattern, row.channel, row.matched
            ));
        }
        if delivered {
            assert_eq!(c.wait_for(1, Duration::from_secs(2)).await, 1);
        }
        bus.unsubscribe(&s.id).await.unwrap();
        checked += 1;
    }
    assert!(checked > 100, "checked {checked}");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_one_broker_see_each_other_and_delivered_to_counts() {
    let broker = unique("memdt");
    let a = mem(&broker, "a").await;
    let b = mem(&broker, "b").await;
    let other = mem(&unique("other"), "c").await;
    let (ca, cb, cb2, co) = (
        Collector::new(),
        Collector::new(),
        Collector::new(),
        Collector::new(),
    );
    a.subscribe("photo.*", ca.handler(), Default::default())
        .await
        .unwrap();
    b.subscribe("photo.uploaded", cb.handler(), Default::default())
        .await
        .unwrap();
    b.subscribe("photo.*", cb2.handler(), Default::default())
        .await
        .unwrap();
    other
        .subscribe("photo.*", co.handler(), Default::default())
        .await
        .unwrap();
    let r = a
        .publish("photo.uploaded", &raw(r#"{"p":1}"#), &Default::default())
        .await
        .unwrap();
    // Like Redis: one per matching (p)subscription per client: a's photo.*, b's channel and b's
    // photo.*; the client on another broker is not reached.
    assert_eq!(r.delivered_to, 3);
    for c in [&ca, &cb, &cb2] {
        assert_eq!(c.wait_for(1, Duration::from_secs(2)).await, 1);
    }
    assert_eq!(co.len(), 0);
    assert_eq!(ca.all()[0].metadata().source.as_deref(), Some("a"));
    let r = b
        .publish_to_room("r1", "chat.message", &raw("1"), &Default::default())
        .await
        .unwrap();
    assert_eq!((r.channel.as_str(), r.delivered_to), ("room:r1", 0));
    // After a disconnects, it is no longer counted.
    a.disconnect().await.unwrap();
    let r = b
        .publish("photo.uploaded", &raw("1"), &Default::default())
        .await
        .unwrap();
    assert_eq!(r.delivered_to, 2);
    b.disconnect().await.unwrap();
    other.disconnect().await.unwrap();
}
