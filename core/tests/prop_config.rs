//! Config and option JSON readers on generated documents: the shapes they expect with values
//! of every JSON type (huge numbers included), and arbitrary text. Never a panic; a refusal is
//! a typed error. The checks are `common/config_check.rs`, shared with the `config_json` fuzz
//! target.

use proptest::prelude::*;
use serde_json::{Map, Value};

#[path = "common/config_check.rs"]
mod config_check;

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::from(0)),
        Just(Value::from(u64::MAX)),
        Just(Value::from(i64::MIN)),
        Just(Value::from(u32::MAX as u64 + 1)),
        Just(serde_json::from_str::<Value>("1e300").unwrap()),
        Just(Value::from(-1)),
        Just(Value::from(1.5)),
        (0u64..100_000).prop_map(Value::from),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => number(),
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::from),
        2 => prop::sample::select(vec![
            "", "svc", "redis://127.0.0.1:6379", "rediss://h:1/2", "memory://m",
            "http://hub:1", "ws://[::1]:81/ns", "json", "text", "debug", "websocket", "polling",
            "redis://u:p@h:70000", "sentinel", "x",
        ])
        .prop_map(Value::from),
    ]
}

fn any_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(2, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object with some of `keys`, each holding a leaf or any value.
fn object_of(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop::collection::vec(
        (
            prop::sample::select(keys),
            prop_oneof![4 => leaf(), 1 => any_value()],
        ),
        0..keys.len().min(8),
    )
    .prop_map(|kv| {
        let mut m = Map::new();
        for (k, v) in kv {
            m.insert(k.to_string(), v);
        }
        Value::Object(m)
    })
}

const REDIS: &[&str] = &[
    "host",
    "port",
    "url",
    "password",
    "username",
    "db",
    "connectTimeout",
    "publishTimeout",
    "offlineQueueSize",
    "heartbeatInterval",
    "reconnectDelay",
    "reconnectDelayMax",
    "tls",
    "sentinels",
    "name",
    "cluster",
    "nodes",
    "shardedPubSub",
    "keyPrefix",
];
const CLIENT: &[&str] = &[
    "url",
    "authToken",
    "reconnection",
    "reconnectionDelay",
    "reconnectionDelayMax",
    "reconnectionAttempts",
    "timeout",
];
const PERF: &[&str] = &["batchSize", "batchInterval", "maxRetries", "retryDelay"];
const VALIDATION: &[&str] = &["maxEventSize", "maxDataSize", "strictSchemas", "schemas"];
const PUBLISH: &[&str] = &[
    "traceId",
    "correlationId",
    "userId",
    "room",
    "broadcast",
    "metadata",
    "priority",
    "ttl",
    "persistent",
    "tarceId",
];
const SUBSCRIBE: &[&str] = &[
    "timeout",
    "retryOnError",
    "maxRetries",
    "retryDelay",
    "maxRetryDelay",
    "filter",
    "concurrency",
    "maxPending",
    "metadata",
    "ordered",
];

fn config() -> impl Strategy<Value = Value> {
    (
        prop::option::weighted(0.8, prop_oneof![4 => Just(Value::from("svc")), 1 => leaf()]),
        prop::option::weighted(0.8, object_of(REDIS)),
        prop::option::of(object_of(CLIENT)),
        prop::option::of(object_of(PERF)),
        prop::option::of(object_of(VALIDATION)),
        prop::option::of(object_of(&[
            "logLevel",
            "logFormat",
            "transport",
            "disconnectTimeout",
        ])),
    )
        .prop_map(|(name, redis, client, perf, val, top)| {
            let mut m = match top {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            let mut put = |k: &str, v: Option<Value>| {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            };
            put("serviceName", name);
            put("redis", redis);
            put("client", client);
            put("performance", perf);
            put("validation", val);
            Value::Object(m)
        })
}

fn tagged(tag: u8, v: &Value) -> Vec<u8> {
    let mut b = vec![tag];
    b.extend(v.to_string().as_bytes());
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn configs_never_panic(v in config()) {
        config_check::check(&tagged(0, &v));
    }

    #[test]
    fn publish_options_never_panic(v in object_of(PUBLISH)) {
        config_check::check(&tagged(1, &v));
    }

    #[test]
    fn subscription_options_never_panic(v in object_of(SUBSCRIBE)) {
        config_check::check(&tagged(2, &v));
    }

    #[test]
    fn any_text_never_panics(tag in 0u8..4, s in "\\PC{0,40}") {
        let mut b = vec![tag];
        b.extend(s.as_bytes());
        config_check::check(&b);
    }
}

fn with_every_duration(ms: u64) -> String {
    format!(
        r#"{{"serviceName":"svc","redis":{{"url":"memory://huge","connectTimeout":{ms},
        "publishTimeout":{ms},"heartbeatInterval":{ms},"reconnectDelay":{ms},
        "reconnectDelayMax":{ms}}},"client":{{"url":"http://hub:1","reconnectionDelay":{ms},
        "reconnectionDelayMax":{ms},"timeout":{ms}}},"performance":{{"batchInterval":{ms},
        "retryDelay":{ms}}},"disconnectTimeout":{ms}}}"#
    )
}

#[test]
fn huge_durations_are_refused_or_accepted_without_overflow() {
    // A limit computed from huge values overflowed once (the hub link's silence limit): the
    // largest accepted millisecond values build settings and a client, larger ones are a
    // typed config error naming the key.
    let top = i32::MAX as u64;
    let text = with_every_duration(top);
    config_check::config(&text);
    let s = event_bus::EventBusConfig::from_json(&text)
        .unwrap()
        .settings()
        .unwrap();
    assert_eq!(
        s.heartbeat_interval,
        Some(std::time::Duration::from_millis(top))
    );
    for ms in [top + 1, u64::MAX] {
        let text = with_every_duration(ms);
        config_check::config(&text);
        let e = event_bus::EventBusConfig::from_json(&text)
            .and_then(|c| c.settings())
            .expect_err("out of range");
        assert_eq!(e.kind(), event_bus::ErrorKind::Config);
        assert!(e.message().contains("must be at most"), "{e}");
    }
    for ms in [top, u64::MAX] {
        config_check::subscription_options(&format!(
            r#"{{"timeout":{ms},"retryDelay":{ms},"maxRetryDelay":{ms},"maxRetries":4294967295}}"#
        ));
    }
}
