//! The configuration: the TS package's `EventBusConfig` JSON shape, read once here for every
//! language (the bindings pass the host's config object through as JSON).
//!
//! Unknown fields (`server`, `security`, `monitoring`, ...) are accepted and ignored, as the TS
//! client ignored them. Fields this library adds are documented on each struct.
//!
//! - this file: the JSON shape ([`EventBusConfig`] and its sections) and reading it;
//! - `settings.rs`: [`Settings`], the config with every default applied and checked;
//! - `redis.rs`: where the Redis connection goes (host/port or URL) and its TLS options.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};
use crate::input;

mod redis;
mod settings;
mod topology;

pub use settings::{Endpoint, Settings, SioTransport, SocketIoSettings};
pub use topology::{with_addr, ClusterSettings, NodeAddr, SentinelSettings};

/// Log verbosity, as the TS package's `LogLevel` (`debug` | `info` | `warn` | `error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything, including per-event traces.
    Debug,
    /// Lifecycle messages (default).
    #[default]
    Info,
    /// Recoverable problems.
    Warn,
    /// Failures.
    Error,
}

impl LogLevel {
    /// Parse `debug|info|warn|error` (case-insensitive).
    pub fn parse(s: &str) -> Option<LogLevel> {
        match s.to_ascii_lowercase().as_str() {
            "debug" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "warn" | "warning" => Some(LogLevel::Warn),
            "error" => Some(LogLevel::Error),
            _ => None,
        }
    }

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// Which broker the client talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// Redis pub/sub (default).
    #[default]
    Redis,
    /// The in-process broker, for unit tests and running without Redis.
    Memory,
}

/// Sections the TS package's `EventBusConfig` declares that this client accepts and ignores on
/// purpose (server mode and its security and monitoring are not part of a client library):
/// no warning for these. `websocket` is listed for its keys other than `transports`.
const TS_IGNORED_SECTIONS: &[&str] = &["server", "security", "monitoring", "websocket"];

/// `EventBusConfig`. Only `serviceName` and `redis` are required, as in the TS package.
#[derive(Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct EventBusConfig {
    /// The publishing service's name: `metadata.source` of every event.
    #[serde(default)]
    pub service_name: Option<String>,
    /// Informational.
    #[serde(default)]
    pub service_version: Option<String>,
    /// Redis connection settings (required unless `transport` is `memory`).
    #[serde(default)]
    pub redis: Option<RedisConfig>,
    /// Socket.IO hub settings, used for rooms.
    #[serde(default)]
    pub client: Option<ClientConfig>,
    /// Socket.IO transport preferences.
    #[serde(default)]
    pub websocket: Option<WebSocketConfig>,
    /// Publish batching and handler retry defaults.
    #[serde(default)]
    pub performance: Option<PerformanceConfig>,
    /// `debug` | `info` | `warn` | `error` (default `info`).
    #[serde(default)]
    pub log_level: Option<LogLevel>,
    /// Added: `text` (default, the TS line format) or `json` (one JSON object per line).
    #[serde(default)]
    pub log_format: Option<String>,
    /// Added: `redis` (default) or `memory`.
    #[serde(default)]
    pub transport: Option<TransportKind>,
    /// Added: validation limits.
    #[serde(default)]
    pub validation: Option<ValidationConfig>,
    /// Keys of the JSON form that this library does not know (dotted paths such as
    /// `redis.sentinel`), other than the TS package's declared-but-ignored sections: ignored,
    /// and the client logs a warning naming them.
    #[serde(skip)]
    pub unknown_keys: Vec<String>,
    /// Added: how long `disconnect()` waits for in-flight handlers (ms, default 5000).
    #[serde(default, deserialize_with = "input::millis::deserialize")]
    pub disconnect_timeout: Option<u64>,
    /// Added: durable delivery (Redis Streams) settings.
    #[serde(default)]
    pub durable: Option<DurableConfig>,
}

/// `durable`: settings of the streams behind persistent publishes.
#[derive(Clone, Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
pub struct DurableConfig {
    /// Approximate bound of each type's stream (`XADD ... MAXLEN ~ n`, default 1,000,000,
    /// at least 1).
    #[serde(default, deserialize_with = "input::whole")]
    pub max_len: Option<u64>,
    /// After each persistent publish, wait until this many replicas have it (`WAIT`); 0
    /// (default) does not wait. Closes the window in which a failover loses acknowledged
    /// entries, at the cost of a round trip to the replicas per publish.
    #[serde(default, deserialize_with = "input::whole")]
    pub wait_replicas: Option<u32>,
    /// How long that wait may take (ms, default 1000).
    #[serde(default, deserialize_with = "input::millis::deserialize")]
    pub wait_timeout: Option<u64>,
}

/// `RedisConfig`. `host`/`port` or `url` (`redis://`, `rediss://`, `memory://name`).
#[derive(Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RedisConfig {
    /// Host name (default `127.0.0.1`).
    #[serde(default)]
    pub host: Option<String>,
    /// Port (default 6379).
    #[serde(default, deserialize_with = "input::whole")]
    pub port: Option<u16>,
    /// `redis://[user:pass@]host:port/db`, `rediss://...` for TLS, or `memory://name`.
    #[serde(default)]
    pub url: Option<String>,
    /// ACL user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Password (never logged, never shown by `Debug`).
    #[serde(default)]
    pub password: Option<String>,
    /// Database number (pub/sub ignores it, but it is selected as the TS package did).
    #[serde(default)]
    pub db: Option<i64>,
    /// Connect with TLS (rustls). `true`, or an object with the ioredis (Node `tls`) options
    /// this client implements:
    /// - `ca`: PEM text of the CA certificate(s) to trust, a string or an array of strings
    ///   (each may hold several certificates). As in Node, it *replaces* the default roots
    ///   (Mozilla's, through webpki-roots), so a private CA works with verification on.
    /// - `rejectUnauthorized`: `false` turns certificate verification off (any certificate
    ///   for any name is accepted: for tests only). Default `true`.
    ///
    /// Any other option (`cert`/`key` client certificates, `servername`, `checkServerIdentity`,
    /// `pfx`, ...) is refused with an `Unsupported` error naming it rather than ignored; an
    /// option whose value is `null` counts as absent. A `ca` that is not a string or an array
    /// of strings, or that holds no PEM certificate, is a `Config` error (the Node package
    /// turns a `Buffer` into its text before the config crosses).
    ///
    /// With `url`: a `rediss://` URL turns TLS on by itself and `tls`, when an object, adds its
    /// options; a `redis://` URL with `tls` set (`true` or an object) connects with TLS, as
    /// ioredis does. Contradictions are `Config` errors: `rediss://` with `tls: false`, and
    /// the URL's `#insecure` with `rejectUnauthorized: true`. Verification is off when either
    /// `#insecure` or `rejectUnauthorized: false` says so.
    #[serde(default)]
    pub tls: Option<Value>,
    /// Prefix of the stream keys of durable delivery (`<keyPrefix>events:{<type>}`). Never
    /// applied to pub/sub channels: the TS package's prefix never reached them either.
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// Connect timeout (ms, default 10000).
    #[serde(default, deserialize_with = "input::millis::deserialize")]
    pub connect_timeout: Option<u64>,
    /// Added: a publish that has not been sent after this long fails (ms, default 5000).
    #[serde(default, deserialize_with = "input::millis::deserialize")]
    pub publish_timeout: Option<u64>,
    /// Added: publishes waiting while the publisher is disconnected (default 10000).
    #[serde(default, deserialize_with = "input::whole")]
    pub offline_queue_size: Option<usize>,
    /// Added: a connection (publisher or subscriber) idle this long is PINGed, and replaced
    /// when no answer comes within the same time, at most 5 s (ms, default 5000; 0 disables).
    #[serde(default, deserialize_with = "input::millis::deserialize")]
    pub heartbeat_interval: Option<u64>,
    /// Added: first reconnect delay (ms, default 100), doubled per attempt with jitter.
    #[serde(default, deserialize_with = "input::millis::deserialize")]
    pub reconnect_delay: Option<u64>,
    /// Added: reconnect delay cap (ms, default 5000).
    #[serde(default, deserialize_with = "input::millis::deserialize")]
    pub reconnect_delay_max: Option<u64>,
    /// ioredis options accepted and ignored.
    #[serde(default)]
    pub max_retries_per_request: Option<Value>,
    /// ioredis option accepted and ignored.
    #[serde(default)]
    pub enable_ready_check: Option<Value>,
    /// ioredis option accepted and ignored.
    #[serde(default)]
    pub retry_delay_on_failover: Option<Value>,
    /// Redis Cluster seed nodes: `[{host, port}, ...]` or `["redis://host:port", ...]`.
    /// `username`, `password` and `tls` apply to every node.
    #[serde(default)]
    pub cluster: Option<Value>,
    /// Cluster only: `{"ip:port": {host, port}}`, the address to dial for one the cluster
    /// announces (as ioredis's `natMap`).
    #[serde(default)]
    pub nat_map: Option<Value>,
    /// Cluster only: sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`; exact channels only).
    #[serde(default)]
    pub sharded_pub_sub: Option<bool>,
    /// ioredis's name for `shardedPubSub`.
    #[serde(default)]
    pub sharded_subscribers: Option<bool>,
    /// Redis Sentinel servers: `[{host, port}, ...]` (port default 26379).
    #[serde(default)]
    pub sentinels: Option<Value>,
    /// With `sentinels`: the master's name as the sentinels know it.
    #[serde(default)]
    pub name: Option<String>,
    /// With `sentinels`: the sentinels' ACL user.
    #[serde(default)]
    pub sentinel_username: Option<String>,
    /// With `sentinels`: the sentinels' password (never logged, never shown by `Debug`).
    #[serde(default)]
    pub sentinel_password: Option<String>,
    /// With `sentinels`: TLS to the sentinels, as `tls`.
    #[serde(default, rename = "sentinelTLS")]
    pub sentinel_tls: Option<Value>,
    /// With `sentinels`: `"master"` (the only role supported).
    #[serde(default)]
    pub role: Option<String>,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("url", &self.url.as_deref().map(redact_url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("db", &self.db)
            .field("tls", &self.tls)
            .field("cluster", &self.cluster)
            .field("sentinels", &self.sentinels)
            .field("name", &self.name)
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

/// Replace the password of a URL by `<redacted>`.
pub fn redact_url(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let auth_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..auth_end].rfind('@') {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let redacted = if userinfo.contains(':') {
                format!("{user}:<redacted>")
            } else {
                "<redacted>".to_string()
            };
            return format!("{}{}@{}", &url[..scheme_end + 3], redacted, &rest[at + 1..]);
        }
    }
    url.to_string()
}

/// `ClientConfig`: the Socket.IO hub used for rooms.
#[derive(Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClientConfig {
    /// Hub URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Sent as `auth.token` (never logged).
    #[serde(default)]
    pub auth_token: Option<String>,
    /// Reconnect automatically (default true).
    #[serde(default)]
    pub reconnection: Option<bool>,
    /// ms, default 1000.
    #[serde(default, deserialize_with = "input::millis::deserialize")]
    pub reconnection_delay: Option<u64>,
    /// ms, default 5000.
    #[serde(default, deserialize_with = "input::millis::deserialize")]
    pub reconnection_delay_max: Option<u64>,
    /// Default unlimited.
    #[serde(default, deserialize_with = "input::whole")]
    pub reconnection_attempts: Option<u64>,
    /// Connect timeout, ms, default 20000.
    #[serde(default, deserialize_with = "input::millis::deserialize")]
    pub timeout: Option<u64>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("url", &self.url)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("reconnection", &self.reconnection)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// `WebSocketConfig` (Socket.IO transports).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct WebSocketConfig {
    /// `websocket` and/or `polling`.
    #[serde(default)]
    pub transports: Option<Vec<String>>,
}

/// `PerformanceConfig`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceConfig {
    /// Most publishes coalesced into one pipeline write (default 512).
    #[serde(default, deserialize_with = "input::whole")]
    pub batch_size: Option<usize>,
    /// How long (ms) a lone publish may wait for company before it is written (default 0:
    /// never wait; concurrent publishes are still coalesced).
    #[serde(default, deserialize_with = "input::millis::deserialize")]
    pub batch_interval: Option<u64>,
    /// Default `maxRetries` of subscriptions (default 3).
    #[serde(default, deserialize_with = "input::whole")]
    pub max_retries: Option<u32>,
    /// Default `retryDelay` of subscriptions (ms, default 1000).
    #[serde(default, deserialize_with = "input::millis::deserialize")]
    pub retry_delay: Option<u64>,
    /// Accepted, no effect.
    #[serde(default)]
    pub enable_compression: Option<bool>,
}

/// Added: validation limits.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ValidationConfig {
    /// Serialized event limit in bytes (default 1 MiB).
    #[serde(default, deserialize_with = "input::whole")]
    pub max_event_size: Option<usize>,
    /// Serialized data limit in bytes (default 512 KiB).
    #[serde(default, deserialize_with = "input::whole")]
    pub max_data_size: Option<usize>,
    /// Check the predefined photo events' data shapes on publish (default false).
    #[serde(default)]
    pub strict_schemas: Option<bool>,
}

impl fmt::Debug for EventBusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBusConfig")
            .field("service_name", &self.service_name)
            .field("redis", &self.redis)
            .field("client", &self.client)
            .field("performance", &self.performance)
            .field("log_level", &self.log_level)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl EventBusConfig {
    /// Parse the JSON form of the config (what every binding passes). A key of the wrong type
    /// or out of range is a `Config` error that names it (`Invalid EventBusConfig: redis.port
    /// must be at most 65535 (got 70000)`); text that is not JSON is a `Config` error too.
    pub fn from_json(json: &str) -> Result<EventBusConfig> {
        let (mut config, unknown): (EventBusConfig, Vec<String>) =
            input::parse(json, "EventBusConfig", ErrorKind::Config).map_err(|e| {
                // A config that is not JSON is still a config mistake, whatever the face.
                Error::new(ErrorKind::Config, e.message())
            })?;
        config.unknown_keys = unknown
            .into_iter()
            .filter(|k| {
                !TS_IGNORED_SECTIONS
                    .iter()
                    .any(|s| k == s || k.starts_with(&format!("{s}.")))
                    && !topology::IOREDIS_TUNING_KEYS
                        .iter()
                        .any(|t| k.strip_prefix("redis.") == Some(t))
            })
            .collect();
        Ok(config)
    }

    /// Read the config from a JSON value (same rules as [`EventBusConfig::from_json`]).
    pub fn from_value(value: Value) -> Result<EventBusConfig> {
        Self::from_json(&value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ts_constructor_messages() {
        let e = EventBusConfig::from_json(r#"{"redis":{"host":"x","port":1}}"#)
            .unwrap()
            .settings()
            .unwrap_err();
        assert_eq!(e.message(), "serviceName is required in EventBusConfig");
        let e = EventBusConfig::from_json(r#"{"serviceName":"a"}"#)
            .unwrap()
            .settings()
            .unwrap_err();
        assert_eq!(
            e.message(),
            "redis configuration is required in EventBusConfig"
        );
    }

    #[test]
    fn password_never_in_debug() {
        let c = EventBusConfig::from_json(
            r#"{"serviceName":"a","redis":{"host":"h","port":1,"password":"hunter2","url":"redis://u:hunter2@h:1"},"client":{"url":"http://x","authToken":"tok123"}}"#,
        )
        .unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(!d.contains("tok123"), "{d}");
        let s = c.settings().unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!s.display_addr.contains("hunter2"));
    }

    #[test]
    fn defaults_and_memory() {
        let s = EventBusConfig::from_json(r#"{"serviceName":"a","redis":{"host":"h","port":7}}"#)
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(s.display_addr, "redis://h:7");
        assert_eq!(s.publish_timeout, Duration::from_secs(5));
        let s = EventBusConfig::from_json(r#"{"serviceName":"a","transport":"memory"}"#)
            .unwrap()
            .settings()
            .unwrap();
        assert!(matches!(s.endpoint, Endpoint::Memory(ref n) if n == "default"));
        let s = EventBusConfig::from_json(r#"{"serviceName":"a","redis":{"url":"memory://t1"}}"#)
            .unwrap()
            .settings()
            .unwrap();
        assert!(matches!(s.endpoint, Endpoint::Memory(ref n) if n == "t1"));
    }

    #[test]
    fn redact() {
        assert_eq!(
            redact_url("redis://user:pw@host:1/0"),
            "redis://user:<redacted>@host:1/0"
        );
        assert_eq!(redact_url("redis://host:1"), "redis://host:1");
    }
}
