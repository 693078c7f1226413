//! The configuration: the TS package's `EventBusConfig` JSON shape, read once here for every
//! language (the bindings pass the host's config object through as JSON).
//!
//! Unknown fields (`server`, `security`, `monitoring`, ...) are accepted and ignored, as the TS
//! client ignored them. Fields this library adds are documented on each struct.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};
use crate::input;

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
    /// Accepted for compatibility and never applied: the TS package's prefix never reached
    /// pub/sub channels.
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

/// Where the client connects, resolved from the config.
#[derive(Clone)]
pub enum Endpoint {
    /// A Redis server.
    Redis(Box<redis::ConnectionInfo>),
    /// The in-process broker of this name.
    Memory(String),
}

/// The config with every default applied; what the client actually runs on.
#[derive(Clone)]
pub struct Settings {
    /// `metadata.source`.
    pub service_name: String,
    /// Where to connect.
    pub endpoint: Endpoint,
    /// Human-readable address with the password removed, for messages.
    pub display_addr: String,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Publish timeout.
    pub publish_timeout: Duration,
    /// Offline queue bound.
    pub offline_queue_size: usize,
    /// Heartbeat of both connections (None = off).
    pub heartbeat_interval: Option<Duration>,
    /// Reconnect backoff start.
    pub reconnect_delay: Duration,
    /// Reconnect backoff cap.
    pub reconnect_delay_max: Duration,
    /// Pipeline size bound.
    pub batch_size: usize,
    /// Pipeline linger.
    pub batch_interval: Duration,
    /// Subscription defaults.
    pub default_max_retries: u32,
    /// Subscription defaults.
    pub default_retry_delay: Duration,
    /// Log level.
    pub log_level: LogLevel,
    /// JSON log lines.
    pub log_json: bool,
    /// Validation limits.
    pub max_event_size: usize,
    /// Validation limits.
    pub max_data_size: usize,
    /// Strict photo schemas.
    pub strict_schemas: bool,
    /// Drain timeout of `disconnect()`.
    pub disconnect_timeout: Duration,
    /// Socket.IO settings, when rooms are configured (`client` given).
    pub socketio: Option<SocketIoSettings>,
}

/// Which Engine.IO transport carries the Socket.IO connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SioTransport {
    /// One WebSocket.
    Websocket,
    /// HTTP long-polling.
    Polling,
}

impl SioTransport {
    /// The Engine.IO name: `websocket` or `polling`.
    pub fn name(self) -> &'static str {
        match self {
            SioTransport::Websocket => "websocket",
            SioTransport::Polling => "polling",
        }
    }
}

/// The `client` (and `websocket`) config with defaults applied.
#[derive(Clone)]
pub struct SocketIoSettings {
    /// Hub URL (`http(s)://host:port[/namespace]`).
    pub url: String,
    /// Sent as `auth.token`.
    pub auth_token: Option<String>,
    /// Reconnect after a lost connection (default true).
    pub reconnection: bool,
    /// Reconnect backoff start (default 1000 ms).
    pub reconnection_delay: Duration,
    /// Reconnect backoff cap (default 5000 ms).
    pub reconnection_delay_max: Duration,
    /// Attempts after a loss before giving up (None = unlimited).
    pub reconnection_attempts: Option<u64>,
    /// Connect and acknowledgement timeout (default 20000 ms).
    pub timeout: Duration,
    /// Transports in the order they are tried: `websocket.transports` as given, default
    /// websocket then polling.
    pub transports: Vec<SioTransport>,
}

impl fmt::Debug for SocketIoSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketIoSettings")
            .field("url", &self.url)
            .field("transports", &self.transports)
            .finish_non_exhaustive()
    }
}

fn socketio_settings(
    client: &Option<ClientConfig>,
    ws: &Option<WebSocketConfig>,
) -> Result<Option<SocketIoSettings>> {
    let Some(c) = client else { return Ok(None) };
    let url = match c.url.as_deref().map(str::trim) {
        Some(u) if !u.is_empty() => u.to_string(),
        _ => {
            return Err(Error::new(
                ErrorKind::Config,
                "client.url is required when client (Socket.IO) is configured",
            ))
        }
    };
    if !(url.starts_with("http://")
        || url.starts_with("https://")
        || url.starts_with("ws://")
        || url.starts_with("wss://"))
    {
        return Err(Error::new(
            ErrorKind::Config,
            format!("client.url must start with http://, https://, ws:// or wss://, got \"{url}\""),
        ));
    }
    let transports = match ws.as_ref().and_then(|w| w.transports.as_ref()) {
        None => vec![SioTransport::Websocket, SioTransport::Polling],
        Some(list) => {
            let mut out = Vec::new();
            for t in list {
                let t = match t.as_str() {
                    "websocket" => SioTransport::Websocket,
                    "polling" => SioTransport::Polling,
                    other => {
                        return Err(Error::new(
                            ErrorKind::Config,
                            format!(
                                "websocket.transports entries must be \"websocket\" or \"polling\", got \"{other}\""
                            ),
                        ))
                    }
                };
                if !out.contains(&t) {
                    out.push(t);
                }
            }
            if out.is_empty() {
                return Err(Error::new(
                    ErrorKind::Config,
                    "websocket.transports must name at least one transport",
                ));
            }
            out
        }
    };
    Ok(Some(SocketIoSettings {
        url,
        auth_token: c.auth_token.clone(),
        reconnection: c.reconnection.unwrap_or(true),
        reconnection_delay: ms(c.reconnection_delay, 1000),
        reconnection_delay_max: ms(c.reconnection_delay_max, 5000),
        reconnection_attempts: c.reconnection_attempts,
        timeout: ms(c.timeout, 20_000),
        transports,
    }))
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("service_name", &self.service_name)
            .field("addr", &self.display_addr)
            .field("publish_timeout", &self.publish_timeout)
            .finish_non_exhaustive()
    }
}

fn ms(v: Option<u64>, default: u64) -> Duration {
    Duration::from_millis(v.unwrap_or(default))
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
            })
            .collect();
        Ok(config)
    }

    /// Read the config from a JSON value (same rules as [`EventBusConfig::from_json`]).
    pub fn from_value(value: Value) -> Result<EventBusConfig> {
        Self::from_json(&value.to_string())
    }

    /// Check required fields with the TS constructor's messages and apply every default.
    pub fn settings(&self) -> Result<Settings> {
        let service_name = match self.service_name.as_deref() {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => {
                return Err(Error::new(
                    ErrorKind::Config,
                    "serviceName is required in EventBusConfig",
                ))
            }
        };
        let memory_by_transport = self.transport == Some(TransportKind::Memory);
        let redis = match (&self.redis, memory_by_transport) {
            (Some(r), _) => r.clone(),
            (None, true) => RedisConfig::default(),
            (None, false) => {
                return Err(Error::new(
                    ErrorKind::Config,
                    "redis configuration is required in EventBusConfig",
                ))
            }
        };
        let (endpoint, display_addr) = if memory_by_transport {
            let name = redis
                .url
                .as_deref()
                .and_then(|u| u.strip_prefix("memory://"))
                .unwrap_or("default")
                .to_string();
            (Endpoint::Memory(name.clone()), format!("memory://{name}"))
        } else if let Some(name) = redis
            .url
            .as_deref()
            .and_then(|u| u.strip_prefix("memory://"))
        {
            let name = if name.is_empty() { "default" } else { name };
            (
                Endpoint::Memory(name.to_string()),
                format!("memory://{name}"),
            )
        } else {
            redis_endpoint(&redis)?
        };
        let perf = self.performance.clone().unwrap_or_default();
        let val = self.validation.clone().unwrap_or_default();
        let heartbeat = redis.heartbeat_interval.unwrap_or(5000);
        let log_json = match self.log_format.as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("logFormat must be \"text\" or \"json\", got \"{other}\""),
                ))
            }
        };
        Ok(Settings {
            service_name,
            endpoint,
            display_addr,
            connect_timeout: ms(redis.connect_timeout, 10_000),
            publish_timeout: ms(redis.publish_timeout, 5_000),
            offline_queue_size: redis.offline_queue_size.unwrap_or(10_000),
            heartbeat_interval: (heartbeat > 0).then(|| Duration::from_millis(heartbeat)),
            reconnect_delay: ms(redis.reconnect_delay, 100),
            reconnect_delay_max: ms(redis.reconnect_delay_max, 5_000),
            batch_size: perf.batch_size.unwrap_or(512).max(1),
            batch_interval: ms(perf.batch_interval, 0),
            default_max_retries: perf.max_retries.unwrap_or(3),
            default_retry_delay: ms(perf.retry_delay, 1000),
            log_level: self.log_level.unwrap_or_default(),
            log_json,
            max_event_size: val.max_event_size.unwrap_or(1024 * 1024),
            max_data_size: val.max_data_size.unwrap_or(512 * 1024),
            strict_schemas: val.strict_schemas.unwrap_or(false),
            disconnect_timeout: ms(self.disconnect_timeout, 5_000),
            socketio: socketio_settings(&self.client, &self.websocket)?,
        })
    }
}

/// What `redis.tls` asks for, checked.
#[derive(Default)]
struct TlsOptions {
    /// `rejectUnauthorized`, when given.
    reject_unauthorized: Option<bool>,
    /// The `ca` PEM texts, joined, when given.
    ca: Option<Vec<u8>>,
}

/// JSON type names for messages.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `redis.tls`: `None` when it does not ask for TLS (absent, `null`, `false`). Options this
/// client does not implement are `Unsupported`, malformed ones `Config` errors.
fn tls_options(v: &Option<Value>) -> Result<Option<TlsOptions>> {
    let o = match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => return Ok(None),
        Some(Value::Bool(true)) => return Ok(Some(TlsOptions::default())),
        Some(Value::Object(o)) => o,
        Some(other) => {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "redis.tls must be true, false or an object of TLS options, got {}",
                    json_type(other)
                ),
            ))
        }
    };
    let unsupported: Vec<String> = o
        .iter()
        .filter(|(k, v)| !v.is_null() && !matches!(k.as_str(), "ca" | "rejectUnauthorized"))
        .map(|(k, _)| format!("redis.tls.{k}"))
        .collect();
    if !unsupported.is_empty() {
        let verb = if unsupported.len() == 1 { "is" } else { "are" };
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{} {verb} not supported (redis.tls takes ca and rejectUnauthorized; client \
                 certificates, servername and the other Node TLS options are not implemented)",
                unsupported.join(", ")
            ),
        ));
    }
    let mut opts = TlsOptions::default();
    match o.get("rejectUnauthorized") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => opts.reject_unauthorized = Some(*b),
        Some(other) => {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "redis.tls.rejectUnauthorized must be true or false, got {}",
                    json_type(other)
                ),
            ))
        }
    }
    match o.get("ca") {
        None | Some(Value::Null) => {}
        Some(v) => opts.ca = Some(ca_pem(v)?),
    }
    Ok(Some(opts))
}

/// `redis.tls.ca` (a PEM string or an array of them) as one PEM text, each part checked to
/// hold at least one certificate.
fn ca_pem(v: &Value) -> Result<Vec<u8>> {
    let parts: Vec<(String, &str)> = match v {
        Value::String(s) => vec![("redis.tls.ca".to_string(), s.as_str())],
        Value::Array(items) if items.is_empty() => {
            return Err(Error::new(
                ErrorKind::Config,
                "redis.tls.ca is an empty array: give at least one PEM certificate",
            ))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok((format!("redis.tls.ca[{i}]"), s.as_str())),
                other => Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "redis.tls.ca[{i}] must be PEM text (a string), got {}",
                        json_type(other)
                    ),
                )),
            })
            .collect::<Result<_>>()?,
        other => {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "redis.tls.ca must be PEM text: a string or an array of strings, got {}",
                    json_type(other)
                ),
            ))
        }
    };
    let mut pem = Vec::new();
    for (name, text) in parts {
        check_pem_certificates(&name, text)?;
        pem.extend_from_slice(text.as_bytes());
        pem.push(b'\n');
    }
    Ok(pem)
}

/// `text` (the value of option `name`) parses as PEM and holds at least one certificate.
#[cfg(feature = "tls")]
fn check_pem_certificates(name: &str, text: &str) -> Result<()> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut n = 0;
    for cert in CertificateDer::pem_slice_iter(text.as_bytes()) {
        cert.map_err(|e| Error::new(ErrorKind::Config, format!("{name} is not valid PEM: {e}")))?;
        n += 1;
    }
    if n == 0 {
        return Err(Error::new(
            ErrorKind::Config,
            format!("{name} holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)"),
        ));
    }
    Ok(())
}

/// Without the `tls` feature a TLS config is refused before its certificates are looked at.
#[cfg(not(feature = "tls"))]
fn check_pem_certificates(_name: &str, _text: &str) -> Result<()> {
    Ok(())
}

fn redis_endpoint(redis: &RedisConfig) -> Result<(Endpoint, String)> {
    use redis::IntoConnectionInfo;
    let tls = tls_options(&redis.tls)?;
    let mut info = if let Some(url) = redis.url.as_deref() {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "redis.url must start with redis://, rediss:// or memory:// (got {})",
                    redact_url(url)
                ),
            ));
        }
        if url.starts_with("rediss://") && !cfg!(feature = "tls") {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "rediss:// needs the `tls` feature, which this build does not have",
            ));
        }
        if url.starts_with("rediss://") && redis.tls == Some(Value::Bool(false)) {
            return Err(Error::new(
                ErrorKind::Config,
                "redis.url is a rediss:// (TLS) URL but redis.tls is false: remove one of them",
            ));
        }
        url.into_connection_info().map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("invalid redis.url {}", redact_url(url)),
            )
            .with_source(e)
        })?
    } else {
        let host = redis.host.clone().unwrap_or_else(|| "127.0.0.1".into());
        let port = redis.port.unwrap_or(6379);
        redis::ConnectionAddr::Tcp(host, port)
            .into_connection_info()
            .map_err(|e| Error::new(ErrorKind::Config, "invalid redis host/port").with_source(e))?
    };
    if let Some(tls) = &tls {
        if !cfg!(feature = "tls") {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "redis.tls needs the `tls` feature, which this build does not have",
            ));
        }
        // `redis://` + tls: TLS, as in ioredis; `rediss://` + tls: the URL's flags plus ours.
        let addr = match info.addr().clone() {
            redis::ConnectionAddr::Tcp(host, port) => redis::ConnectionAddr::TcpTls {
                host,
                port,
                insecure: tls.reject_unauthorized == Some(false),
                tls_params: None,
            },
            redis::ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                tls_params,
            } => {
                if insecure && tls.reject_unauthorized == Some(true) {
                    return Err(Error::new(
                        ErrorKind::Config,
                        "redis.url ends with #insecure (no certificate verification) but \
                         redis.tls.rejectUnauthorized is true: remove one of them",
                    ));
                }
                redis::ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: insecure || tls.reject_unauthorized == Some(false),
                    tls_params,
                }
            }
            other => other,
        };
        info = info.set_addr(addr);
    }
    let mut rs = info.redis_settings().clone();
    if let Some(u) = &redis.username {
        rs = rs.set_username(u);
    }
    if let Some(p) = &redis.password {
        rs = rs.set_password(p);
    }
    if let Some(db) = redis.db {
        rs = rs.set_db(db);
    }
    rs = rs.set_lib_name("event-bus-rs", env!("CARGO_PKG_VERSION"));
    info = info.set_redis_settings(rs);
    if let Some(ca) = tls.and_then(|t| t.ca) {
        // The CA travels inside the connection info (its TLS parameters), so every connection
        // and reconnection of the client trusts it.
        let client = redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca),
            },
        )
        .map_err(|e| {
            Error::new(
                ErrorKind::Config,
                "redis.tls.ca cannot be used as trusted certificates",
            )
            .with_source(e)
        })?;
        info = client.get_connection_info().clone();
    }
    let display = match info.addr() {
        redis::ConnectionAddr::Tcp(h, p) => format!("redis://{h}:{p}"),
        redis::ConnectionAddr::TcpTls { host, port, .. } => format!("rediss://{host}:{port}"),
        other => format!("{other:?}"),
    };
    Ok((Endpoint::Redis(Box::new(info)), display))
}

#[cfg(test)]
mod tests {
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
