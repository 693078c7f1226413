//! The incoming message decoder on generated messages: well-formed events, events with fields
//! of the wrong type or missing, other JSON values and arbitrary bytes. The checks (never a
//! panic; what is accepted re-encodes stably) are `common/decode_check.rs`, shared with the
//! `decode` fuzz target.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

#[path = "common/decode_check.rs"]
mod decode_check;

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-zé\"\\\\\u{0}-\u{1f}😀]{0,6}".prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{0,3}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn metadata() -> impl Strategy<Value = Value> {
    let key = prop::sample::select(vec![
        "source",
        "timestamp",
        "traceId",
        "correlationId",
        "userId",
        "version",
        "custom",
        "x",
    ]);
    let field = prop_oneof![4 => "[a-z0-9-]{0,8}".prop_map(Value::from), 1 => value()];
    prop_oneof![
        6 => prop::collection::vec((key, field), 0..7).prop_map(|kv| {
            let mut m = Map::new();
            for (k, v) in kv {
                m.insert(k.to_string(), v);
            }
            Value::Object(m)
        }),
        1 => value(),
    ]
}

/// An envelope whose fields are each present and right most of the time.
fn envelope() -> impl Strategy<Value = Value> {
    let id = prop_oneof![6 => "[a-f0-9-]{0,12}".prop_map(Value::from), 1 => value()];
    let ty = prop_oneof![6 => "[a-z.:*]{0,12}".prop_map(Value::from), 1 => value()];
    (
        prop::option::weighted(0.9, id),
        prop::option::weighted(0.9, ty),
        prop::option::weighted(0.9, value()),
        prop::option::weighted(0.9, metadata()),
        prop::option::of(("[a-z]{1,4}", value())),
    )
        .prop_map(|(id, ty, data, meta, extra)| {
            let mut m = Map::new();
            if let Some(v) = id {
                m.insert("id".into(), v);
            }
            if let Some(v) = ty {
                m.insert("type".into(), v);
            }
            if let Some(v) = data {
                m.insert("data".into(), v);
            }
            if let Some(v) = meta {
                m.insert("metadata".into(), v);
            }
            if let Some((k, v)) = extra {
                m.insert(k, v);
            }
            Value::Object(m)
        })
}

/// The text of a value, compact or pretty or with surrounding whitespace.
fn text_of(v: Value) -> impl Strategy<Value = String> {
    let compact = v.to_string();
    let pretty = serde_json::to_string_pretty(&v).unwrap();
    prop_oneof![
        Just(compact.clone()),
        Just(pretty),
        Just(format!(" \r\n\t{compact}\n")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn envelopes_decode_or_are_refused(text in envelope().prop_flat_map(text_of)) {
        decode_check::check(text.as_bytes());
    }

    #[test]
    fn other_json_values_are_refused(v in value()) {
        if !v.is_object() {
            prop_assert!(!decode_check::check(v.to_string().as_bytes()), "accepted {}", v);
        } else {
            decode_check::check(v.to_string().as_bytes());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..64)) {
        decode_check::check(&b);
    }
}

#[test]
fn a_good_envelope_is_accepted() {
    let v = json!({"id": "e1", "type": "photo.uploaded", "data": {"a": [1]},
        "metadata": {"source": "svc", "timestamp": "t", "traceId": "tr", "version": "1.0.0"}});
    assert!(decode_check::check(v.to_string().as_bytes()));
}

#[test]
fn regression_a_json_array_is_not_an_event() {
    // Found by fuzzing: the envelope's fields as an array were decoded as an event, and the
    // handler JSON built from it was not JSON.
    for text in [
        r#"["e1","t",1,{}]"#,
        r#"  ["e1","t",{"x":1},{"source":"s"}]"#,
        "[\"e1\",\"t\",1,{},5]",
    ] {
        let e = event_bus::Delivery::decode("c", None, text.as_bytes()).expect_err(text);
        assert_eq!(e.kind(), event_bus::ErrorKind::Validation);
        assert!(e.message().contains("not a JSON object"), "{e}");
        assert!(!decode_check::check(text.as_bytes()));
    }
}
