//! Wire format: the TS captures decode intact through a real Redis; encoding gives the
//! TS key order, UUID v4 ids, `toISOString()` timestamps and the channel rules.

mod common;

use std::time::Duration;

use common::*;
use event_bus::event::{channel_for, encode};
use event_bus::{Delivery, PublishOptions};
use serde_json::{Map, Value};

#[derive(serde::Deserialize)]
struct Capture {
    channel: String,
    message: String,
}

fn captures() -> Vec<Capture> {
    include_str!("../../tests/fixtures/vectors/wire-ts-reference.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn is_uuid_v4(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok_and(|u| u.get_version_num() == 4) && s.len() == 36
}

fn is_iso_millis_z(s: &str) -> bool {
    // 2026-11-27T04:28:49.612Z
    let b = s.as_bytes();
    s.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_capture_is_received_and_decoded_intact() {
    let caps = captures();
    assert!(caps.len() >= 8);
    let bus = shared_client(&unique("wire")).await;
    let prefix = unique("wirecap");
    let col = Collector::new();
    bus.subscribe(&format!("{prefix}:*"), col.handler(), Default::default())
        .await
        .unwrap();
    let mut c = raw_conn(&shared_url());
    for cap in &caps {
        let n = raw_publish(
            &mut c,
            &format!("{prefix}:{}", cap.channel),
            cap.message.as_bytes(),
        );
        assert_eq!(n, 1);
    }
    assert_eq!(
        col.wait_for(caps.len(), Duration::from_secs(10)).await,
        caps.len()
    );
    let got = col.all();
    for (cap, d) in caps.iter().zip(&got) {
        let orig: Value = serde_json::from_str(&cap.message).unwrap();
        assert_eq!(d.channel(), format!("{prefix}:{}", cap.channel));
        assert_eq!(d.pattern(), Some(format!("{prefix}:*").as_str()));
        assert_eq!(d.id(), orig["id"].as_str().unwrap());
        assert_eq!(d.event_type(), orig["type"].as_str().unwrap());
        assert_eq!(d.data(), orig["data"], "data of {}", cap.message);
        let meta: Value = serde_json::from_str(&d.metadata_json()).unwrap();
        assert_eq!(meta, orig["metadata"]);
        assert_eq!(
            keys(&meta),
            keys(&orig["metadata"]),
            "metadata key order kept"
        );
        assert_eq!(d.payload(), cap.message, "payload exactly as on the wire");
        assert_eq!(
            d.metadata().source.as_deref(),
            orig["metadata"]["source"].as_str()
        );
        // The event handed to Node/C handlers: the message plus channel and pattern.
        let full: Value = serde_json::from_str(&d.to_json_with_channel()).unwrap();
        assert_eq!(full["data"], orig["data"]);
        assert_eq!(full["channel"], Value::String(d.channel().to_string()));
    }
    assert_eq!(bus.stats().invalid_messages, 0);
    bus.disconnect().await.unwrap();
}

#[test]
fn captures_decode_offline_too() {
    for cap in captures() {
        let d = Delivery::decode(&cap.channel, None, cap.message.as_bytes()).unwrap();
        let orig: Value = serde_json::from_str(&cap.message).unwrap();
        assert_eq!(d.data(), orig["data"]);
    }
}

#[test]
fn encoding_key_order_ids_and_timestamp() {
    let data = raw(r#"{"photoId":"p1","nested":{"b":1,"a":[1,2]}}"#);
    let opts = PublishOptions {
        correlation_id: Some("corr-1".into()),
        user_id: Some("user-9".into()),
        trace_id: Some("trace-7".into()),
        ..Default::default()
    };
    let ev = encode("svc-a", "photo.uploaded", &data, &opts);
    let v: Value = serde_json::from_str(&ev.payload).unwrap();
    assert_eq!(keys(&v), ["id", "type", "data", "metadata"]);
    assert_eq!(
        keys(&v["metadata"]),
        [
            "source",
            "timestamp",
            "traceId",
            "correlationId",
            "userId",
            "version"
        ]
    );
    assert!(is_uuid_v4(v["id"].as_str().unwrap()));
    assert_eq!(v["id"].as_str().unwrap(), ev.id);
    assert!(
        is_iso_millis_z(v["metadata"]["timestamp"].as_str().unwrap()),
        "{}",
        v["metadata"]["timestamp"]
    );
    assert_eq!(v["metadata"]["timestamp"].as_str().unwrap(), ev.timestamp);
    assert_eq!(v["metadata"]["source"], "svc-a");
    assert_eq!(v["metadata"]["traceId"], "trace-7");
    assert_eq!(v["metadata"]["version"], "1.0.0");
    // data copied through byte for byte (nested key order kept)
    assert!(ev
        .payload
        .contains(r#""data":{"photoId":"p1","nested":{"b":1,"a":[1,2]}}"#));

    // Without optional fields: no correlationId/userId keys, a fresh v4 traceId.
    let ev2 = encode("svc-a", "t", &raw("1"), &PublishOptions::default());
    let v2: Value = serde_json::from_str(&ev2.payload).unwrap();
    assert_eq!(
        keys(&v2["metadata"]),
        ["source", "timestamp", "traceId", "version"]
    );
    assert!(is_uuid_v4(v2["metadata"]["traceId"].as_str().unwrap()));
    assert_ne!(ev.id, ev2.id);

    // Extra metadata goes after version.
    let mut extra = Map::new();
    extra.insert("region".into(), Value::from("eu"));
    let ev3 = encode(
        "s",
        "t",
        &raw("true"),
        &PublishOptions {
            metadata: Some(extra),
            ..Default::default()
        },
    );
    let v3: Value = serde_json::from_str(&ev3.payload).unwrap();
    assert_eq!(keys(&v3["metadata"]).last().unwrap(), "region");
}

#[test]
fn channel_rules() {
    let o = |room: Option<&str>, user: Option<&str>, b: Option<bool>| PublishOptions {
        room: room.map(Into::into),
        user_id: user.map(Into::into),
        broadcast: b,
        ..Default::default()
    };
    assert_eq!(
        channel_for("t.x", &o(Some("r1"), Some("u1"), Some(true))),
        "room:r1"
    );
    assert_eq!(
        channel_for("t.x", &o(None, Some("u1"), Some(true))),
        "user:u1"
    );
    assert_eq!(channel_for("t.x", &o(None, None, Some(true))), "broadcast");
    assert_eq!(channel_for("t.x", &o(None, None, Some(false))), "t.x");
    assert_eq!(channel_for("t.x", &o(None, None, None)), "t.x");
    assert_eq!(channel_for("t.x", &o(Some(""), Some(""), None)), "t.x");
}

#[test]
fn unknown_fields_and_missing_optional_metadata_accepted() {
    let msg = r#"{"id":"x1","type":"a.b","data":{"k":1},"metadata":{"source":"old","timestamp":"2026-01-01T00:00:00.000Z","future":{"z":1}},"extra":[1,2],"schema":"v9"}"#;
    let d = Delivery::decode("a.b", None, msg.as_bytes()).unwrap();
    assert_eq!(d.data()["k"], 1);
    assert!(d.metadata().trace_id.is_none());
    assert!(d.metadata().version.is_none());
    assert_eq!(d.metadata().extra["future"]["z"], 1);
    let minimal = r#"{"id":"x2","type":"a.b","data":"s","metadata":{}}"#;
    assert!(Delivery::decode("a.b", None, minimal.as_bytes()).is_ok());
    for bad in [
        r#"[1,2]"#,
        r#"{"type":"a","data":1,"metadata":{}}"#,
        r#"{"id":"1","type":"a","metadata":{}}"#,
        r#"{"id":"1","type":"a","data":null,"metadata":{}}"#,
        r#"{"id":"1","type":"a","data":1}"#,
        r#"{"id":"1","type":"a","data":1,"metadata":"m"}"#,
        r#"{"id":1,"type":"a","data":1,"metadata":{}}"#,
        "",
        "not json",
    ] {
        assert!(
            Delivery::decode("c", None, bad.as_bytes()).is_err(),
            "{bad}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_events_on_the_wire() {
    // What a client publishes, as another client reads it off Redis.
    let bus = shared_client(&unique("wirepub")).await;
    let tag = unique("w");
    let col = Collector::new();
    for ch in [
        format!("room:{tag}-r"),
        format!("user:{tag}-u"),
        format!("{tag}.typed"),
    ] {
        bus.subscribe(&ch, col.handler(), Default::default())
            .await
            .unwrap();
    }
    let data = raw(r#"{"n":1}"#);
    let room = PublishOptions {
        room: Some(format!("{tag}-r")),
        user_id: Some(format!("{tag}-u")),
        ..Default::default()
    };
    let r = bus.publish("chat.message", &data, &room).await.unwrap();
    assert_eq!(r.channel, format!("room:{tag}-r"));
    assert!(r.delivered_to >= 1, "{r:?}"); // a hub on the shared server listens on room:* too
    let r = bus
        .publish_to_user(
            &format!("{tag}-u"),
            "notification.new",
            &data,
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(r.channel, format!("user:{tag}-u"));
    let r = bus
        .publish(&format!("{tag}.typed"), &data, &Default::default())
        .await
        .unwrap();
    assert_eq!(r.delivered_to, 1);
    assert_eq!(col.wait_for(3, Duration::from_secs(5)).await, 3);
    for d in col.all() {
        let v: Value = serde_json::from_str(d.payload()).unwrap();
        assert_eq!(keys(&v), ["id", "type", "data", "metadata"]);
        assert!(is_uuid_v4(v["id"].as_str().unwrap()));
        assert!(is_iso_millis_z(
            v["metadata"]["timestamp"].as_str().unwrap()
        ));
    }
    bus.disconnect().await.unwrap();
}
