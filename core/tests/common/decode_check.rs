//! What must hold for any message the decoder is given, shared by `tests/prop_decode.rs` and
//! the `decode` fuzz target (included with `#[path]`): decoding never panics, and a message it
//! accepts re-encodes stably.

use event_bus::event::{encode, Delivery};
use event_bus::PublishOptions;
use serde_json::value::RawValue;
use serde_json::Value;

/// Decode `payload` (as a message on channel `c`, and as a pattern delivery) and check every
/// accessor and both re-encodings of what was accepted. Returns whether it was accepted.
pub fn check(payload: &[u8]) -> bool {
    let plain = Delivery::decode("c", None, payload);
    let by_pattern = Delivery::decode("c.x", Some("c.*"), payload);
    assert_eq!(plain.is_ok(), by_pattern.is_ok(), "the channel decided");
    let d = match plain {
        Ok(d) => d,
        Err(e) => {
            assert_eq!(e.kind(), event_bus::ErrorKind::Validation, "{e}");
            return false;
        }
    };
    let text = std::str::from_utf8(payload).expect("accepted text is UTF-8");
    // Only a JSON object is an event.
    let whole: Value = serde_json::from_str(text).expect("accepted text is JSON");
    assert!(whole.is_object(), "accepted a non-object: {text}");
    assert!(!d.id().is_empty() && !d.event_type().is_empty());
    assert_eq!(d.payload(), text);
    let data: Value = serde_json::from_str(d.data_json()).expect("data is JSON");
    assert!(!data.is_null(), "accepted null data");
    assert_eq!(d.data(), data);
    let meta: Value = serde_json::from_str(&d.metadata_json()).expect("metadata is JSON");
    assert!(meta.is_object(), "accepted non-object metadata");
    for path in [
        "id", "type", "channel", "pattern", "data", "metadata", "data.a.0",
    ] {
        let _ = d.field(path);
    }

    // The handler form: one object, decoding to the same event plus the channel.
    for d in [&d, &by_pattern.unwrap()] {
        let with_channel = d.to_json_with_channel();
        let obj: Value = serde_json::from_str(&with_channel)
            .unwrap_or_else(|e| panic!("handler JSON is not JSON ({e}): {with_channel}"));
        assert_eq!(
            obj.get("channel").and_then(Value::as_str),
            Some(d.channel())
        );
        assert_eq!(obj.get("pattern").and_then(Value::as_str), d.pattern());
        let again = Delivery::decode(d.channel(), d.pattern(), with_channel.as_bytes())
            .unwrap_or_else(|e| panic!("handler JSON does not decode ({e}): {with_channel}"));
        assert_eq!(again.id(), d.id());
        assert_eq!(again.event_type(), d.event_type());
        assert_eq!(again.data_json(), d.data_json());
        assert_eq!(again.metadata_json(), d.metadata_json());
    }

    // Published again: the same type, data and the metadata the options carry.
    let m = d.metadata();
    let opts = PublishOptions {
        trace_id: m.trace_id.clone(),
        correlation_id: m.correlation_id.clone(),
        user_id: m.user_id.clone(),
        ..Default::default()
    };
    let raw = RawValue::from_string(d.data_json().to_string()).expect("data is JSON");
    let out = encode(
        m.source.as_deref().unwrap_or("svc"),
        d.event_type(),
        &raw,
        &opts,
    );
    let back = Delivery::decode(&out.channel, None, out.payload.as_bytes())
        .unwrap_or_else(|e| panic!("re-encoded event does not decode ({e}): {}", out.payload));
    assert_eq!(back.event_type(), d.event_type());
    assert_eq!(back.data_json(), d.data_json());
    let bm = back.metadata();
    assert_eq!(bm.correlation_id, m.correlation_id);
    assert_eq!(bm.user_id, m.user_id);
    if m.trace_id.is_some() {
        assert_eq!(bm.trace_id, m.trace_id);
    }
    assert_eq!(
        bm.source.as_deref(),
        Some(m.source.as_deref().unwrap_or("svc"))
    );
    true
}
