//! TLS to Redis, end to end against a private TLS-only `redis-server` (`--port 0 --tls-port P`)
//! whose certificate a throwaway CA signed (see `common::TlsFiles`):
//! - `redis.tls.ca` (PEM text, a string or an array of strings) makes the client trust that CA
//!   with verification on, with host/port and with a `rediss://` URL;
//! - without the CA (or with another one) `connect()` fails, naming the address and saying the
//!   certificate is not trusted;
//! - the CA also holds for reconnections after the server restarts;
//! - `rejectUnauthorized: false` (and the URL's `#insecure`) connect without the CA;
//! - `tls` options this client does not implement (`cert`, `key`, `servername`, ...) fail at
//!   config time instead of being ignored, and a malformed `ca` is a config error.
//!
//! These tests need `openssl` and a `redis-server` built with TLS; without them they fail,
//! saying so, rather than being skipped.

mod common;

use std::time::Duration;

use common::*;
use event_bus::{ErrorKind, EventBusClient, PublishOptions};
use serde_json::{json, Value};

/// Client config for `redis` (a JSON object) with a fresh service name.
fn client(redis: Value) -> event_bus::Result<EventBusClient> {
    let cfg = json!({
        "serviceName": unique("tls"),
        "logLevel": "error",
        "redis": redis,
    });
    EventBusClient::from_json(&cfg.to_string())
}

fn ca_text(files: &TlsFiles) -> String {
    String::from_utf8(files.ca_pem()).unwrap()
}

/// Connect `bus`, whose address must say TLS to 127.0.0.1:`port`.
async fn connect_over_tls(bus: &EventBusClient, port: u16) {
    assert_eq!(
        bus.settings().display_addr,
        format!("rediss://127.0.0.1:{port}")
    );
    bus.connect().await.unwrap();
}

/// Subscribe, publish one event and check it arrives intact; then disconnect.
async fn round_trip(bus: &EventBusClient) {
    let channel = unique("tls.round.trip");
    let col = Collector::new();
    bus.subscribe(&channel, col.handler(), Default::default())
        .await
        .unwrap();
    let data = r#"{"text":"héllo wörld ✓","n":42,"nested":{"list":[1,2,3],"ok":true}}"#;
    let opts = PublishOptions {
        trace_id: Some("trace-tls-1".into()),
        ..Default::default()
    };
    let receipt = bus.publish(&channel, &raw(data), &opts).await.unwrap();
    assert_eq!(receipt.delivered_to, 1);
    assert_eq!(col.wait_for(1, Duration::from_secs(5)).await, 1);
    let got = col.all().remove(0);
    assert_eq!(got.id(), receipt.event_id);
    assert_eq!(got.event_type(), channel);
    assert_eq!(got.channel(), channel);
    assert_eq!(
        serde_json::from_str::<Value>(got.data_json()).unwrap(),
        serde_json::from_str::<Value>(data).unwrap()
    );
    assert_eq!(got.metadata().trace_id.as_deref(), Some("trace-tls-1"));
    bus.disconnect().await.unwrap();
}

/// The names of the clients connected to `srv` (over TLS: the server has no plain port).
fn client_names(srv: &RedisServer) -> Vec<String> {
    client_list(&mut srv.conn())
        .into_iter()
        .filter_map(|c| c.get("name").cloned())
        .filter(|n| !n.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_string_with_host_and_port_verifies_the_server() {
    let files = TlsFiles::generate();
    let srv = RedisServer::start_tls(&files);
    let bus = client(json!({
        "host": "127.0.0.1",
        "port": srv.port,
        "tls": { "ca": ca_text(&files) },
    }))
    .unwrap();
    connect_over_tls(&bus, srv.port).await;
    // Both connections are up, over TLS, with their names.
    let names = client_names(&srv);
    assert_eq!(names.iter().filter(|n| n.ends_with(":pub")).count(), 1);
    assert_eq!(names.iter().filter(|n| n.ends_with(":sub")).count(), 1);
    round_trip(&bus).await;

    // `localhost` is in the certificate too.
    let bus = client(json!({
        "host": "localhost",
        "port": srv.port,
        "tls": { "ca": ca_text(&files), "rejectUnauthorized": true },
    }))
    .unwrap();
    bus.connect().await.unwrap();
    round_trip(&bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_url_with_ca_array_verifies_the_server() {
    let files = TlsFiles::generate();
    let other = TlsFiles::generate();
    let srv = RedisServer::start_tls(&files);
    // An array of PEM strings, as ioredis takes it: every CA in it is trusted.
    let bus = client(json!({
        "url": srv.url(),
        "tls": { "ca": [ca_text(&other), ca_text(&files)] },
    }))
    .unwrap();
    bus.connect().await.unwrap();
    round_trip(&bus).await;

    // A `tls` object also turns TLS on for a `redis://` URL, as in ioredis.
    let bus = client(json!({
        "url": format!("redis://127.0.0.1:{}", srv.port),
        "tls": { "ca": ca_text(&files) },
    }))
    .unwrap();
    connect_over_tls(&bus, srv.port).await;
    round_trip(&bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_trust_the_ca_too() {
    let files = TlsFiles::generate();
    let mut srv = RedisServer::start_tls(&files);
    let bus = client(json!({
        "url": srv.url(),
        "tls": { "ca": ca_text(&files) },
        "reconnectDelay": 50,
        "reconnectDelayMax": 200,
    }))
    .unwrap();
    bus.connect().await.unwrap();
    let channel = unique("tls.reconnect");
    let col = Collector::new();
    bus.subscribe(&channel, col.handler(), Default::default())
        .await
        .unwrap();
    // SIGKILL and start again on the same port: both connections come back over TLS (the CA
    // is part of the connection settings, not only of the first connect) and resubscribe.
    srv.restart();
    assert!(bus.wait_until_up(Duration::from_secs(10)).await);
    let r = bus
        .publish(
            &channel,
            &raw(r#"{"after":"restart"}"#),
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(r.delivered_to, 1);
    assert_eq!(col.wait_for(1, Duration::from_secs(5)).await, 1);
    bus.disconnect().await.unwrap();
}

/// `connect()` fails with a Connection error that names the address and says why.
async fn assert_untrusted(bus: EventBusClient, port: u16) {
    let err = tokio::time::timeout(Duration::from_secs(15), bus.connect())
        .await
        .expect("connect() should fail, not hang")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    let text = err.to_string();
    eprintln!("connect() failed as expected: {text}");
    assert!(
        text.contains(&format!("rediss://127.0.0.1:{port}")),
        "no address in: {text}"
    );
    assert!(
        text.contains("certificate is not trusted"),
        "no reason in: {text}"
    );
    assert!(text.contains("set redis.tls.ca"), "no remedy in: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ca_connect_fails_saying_the_certificate_is_not_trusted() {
    let files = TlsFiles::generate();
    let other = TlsFiles::generate();
    let srv = RedisServer::start_tls(&files);
    // The default roots (Mozilla's, through webpki-roots) do not include a private CA.
    for tls in [
        json!(true),
        json!({}),
        json!({ "rejectUnauthorized": true }),
    ] {
        let bus = client(json!({ "host": "127.0.0.1", "port": srv.port, "tls": tls })).unwrap();
        assert_untrusted(bus, srv.port).await;
    }
    let bus = client(json!({ "url": srv.url() })).unwrap();
    assert_untrusted(bus, srv.port).await;
    // `ca` replaces the default roots: another CA does not vouch for this server.
    let bus = client(json!({ "url": srv.url(), "tls": { "ca": ca_text(&other) } })).unwrap();
    assert_untrusted(bus, srv.port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_unauthorized_false_connects_without_the_ca() {
    let files = TlsFiles::generate();
    let srv = RedisServer::start_tls(&files);
    let bus = client(json!({
        "host": "127.0.0.1",
        "port": srv.port,
        "tls": { "rejectUnauthorized": false },
    }))
    .unwrap();
    bus.connect().await.unwrap();
    round_trip(&bus).await;

    let bus = client(json!({
        "url": srv.url(),
        "tls": { "rejectUnauthorized": false },
    }))
    .unwrap();
    bus.connect().await.unwrap();
    round_trip(&bus).await;

    // The redis crate's own spelling in a URL.
    let bus = client(json!({ "url": format!("{}/#insecure", srv.url()) })).unwrap();
    bus.connect().await.unwrap();
    round_trip(&bus).await;
}

/// The config error of `redis` (no server needed: these fail in the constructor).
fn config_error(redis: Value) -> event_bus::Error {
    match client(redis.clone()) {
        Ok(_) => panic!("config accepted: {redis}"),
        Err(e) => e,
    }
}

#[test]
fn unsupported_tls_options_fail_at_config_time() {
    for (key, value) in [
        ("cert", json!("-----BEGIN CERTIFICATE-----...")),
        ("key", json!("-----BEGIN PRIVATE KEY-----...")),
        ("servername", json!("redis.internal")),
        ("pfx", json!("...")),
        ("checkServerIdentity", json!({})),
    ] {
        let mut tls = serde_json::Map::new();
        tls.insert(key.to_string(), value);
        for base in [
            json!({ "host": "127.0.0.1", "port": 6390 }),
            json!({ "url": "rediss://127.0.0.1:6390" }),
        ] {
            let mut redis = base;
            redis["tls"] = Value::Object(tls.clone());
            let e = config_error(redis);
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
            assert!(
                e.message()
                    .starts_with(&format!("redis.tls.{key} is not supported")),
                "{e}"
            );
        }
    }
    // Several at once are all named.
    let e = config_error(json!({ "url": "rediss://h:1", "tls": { "cert": "c", "key": "k" } }));
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(
        e.message()
            .starts_with("redis.tls.cert, redis.tls.key are not supported"),
        "{e}"
    );
}

#[test]
fn malformed_tls_values_are_config_errors() {
    let cases = [
        (json!({ "ca": 5 }), "redis.tls.ca must be"),
        (json!({ "ca": [5] }), "redis.tls.ca[0] must be"),
        (json!({ "ca": [] }), "redis.tls.ca is an empty array"),
        // A Node Buffer as JSON.stringify writes it.
        (
            json!({ "ca": { "type": "Buffer", "data": [45, 45] } }),
            "redis.tls.ca must be",
        ),
        (
            json!({ "ca": "not a certificate" }),
            "redis.tls.ca holds no PEM certificate",
        ),
        (
            json!({ "ca": ["-----BEGIN CERTIFICATE-----\n@@@\n-----END CERTIFICATE-----\n"] }),
            "redis.tls.ca[0] is not valid PEM",
        ),
        (
            json!({ "rejectUnauthorized": "no" }),
            "redis.tls.rejectUnauthorized must be",
        ),
        (json!("yes"), "redis.tls must be"),
    ];
    for (tls, want) in cases {
        let e = config_error(json!({ "host": "127.0.0.1", "port": 1, "tls": tls.clone() }));
        assert_eq!(e.kind(), ErrorKind::Config, "{tls}: {e}");
        assert!(e.message().contains(want), "{tls}: {e}");
    }
    // A URL and a tls setting that contradict each other.
    let e = config_error(json!({ "url": "rediss://h:1", "tls": false }));
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.message().contains("redis.tls is false"), "{e}");
    let e = config_error(
        json!({ "url": "rediss://h:1/#insecure", "tls": { "rejectUnauthorized": true } }),
    );
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.message().contains("#insecure"), "{e}");
}
