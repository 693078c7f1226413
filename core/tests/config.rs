//! Config: the TS package's shape and constructor messages, defaults, secrets never shown.

use std::time::Duration;

use event_bus::config::{Endpoint, SioTransport};
use event_bus::{ErrorKind, EventBusClient, EventBusConfig, LogLevel};

fn settings(json: &str) -> event_bus::Result<event_bus::config::Settings> {
    EventBusConfig::from_json(json)?.settings()
}

#[test]
fn ts_constructor_messages() {
    let e = EventBusClient::from_json(r#"{"redis":{"host":"h","port":1}}"#).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert_eq!(e.message(), "serviceName is required in EventBusConfig");
    let e = EventBusClient::from_json(r#"{"serviceName":"","redis":{}}"#).unwrap_err();
    assert_eq!(e.message(), "serviceName is required in EventBusConfig");
    let e = EventBusClient::from_json(r#"{"serviceName":"a"}"#).unwrap_err();
    assert_eq!(
        e.message(),
        "redis configuration is required in EventBusConfig"
    );
    assert_eq!(
        EventBusClient::from_json("nope").unwrap_err().kind(),
        ErrorKind::Config
    );
    assert_eq!(
        EventBusClient::from_json("[1]").unwrap_err().kind(),
        ErrorKind::Config
    );
    let e = EventBusClient::from_json(r#"{"serviceName":"a","redis":{"url":"http://x"}}"#);
    assert_eq!(e.unwrap_err().kind(), ErrorKind::Config);
    let e = EventBusClient::from_json(r#"{"serviceName":"a","redis":{},"logFormat":"xml"}"#);
    assert_eq!(e.unwrap_err().kind(), ErrorKind::Config);
}

#[test]
fn the_ts_config_shape_with_ioredis_fields_is_accepted() {
    let ts = r#"{
        "serviceName": "photo-api-service", "serviceVersion": "1.2.3",
        "redis": {"host": "redis.local", "port": 6380, "password": "pw", "db": 2,
                  "keyPrefix": "photo:", "maxRetriesPerRequest": 3, "enableReadyCheck": true,
                  "retryDelayOnFailover": 100, "connectTimeout": 3000},
        "client": {"url": "http://hub:3000", "authToken": "tok", "reconnection": true,
                   "reconnectionDelay": 1000, "reconnectionDelayMax": 5000, "timeout": 20000},
        "websocket": {"transports": ["websocket", "polling"]},
        "performance": {"batchSize": 50, "batchInterval": 10, "maxRetries": 5, "retryDelay": 200,
                        "enableCompression": false},
        "server": {"port": 3001}, "security": {"cors": {}}, "monitoring": {"enabled": true},
        "logLevel": "warn"
    }"#;
    let s = settings(ts).unwrap();
    assert_eq!(s.service_name, "photo-api-service");
    assert_eq!(s.display_addr, "redis://redis.local:6380");
    assert_eq!(s.connect_timeout, Duration::from_millis(3000));
    assert_eq!(s.batch_size, 50);
    assert_eq!(s.batch_interval, Duration::from_millis(10));
    assert_eq!(s.default_max_retries, 5);
    assert_eq!(s.default_retry_delay, Duration::from_millis(200));
    assert_eq!(s.log_level, LogLevel::Warn);
    match &s.endpoint {
        Endpoint::Redis(info) => {
            assert_eq!(info.redis_settings().db(), 2);
        }
        _ => panic!("redis expected"),
    }
    let sio = s.socketio.expect("client config resolved");
    assert_eq!(sio.url, "http://hub:3000");
    assert_eq!(sio.auth_token.as_deref(), Some("tok"));
    assert_eq!(sio.timeout, Duration::from_millis(20000));
    assert_eq!(
        sio.transports,
        vec![SioTransport::Websocket, SioTransport::Polling]
    );
}

#[test]
fn socketio_settings_defaults_and_errors() {
    let s = settings(r#"{"serviceName":"a","redis":{},"client":{"url":"http://h:1"}}"#).unwrap();
    let sio = s.socketio.unwrap();
    assert!(sio.reconnection);
    assert_eq!(sio.reconnection_delay, Duration::from_millis(1000));
    assert_eq!(sio.reconnection_delay_max, Duration::from_millis(5000));
    assert_eq!(sio.reconnection_attempts, None);
    assert_eq!(
        sio.transports,
        vec![SioTransport::Websocket, SioTransport::Polling]
    );
    let s = settings(
        r#"{"serviceName":"a","redis":{},"client":{"url":"http://h:1"},"websocket":{"transports":["polling"]}}"#,
    )
    .unwrap();
    assert_eq!(s.socketio.unwrap().transports, vec![SioTransport::Polling]);
    for (cfg, msg) in [
        (r#""client":{}"#, "client.url is required"),
        (
            r#""client":{"url":"hub:3000"}"#,
            "client.url must start with",
        ),
        (
            r#""client":{"url":"http://h"},"websocket":{"transports":["xhr"]}"#,
            "websocket.transports entries must be",
        ),
        (
            r#""client":{"url":"http://h"},"websocket":{"transports":[]}"#,
            "at least one transport",
        ),
    ] {
        let e = settings(&format!(r#"{{"serviceName":"a","redis":{{}},{cfg}}}"#)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.message().contains(msg), "{cfg}: {e}");
    }
    assert!(settings(r#"{"serviceName":"a","redis":{}}"#)
        .unwrap()
        .socketio
        .is_none());
}

#[test]
fn defaults() {
    let s = settings(r#"{"serviceName":"a","redis":{}}"#).unwrap();
    assert_eq!(s.display_addr, "redis://127.0.0.1:6379");
    assert_eq!(s.connect_timeout, Duration::from_secs(10));
    assert_eq!(s.publish_timeout, Duration::from_secs(5));
    assert_eq!(s.offline_queue_size, 10_000);
    assert_eq!(s.heartbeat_interval, Some(Duration::from_secs(5)));
    assert_eq!(s.reconnect_delay, Duration::from_millis(100));
    assert_eq!(s.reconnect_delay_max, Duration::from_secs(5));
    assert_eq!(s.batch_size, 512);
    assert_eq!(s.batch_interval, Duration::ZERO);
    assert_eq!(s.default_max_retries, 3);
    assert_eq!(s.default_retry_delay, Duration::from_secs(1));
    assert_eq!(s.log_level, LogLevel::Info);
    assert!(!s.log_json);
    assert_eq!(s.max_event_size, 1024 * 1024);
    assert_eq!(s.max_data_size, 512 * 1024);
    assert!(!s.strict_schemas);
    assert_eq!(s.disconnect_timeout, Duration::from_secs(5));
    let s = settings(r#"{"serviceName":"a","redis":{"heartbeatInterval":0}}"#).unwrap();
    assert_eq!(s.heartbeat_interval, None);
    // URL forms.
    let s = settings(r#"{"serviceName":"a","redis":{"url":"redis://u:p@h:7/3"}}"#).unwrap();
    assert_eq!(s.display_addr, "redis://h:7");
    let s = settings(r#"{"serviceName":"a","redis":{"url":"rediss://h:7"}}"#).unwrap();
    assert_eq!(s.display_addr, "rediss://h:7");
    let s = settings(r#"{"serviceName":"a","redis":{"url":"memory://x"}}"#).unwrap();
    assert!(matches!(s.endpoint, Endpoint::Memory(ref n) if n == "x"));
    let s = settings(r#"{"serviceName":"a","transport":"memory"}"#).unwrap();
    assert!(matches!(s.endpoint, Endpoint::Memory(_)));
    // keyPrefix is accepted and never applied: the endpoint is unchanged.
    let s = settings(r#"{"serviceName":"a","redis":{"keyPrefix":"p:"}}"#).unwrap();
    assert_eq!(s.display_addr, "redis://127.0.0.1:6379");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_in_debug_or_errors() {
    let secret = "s3cr3t-Pa55";
    let token = "t0k3n-XyZ";
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for json in [
        format!(
            r#"{{"serviceName":"a","redis":{{"host":"127.0.0.1","port":{port},"password":"{secret}","connectTimeout":1000}},"client":{{"url":"http://x","authToken":"{token}"}}}}"#
        ),
        format!(
            r#"{{"serviceName":"a","redis":{{"url":"redis://user:{secret}@127.0.0.1:{port}/0","connectTimeout":1000}}}}"#
        ),
        format!(
            r#"{{"serviceName":"a","redis":{{"url":"redis://:{secret}@127.0.0.1:{port}","connectTimeout":1000}}}}"#
        ),
    ] {
        let cfg = EventBusConfig::from_json(&json).unwrap();
        for text in [
            format!("{cfg:?}"),
            format!("{:?}", cfg.redis),
            format!("{:?}", cfg.client),
        ] {
            assert!(!text.contains(secret) && !text.contains(token), "{text}");
        }
        let s = cfg.settings().unwrap();
        assert!(!format!("{s:?}").contains(secret));
        assert!(!s.display_addr.contains(secret));
        let bus = EventBusClient::new(cfg).unwrap();
        assert!(!format!("{bus:?}").contains(secret));
        let e = bus.connect().await.unwrap_err();
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains(secret), "{text}");
            assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
        }
    }
}
