//! A W3C `traceparent` in metadata: checked, carried to receivers, and the source of `traceId`
//! when none is given.

mod common;

use std::time::Duration;

use common::*;
use event_bus::{ErrorKind, PublishOptions, SubscriptionOptions};

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_reaches_receivers_and_sets_trace_id() {
    let bus = shared_client(&unique("tp")).await;
    let ty = unique("tp.evt");
    let c = Collector::new();
    bus.subscribe(&ty, c.handler(), SubscriptionOptions::default())
        .await
        .unwrap();
    let with_tp =
        PublishOptions::from_json(&format!(r#"{{"metadata":{{"traceparent":"{TP}"}}}}"#)).unwrap();
    bus.publish(&ty, &raw("1"), &with_tp).await.unwrap();
    let explicit = PublishOptions::from_json(&format!(
        r#"{{"traceId":"mine","metadata":{{"traceparent":"{TP}"}}}}"#
    ))
    .unwrap();
    bus.publish(&ty, &raw("2"), &explicit).await.unwrap();
    assert_eq!(c.wait_for(2, Duration::from_secs(10)).await, 2);
    let got = c.all();
    let meta: Vec<serde_json::Value> = got
        .iter()
        .map(|d| serde_json::from_str(&d.metadata_json()).unwrap())
        .collect();
    assert_eq!(meta[0]["traceparent"], TP);
    assert_eq!(meta[0]["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(meta[1]["traceparent"], TP);
    assert_eq!(meta[1]["traceId"], "mine");

    let bad = PublishOptions::from_json(r#"{"metadata":{"traceparent":"00-xyz-01"}}"#).unwrap();
    let err = bus.publish(&ty, &raw("3"), &bad).await.unwrap_err();
    assert_eq!(err.error.kind(), ErrorKind::Validation);
    assert!(err
        .error
        .to_string()
        .contains("metadata.traceparent must be a W3C traceparent"));
    let not_text = PublishOptions::from_json(r#"{"metadata":{"traceparent":7}}"#).unwrap();
    assert!(bus.publish(&ty, &raw("4"), &not_text).await.is_err());
    bus.disconnect().await.unwrap();
}
