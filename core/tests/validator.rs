//! The validator: the TS package's rules and messages, limits configurable through the
//! config's `validation` object, strict photo schemas on request.

mod common;

use common::*;
use event_bus::{ErrorKind, EventBusClient, EventValidator, PublishOptions};

fn msg(r: event_bus::PublishOutcome) -> String {
    let f = r.unwrap_err();
    assert_eq!(f.error.kind(), ErrorKind::Validation);
    f.error.message().to_string()
}

async fn mem(extra: &str) -> EventBusClient {
    let t = if extra.is_empty() {
        String::new()
    } else {
        format!(",{extra}")
    };
    let bus = EventBusClient::from_json(&format!(
        r#"{{"serviceName":"val","transport":"memory","redis":{{"url":"memory://{}"}}{t}}}"#,
        unique("val")
    ))
    .unwrap();
    bus.connect().await.unwrap();
    bus
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_rules_and_messages() {
    let bus = mem("").await;
    let d = raw("1");
    let o = PublishOptions::default();
    assert_eq!(msg(bus.publish("", &d, &o).await), "Event type is required");
    assert_eq!(
        msg(bus.publish("a b", &d, &o).await),
        "Event type can only contain alphanumeric characters, dots, hyphens, and underscores"
    );
    assert_eq!(
        msg(bus.publish(&"a".repeat(256), &d, &o).await),
        "Event type is too long (max 255 characters)"
    );
    assert!(bus.publish(&"a".repeat(255), &d, &o).await.is_ok());
    assert!(bus.publish("A-z_0.9", &d, &o).await.is_ok());
    assert_eq!(
        msg(bus.publish("a", &raw("null"), &o).await),
        "Event data is required"
    );
    for (field, opts) in [
        (
            "traceId",
            PublishOptions {
                trace_id: Some(String::new()),
                ..Default::default()
            },
        ),
        (
            "userId",
            PublishOptions {
                user_id: Some(String::new()),
                ..Default::default()
            },
        ),
        (
            "correlationId",
            PublishOptions {
                correlation_id: Some(String::new()),
                ..Default::default()
            },
        ),
    ] {
        assert_eq!(
            msg(bus.publish("a", &d, &opts).await),
            format!("{field} cannot be empty")
        );
    }
    let long = PublishOptions {
        trace_id: Some("t".repeat(256)),
        ..Default::default()
    };
    assert_eq!(
        msg(bus.publish("a", &d, &long).await),
        "traceId is too long (max 255 characters)"
    );
    let ok = PublishOptions {
        trace_id: Some("t".repeat(255)),
        ..Default::default()
    };
    assert!(bus.publish("a", &d, &ok).await.is_ok());
    // Default limits: data <= 512 KiB, event <= 1 MiB.
    let big = raw(&format!("\"{}\"", "x".repeat(600 * 1024)));
    let m = msg(bus.publish("a", &big, &o).await);
    assert!(
        m.starts_with("Event data size (")
            && m.ends_with("exceeds maximum allowed size (524288 bytes)"),
        "{m}"
    );
    let st = bus.stats();
    assert_eq!(st.events_failed, 9);
    assert!(st.error_rate > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_configurable() {
    let bus = mem(r#""validation":{"maxEventSize":400,"maxDataSize":100}"#).await;
    assert_eq!(bus.validator().max_event_size, 400);
    let o = PublishOptions::default();
    assert!(bus
        .publish("a", &raw(&format!("\"{}\"", "x".repeat(90))), &o)
        .await
        .is_ok());
    let m = msg(bus
        .publish("a", &raw(&format!("\"{}\"", "x".repeat(120))), &o)
        .await);
    assert_eq!(
        m,
        "Event data size (122 bytes) exceeds maximum allowed size (100 bytes)"
    );
    let many = PublishOptions {
        trace_id: Some("t".repeat(200)),
        correlation_id: Some("c".repeat(200)),
        ..Default::default()
    };
    let m = msg(bus.publish("a", &raw("1"), &many).await);
    assert!(
        m.starts_with("Event size (") && m.ends_with("exceeds maximum allowed size (400 bytes)"),
        "{m}"
    );
    // A larger limit lets 600 KiB of data through.
    let bus = mem(r#""validation":{"maxDataSize":1000000}"#).await;
    assert!(bus
        .publish("a", &raw(&format!("\"{}\"", "x".repeat(600 * 1024))), &o)
        .await
        .is_ok());
    // (Received messages over the event limit are invalid: tests/bad_messages.rs.)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_schemas_on_request() {
    let bad = raw(r#"{"photoId":"p"}"#);
    let o = PublishOptions::default();
    let lax = mem("").await;
    assert!(lax.publish("photo.uploaded", &bad, &o).await.is_ok());
    let strict = mem(r#""validation":{"strictSchemas":true}"#).await;
    assert_eq!(
        msg(strict.publish("photo.uploaded", &bad, &o).await),
        "Field 'userId' is required"
    );
    let good = raw(
        r#"{"photoId":"p","userId":"u","filename":"f.jpg","size":1,"mimeType":"image/jpeg","uploadedAt":"2026-01-01T00:00:00.000Z"}"#,
    );
    assert!(strict.publish("photo.uploaded", &good, &o).await.is_ok());
    assert_eq!(
        msg(strict
            .publish(
                "photo.processing.progress",
                &raw(r#"{"photoId":"p","userId":"u","jobId":"j","progress":101,"stage":"s"}"#),
                &o
            )
            .await),
        "Progress must be between 0 and 100"
    );
    assert!(strict.publish("other.event", &raw("1"), &o).await.is_ok());
}

#[test]
fn validator_public_api() {
    let v = EventValidator::new(10, 5);
    assert!(v.validate_sizes(10, 5).is_ok());
    assert!(v.validate_sizes(11, 5).is_err());
    let v = EventValidator::default();
    assert_eq!(
        v.validate_id("", "userId").unwrap_err().message(),
        "userId cannot be empty"
    );
    assert_eq!(
        v.validate_timestamp("x").unwrap_err().message(),
        "Invalid timestamp format"
    );
    let past = (chrono::Utc::now() - chrono::Duration::hours(25))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    assert_eq!(
        v.validate_timestamp(&past).unwrap_err().message(),
        "Timestamp is too far in the past"
    );
    let fut = (chrono::Utc::now() + chrono::Duration::hours(2))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    assert_eq!(
        v.validate_timestamp(&fut).unwrap_err().message(),
        "Timestamp is too far in the future"
    );
    assert!(v.validate_timestamp(&event_bus::event::now_iso()).is_ok());
}
