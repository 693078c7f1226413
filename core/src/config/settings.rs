//! [`Settings`]: the config with every default applied and every rule checked, what the
//! client actually runs on. The TS constructor's messages for missing fields live here.

use std::fmt;
use std::time::Duration;

use super::redis::redis_endpoint;
use super::topology::{refuse_unhonoured, topology_endpoint, ClusterSettings, SentinelSettings};
use super::{ClientConfig, EventBusConfig, LogLevel, RedisConfig, TransportKind, WebSocketConfig};
use crate::error::{Error, ErrorKind, Result};

/// Where the client connects, resolved from the config.
#[derive(Clone)]
pub enum Endpoint {
    /// A Redis server.
    Redis(Box<redis::ConnectionInfo>),
    /// The in-process broker of this name.
    Memory(String),
    /// A master found through Redis Sentinel.
    Sentinel(Box<SentinelSettings>),
    /// A Redis Cluster.
    Cluster(Box<ClusterSettings>),
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
    /// `redis.keyPrefix`: prefix of stream keys (never of channels).
    pub key_prefix: String,
    /// `durable.maxLen`: approximate bound of each type's stream.
    pub durable_max_len: u64,
    /// `durable.waitReplicas` (0: no wait) and `durable.waitTimeout`.
    pub durable_wait: (u32, Duration),
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

impl Settings {
    /// Sharded pub/sub on a cluster (`redis.shardedPubSub`): exact channels only.
    pub fn sharded_pub_sub(&self) -> bool {
        matches!(&self.endpoint, Endpoint::Cluster(c) if c.sharded)
    }
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
        refuse_unhonoured(&self.unknown_keys)?;
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
        } else if let Some(topology) = topology_endpoint(&redis)? {
            topology
        } else {
            redis_endpoint(&redis)?
        };
        let durable_max_len = self
            .durable
            .as_ref()
            .and_then(|d| d.max_len)
            .unwrap_or(1_000_000);
        if durable_max_len == 0 {
            return Err(Error::new(
                ErrorKind::Config,
                "durable.maxLen must be at least 1 (got 0)",
            ));
        }
        let key_prefix = redis.key_prefix.clone().unwrap_or_default();
        let durable_wait = (
            self.durable
                .as_ref()
                .and_then(|d| d.wait_replicas)
                .unwrap_or(0),
            ms(self.durable.as_ref().and_then(|d| d.wait_timeout), 1000),
        );
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
            key_prefix,
            durable_max_len,
            durable_wait,
            socketio: socketio_settings(&self.client, &self.websocket)?,
        })
    }
}
