use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use event_bus::{Delivery, EventBusClient, HandlerError, PublishOptions};
use serde_json::value::RawValue;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_subscribe_roundtrip() {
    let cfg = format!(
        r#"{{"serviceName":"smoke","redis":{{"url":"{}"}}}}"#,
        redis_url()
    );
    let bus = EventBusClient::from_json(&cfg).unwrap();
    bus.connect().await.unwrap();
    let got = Arc::new(AtomicUsize::new(0));
    let g = got.clone();
    let chan = format!("smoke.{}", uuid_like());
    bus.subscribe(
        &format!("{chan}.*"),
        Arc::new(move |ev: Delivery| {
            let g = g.clone();
            async move {
                assert!(ev.event_type().ends_with(".x"));
                g.fetch_add(1, Ordering::SeqCst);
                Ok::<(), HandlerError>(())
            }
        }),
        Default::default(),
    )
    .await
    .unwrap();
    let data = RawValue::from_string(r#"{"a":1}"#.into()).unwrap();
    for _ in 0..100 {
        let r = bus
            .publish(&format!("{chan}.x"), &data, &PublishOptions::default())
            .await
            .unwrap();
        assert_eq!(r.delivered_to, 1);
    }
    for _ in 0..100 {
        if got.load(Ordering::SeqCst) == 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(got.load(Ordering::SeqCst), 100);
    let st = bus.stats();
    assert_eq!(st.events_delivered, 100);
    bus.disconnect().await.unwrap();
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::process::id() as u64 * 1_000_003
            + std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos() as u64
    )
}
