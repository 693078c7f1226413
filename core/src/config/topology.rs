//! Where the data lives when it is more than one server: a Redis Cluster (`redis.cluster`,
//! seed nodes) or a master watched by Redis Sentinel (`redis.sentinels` + `redis.name`).
//!
//! The key names are ioredis's, so a TypeScript user can guess them. A config that mixes modes
//! (`cluster` with `sentinels`, a `url` or `host`/`port` with either, `shardedPubSub` without
//! `cluster`) is a `Config` error naming both keys: nothing may silently decide where the
//! client connects. For the same reason the ioredis keys that name a topology or an address and
//! are not honoured here (`path`, `family`, `scaleReads`, ...) are refused, not ignored.

use std::collections::BTreeMap;

use serde_json::Value;

use super::redis::{json_type, redis_endpoint};
use super::settings::Endpoint;
use super::RedisConfig;
use crate::error::{Error, ErrorKind, Result};

/// A server address: host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeAddr {
    /// Host name or IP.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl std::fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// `redis.sentinels` + `redis.name`, checked.
#[derive(Clone)]
pub struct SentinelSettings {
    /// The sentinels, asked in this order (the one that answers moves to the front).
    pub sentinels: Vec<NodeAddr>,
    /// The master's name as the sentinels know it (`redis.name`).
    pub name: String,
    /// How to connect to the master the sentinels name: `redis.username`, `password`, `db`,
    /// `tls` (the address is replaced by the one the sentinels give).
    pub node: redis::ConnectionInfo,
    /// How to connect to a sentinel: `sentinelUsername`, `sentinelPassword`, `sentinelTLS`.
    pub sentinel: redis::ConnectionInfo,
}

/// `redis.cluster`, checked.
#[derive(Clone)]
pub struct ClusterSettings {
    /// The seed nodes the topology is first read from.
    pub seeds: Vec<NodeAddr>,
    /// `redis.natMap`: an address the cluster announces (`ip:port`) to the one to dial.
    pub nat_map: BTreeMap<String, NodeAddr>,
    /// How to connect to any node: `redis.username`, `password`, `tls` (the address is replaced
    /// by the node's).
    pub node: redis::ConnectionInfo,
    /// `redis.shardedPubSub` (alias `shardedSubscribers`).
    pub sharded: bool,
}

impl ClusterSettings {
    /// The address to dial for one the cluster announced, through `natMap`.
    pub fn map(&self, announced: NodeAddr) -> NodeAddr {
        self.nat_map
            .get(&announced.to_string())
            .cloned()
            .unwrap_or(announced)
    }
}

/// `info` with its host and port replaced, TLS and credentials kept.
pub fn with_addr(info: &redis::ConnectionInfo, addr: &NodeAddr) -> redis::ConnectionInfo {
    let a = match info.addr() {
        redis::ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => redis::ConnectionAddr::TcpTls {
            host: addr.host.clone(),
            port: addr.port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => redis::ConnectionAddr::Tcp(addr.host.clone(), addr.port),
    };
    info.clone().set_addr(a)
}

/// ioredis keys that name a topology or an address and that this client does not honour:
/// refused, because ignoring them would connect somewhere the user did not mean. The text says
/// what to do instead.
const REFUSED_KEYS: &[(&str, &str)] = &[
    (
        "path",
        "Unix sockets are not supported; give host and port or url",
    ),
    (
        "family",
        "the address family follows the host name; give an IP address to choose one",
    ),
    ("preferredSlaves", "only role \"master\" is supported"),
    (
        "readOnly",
        "replicas are never read from: pub/sub goes to masters",
    ),
    (
        "scaleReads",
        "replicas are never read from: pub/sub goes to masters",
    ),
    (
        "redisOptions",
        "put the node options (username, password, tls) under redis directly",
    ),
    (
        "dnsLookup",
        "functions cannot be given in the config; use natMap",
    ),
    (
        "sentinel",
        "did you mean redis.sentinels (an array of {host, port})?",
    ),
    (
        "nodes",
        "did you mean redis.cluster (an array of seed nodes)?",
    ),
    (
        "startupNodes",
        "did you mean redis.cluster (an array of seed nodes)?",
    ),
    (
        "clusterNodes",
        "did you mean redis.cluster (an array of seed nodes)?",
    ),
    (
        "masterName",
        "did you mean redis.name (the master's name known to the sentinels)?",
    ),
];

/// ioredis tuning keys accepted and ignored without a warning (their jobs are done by this
/// client's own reconnect, heartbeat and offline-queue rules).
pub(super) const IOREDIS_TUNING_KEYS: &[&str] = &[
    "retryDelayOnClusterDown",
    "retryDelayOnTryAgain",
    "retryDelayOnMoved",
    "slotsRefreshTimeout",
    "slotsRefreshInterval",
    "maxRedirections",
    "sentinelCommandTimeout",
    "updateSentinels",
    "enableAutoPipelining",
    "lazyConnect",
    "connectionName",
];

/// A `Config` error for a key from [`REFUSED_KEYS`], when `unknown` (the config's unknown
/// key paths) holds one under `redis`.
pub(super) fn refuse_unhonoured(unknown: &[String]) -> Result<()> {
    for key in unknown {
        let Some(name) = key.strip_prefix("redis.") else {
            continue;
        };
        let name = name.split('.').next().unwrap_or(name);
        if let Some((_, why)) = REFUSED_KEYS.iter().find(|(k, _)| *k == name) {
            return Err(Error::new(
                ErrorKind::Config,
                format!("redis.{name} is not supported: {why}"),
            ));
        }
    }
    Ok(())
}

fn config_err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Config, msg)
}

/// Present and not `null`.
fn given<T>(v: &Option<T>) -> bool {
    v.is_some()
}

fn value_given(v: &Option<Value>) -> bool {
    !matches!(v, None | Some(Value::Null))
}

/// Which of `redis`'s keys are given, in the words of the messages.
fn address_keys(redis: &RedisConfig) -> Option<&'static str> {
    if given(&redis.url) {
        Some("redis.url")
    } else if given(&redis.host) {
        Some("redis.host")
    } else if given(&redis.port) {
        Some("redis.port")
    } else {
        None
    }
}

/// `redis.shardedPubSub` or its alias `shardedSubscribers`; both given must agree.
fn sharded(redis: &RedisConfig) -> Result<Option<bool>> {
    match (redis.sharded_pub_sub, redis.sharded_subscribers) {
        (Some(a), Some(b)) if a != b => Err(config_err(
            "redis.shardedPubSub and redis.shardedSubscribers (its ioredis alias) disagree: give one",
        )),
        (a, b) => Ok(a.or(b)),
    }
}

/// The endpoint for a config that names a cluster or sentinels; `None` for a single server.
pub(super) fn topology_endpoint(redis: &RedisConfig) -> Result<Option<(Endpoint, String)>> {
    let cluster = value_given(&redis.cluster);
    let sentinels = value_given(&redis.sentinels);
    let sharded = sharded(redis)?;
    if cluster && sentinels {
        return Err(config_err(
            "redis.cluster and redis.sentinels cannot be combined: a client talks to a Redis \
             Cluster or to a Sentinel-managed master, give one of them",
        ));
    }
    for (on, mode) in [(cluster, "redis.cluster"), (sentinels, "redis.sentinels")] {
        if on {
            if let Some(k) = address_keys(redis) {
                return Err(config_err(format!(
                    "{k} cannot be combined with {mode}: the nodes come from {mode}, remove {k}"
                )));
            }
        }
    }
    if !cluster {
        if sharded == Some(true) {
            let k = if redis.sharded_pub_sub.is_some() {
                "redis.shardedPubSub"
            } else {
                "redis.shardedSubscribers"
            };
            return Err(config_err(format!(
                "{k} needs redis.cluster: sharded pub/sub exists only on a Redis Cluster"
            )));
        }
        if value_given(&redis.nat_map) {
            return Err(config_err(
                "redis.natMap is not supported without redis.cluster: it maps the addresses a \
                 cluster announces",
            ));
        }
    }
    if !sentinels {
        for (v, k) in [
            (given(&redis.name), "redis.name"),
            (given(&redis.role), "redis.role"),
            (given(&redis.sentinel_username), "redis.sentinelUsername"),
            (given(&redis.sentinel_password), "redis.sentinelPassword"),
            (value_given(&redis.sentinel_tls), "redis.sentinelTLS"),
        ] {
            if v {
                return Err(config_err(format!(
                    "{k} needs redis.sentinels (the Sentinel servers to ask for the master)"
                )));
            }
        }
    }
    if cluster {
        return cluster_endpoint(redis, sharded.unwrap_or(false)).map(Some);
    }
    if sentinels {
        return sentinel_endpoint(redis).map(Some);
    }
    Ok(None)
}

/// One node's `ConnectionInfo` from the `redis` section (credentials, db, TLS) and `addr`.
fn node_info(redis: &RedisConfig, addr: &NodeAddr) -> Result<redis::ConnectionInfo> {
    let r = RedisConfig {
        host: Some(addr.host.clone()),
        port: Some(addr.port),
        url: None,
        ..redis.clone()
    };
    match redis_endpoint(&r)?.0 {
        Endpoint::Redis(info) => Ok(*info),
        _ => unreachable!("redis_endpoint gives a Redis endpoint"),
    }
}

/// A list of `{host, port}` objects or `redis://host:port` strings under `key`.
fn addr_list(v: &Value, key: &str, default_port: u16) -> Result<Vec<NodeAddr>> {
    let Value::Array(items) = v else {
        return Err(config_err(format!(
            "{key} must be an array of {{host, port}} objects or \"redis://host:port\" strings, \
             got {}",
            json_type(v)
        )));
    };
    if items.is_empty() {
        return Err(config_err(format!(
            "{key} is empty: give at least one node"
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| node_addr(item, &format!("{key}[{i}]"), default_port))
        .collect()
}

/// One address: `{host, port}` or `redis://host:port`.
fn node_addr(v: &Value, key: &str, default_port: u16) -> Result<NodeAddr> {
    match v {
        Value::Object(o) => {
            for k in o.keys() {
                if !matches!(k.as_str(), "host" | "port") {
                    return Err(config_err(format!(
                        "{key}.{k} is not supported: a node is {{host, port}}; credentials and \
                         TLS go under redis"
                    )));
                }
            }
            let host = match o.get("host") {
                None | Some(Value::Null) => "127.0.0.1".to_string(),
                Some(Value::String(h)) if !h.is_empty() => h.clone(),
                Some(other) => {
                    return Err(config_err(format!(
                        "{key}.host must be a non-empty string, got {}",
                        json_type(other)
                    )))
                }
            };
            let port = match o.get("port") {
                None | Some(Value::Null) => default_port,
                Some(Value::Number(n)) => n
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| {
                        config_err(format!(
                            "{key}.port must be a whole number from 0 to 65535 (got {n})"
                        ))
                    })?,
                Some(other) => {
                    return Err(config_err(format!(
                        "{key}.port must be a whole number from 0 to 65535, got {}",
                        json_type(other)
                    )))
                }
            };
            Ok(NodeAddr { host, port })
        }
        Value::String(s) => {
            let rest = s.strip_prefix("redis://").ok_or_else(|| {
                config_err(format!(
                    "{key} must be a redis://host:port URL (TLS is set by redis.tls), got \"{s}\""
                ))
            })?;
            let rest = rest.trim_end_matches('/');
            if rest.contains('@') || rest.contains('/') || rest.contains('?') {
                return Err(config_err(format!(
                    "{key} must be redis://host:port only: credentials go under redis \
                     (username, password), got \"{}\"",
                    super::redact_url(s)
                )));
            }
            let (host, port) = match rest.rsplit_once(':') {
                Some((h, p)) => (
                    h,
                    p.parse::<u16>()
                        .map_err(|_| config_err(format!("{key} has an invalid port: \"{s}\"")))?,
                ),
                None => (rest, default_port),
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(config_err(format!("{key} has no host: \"{s}\"")));
            }
            Ok(NodeAddr {
                host: host.to_string(),
                port,
            })
        }
        other => Err(config_err(format!(
            "{key} must be a {{host, port}} object or a \"redis://host:port\" string, got {}",
            json_type(other)
        ))),
    }
}

fn cluster_endpoint(redis: &RedisConfig, sharded: bool) -> Result<(Endpoint, String)> {
    let seeds = addr_list(
        redis.cluster.as_ref().unwrap_or(&Value::Null),
        "redis.cluster",
        6379,
    )?;
    let mut nat_map = BTreeMap::new();
    match &redis.nat_map {
        None | Some(Value::Null) => {}
        Some(Value::Object(o)) => {
            for (from, to) in o {
                let key = format!("redis.natMap[\"{from}\"]");
                let ok = from
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
                if !ok {
                    return Err(config_err(format!(
                        "{key}: the keys of redis.natMap are the addresses the cluster \
                         announces, \"ip:port\""
                    )));
                }
                if !to.is_object() {
                    return Err(config_err(format!(
                        "{key} must be a {{host, port}} object, got {}",
                        json_type(to)
                    )));
                }
                nat_map.insert(from.clone(), node_addr(to, &key, 6379)?);
            }
        }
        Some(other) => {
            return Err(config_err(format!(
                "redis.natMap must be an object of \"ip:port\": {{host, port}}, got {}",
                json_type(other)
            )))
        }
    }
    if redis.db.is_some_and(|db| db != 0) {
        return Err(config_err(
            "redis.db cannot be combined with redis.cluster: a Redis Cluster has only db 0",
        ));
    }
    let node = node_info(redis, &seeds[0])?;
    let tls = matches!(node.addr(), redis::ConnectionAddr::TcpTls { .. });
    let display = format!(
        "redis-cluster{} {}",
        if tls { " (TLS)" } else { "" },
        seeds
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    Ok((
        Endpoint::Cluster(Box::new(ClusterSettings {
            seeds,
            nat_map,
            node,
            sharded,
        })),
        display,
    ))
}

fn sentinel_endpoint(redis: &RedisConfig) -> Result<(Endpoint, String)> {
    let sentinels = addr_list(
        redis.sentinels.as_ref().unwrap_or(&Value::Null),
        "redis.sentinels",
        26379,
    )?;
    let name = match redis.name.as_deref() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => {
            return Err(config_err(
                "redis.sentinels needs redis.name: the name of the master the sentinels watch",
            ))
        }
    };
    match redis.role.as_deref() {
        None | Some("master") => {}
        Some(other) => {
            return Err(config_err(format!(
                "redis.role must be \"master\" (got \"{other}\"): publishing and subscribing \
                 go to the master; replicas are not supported"
            )))
        }
    }
    let node = node_info(redis, &sentinels[0])?;
    let sentinel_cfg = RedisConfig {
        username: redis.sentinel_username.clone(),
        password: redis.sentinel_password.clone(),
        tls: redis.sentinel_tls.clone(),
        db: None,
        ..redis.clone()
    };
    let sentinel = node_info(&sentinel_cfg, &sentinels[0])?;
    let display = format!(
        "redis-sentinel {name} via {}",
        sentinels
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    Ok((
        Endpoint::Sentinel(Box::new(SentinelSettings {
            sentinels,
            name,
            node,
            sentinel,
        })),
        display,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::EventBusConfig;
    use super::*;

    fn endpoint(redis: &str) -> Result<Endpoint> {
        let json = format!(r#"{{"serviceName":"a","redis":{redis}}}"#);
        EventBusConfig::from_json(&json)?
            .settings()
            .map(|s| s.endpoint)
    }

    fn err(redis: &str) -> String {
        match endpoint(redis) {
            Ok(_) => panic!("{redis} was accepted"),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Config, "{e}");
                e.message().to_string()
            }
        }
    }

    #[test]
    fn cluster_seeds_in_both_forms_with_nat_map() {
        let e = endpoint(
            r#"{"cluster":[{"host":"10.0.0.1","port":7000},"redis://10.0.0.2:7001",{"port":7002}],
                "natMap":{"10.0.0.1:7000":{"host":"public.example","port":17000}},
                "password":"pw"}"#,
        )
        .unwrap();
        let Endpoint::Cluster(c) = e else {
            panic!("cluster expected")
        };
        assert_eq!(
            c.seeds,
            vec![
                NodeAddr {
                    host: "10.0.0.1".into(),
                    port: 7000
                },
                NodeAddr {
                    host: "10.0.0.2".into(),
                    port: 7001
                },
                NodeAddr {
                    host: "127.0.0.1".into(),
                    port: 7002
                },
            ]
        );
        assert!(!c.sharded);
        assert_eq!(c.node.redis_settings().password(), Some("pw"));
        assert_eq!(
            c.map(NodeAddr {
                host: "10.0.0.1".into(),
                port: 7000
            }),
            NodeAddr {
                host: "public.example".into(),
                port: 17000
            }
        );
        assert_eq!(
            c.map(NodeAddr {
                host: "10.0.0.9".into(),
                port: 7000
            })
            .host,
            "10.0.0.9"
        );
    }

    #[test]
    fn tls_and_credentials_apply_to_every_node() {
        let Endpoint::Cluster(c) = endpoint(
            r#"{"cluster":["redis://h:1"],"tls":{"rejectUnauthorized":false},"username":"u"}"#,
        )
        .unwrap() else {
            panic!()
        };
        let n = with_addr(
            &c.node,
            &NodeAddr {
                host: "other".into(),
                port: 9,
            },
        );
        assert!(
            matches!(n.addr(), redis::ConnectionAddr::TcpTls { host, port: 9, insecure: true, .. } if host == "other")
        );
        assert_eq!(n.redis_settings().username(), Some("u"));
    }

    #[test]
    fn sentinels_with_their_own_credentials() {
        let Endpoint::Sentinel(s) = endpoint(
            r#"{"sentinels":[{"host":"s1","port":26379},{"host":"s2"}],"name":"mymaster",
                "password":"node-pw","sentinelPassword":"sent-pw","role":"master","db":3}"#,
        )
        .unwrap() else {
            panic!("sentinel expected")
        };
        assert_eq!(s.name, "mymaster");
        assert_eq!(
            s.sentinels[1],
            NodeAddr {
                host: "s2".into(),
                port: 26379
            }
        );
        assert_eq!(s.node.redis_settings().password(), Some("node-pw"));
        assert_eq!(s.node.redis_settings().db(), 3);
        assert_eq!(s.sentinel.redis_settings().password(), Some("sent-pw"));
        assert_eq!(s.sentinel.redis_settings().db(), 0);
    }

    #[test]
    fn mixed_modes_name_both_keys() {
        let m = err(r#"{"cluster":["redis://h:1"],"sentinels":[{"host":"s"}],"name":"m"}"#);
        assert!(
            m.contains("redis.cluster") && m.contains("redis.sentinels"),
            "{m}"
        );
        let m = err(r#"{"url":"redis://h:1","cluster":["redis://h:1"]}"#);
        assert!(
            m.contains("redis.url") && m.contains("redis.cluster"),
            "{m}"
        );
        let m = err(r#"{"url":"redis://h:1","sentinels":[{"host":"s"}],"name":"m"}"#);
        assert!(
            m.contains("redis.url") && m.contains("redis.sentinels"),
            "{m}"
        );
        let m = err(r#"{"host":"h","cluster":["redis://h:1"]}"#);
        assert!(
            m.contains("redis.host") && m.contains("redis.cluster"),
            "{m}"
        );
        let m = err(r#"{"shardedPubSub":true}"#);
        assert!(
            m.contains("redis.shardedPubSub") && m.contains("redis.cluster"),
            "{m}"
        );
        let m = err(r#"{"shardedSubscribers":true}"#);
        assert!(
            m.contains("redis.shardedSubscribers") && m.contains("redis.cluster"),
            "{m}"
        );
        let m = err(r#"{"natMap":{"1.2.3.4:1":{"host":"h","port":1}}}"#);
        assert!(
            m.contains("redis.natMap") && m.contains("redis.cluster"),
            "{m}"
        );
        for k in ["name", "role", "sentinelPassword", "sentinelUsername"] {
            let m = err(&format!(r#"{{"{k}":"x"}}"#));
            assert!(
                m.contains(&format!("redis.{k}")) && m.contains("redis.sentinels"),
                "{m}"
            );
        }
        let m = err(r#"{"sentinelTLS":true}"#);
        assert!(m.contains("redis.sentinelTLS"), "{m}");
        // false / null count as absent.
        endpoint(r#"{"shardedPubSub":false,"natMap":null}"#).unwrap();
    }

    #[test]
    fn sentinel_rules() {
        let m = err(r#"{"sentinels":[{"host":"s"}]}"#);
        assert!(m.contains("redis.name"), "{m}");
        let m = err(r#"{"sentinels":[{"host":"s"}],"name":"m","role":"slave"}"#);
        assert!(m.contains("redis.role must be \"master\""), "{m}");
        let m = err(r#"{"sentinels":[],"name":"m"}"#);
        assert!(m.contains("redis.sentinels is empty"), "{m}");
        let m = err(r#"{"sentinels":{"host":"s"},"name":"m"}"#);
        assert!(m.contains("must be an array"), "{m}");
    }

    #[test]
    fn cluster_rules() {
        let m = err(r#"{"cluster":["redis://u:pw@h:1"]}"#);
        assert!(
            m.contains("credentials go under redis") && !m.contains("pw@"),
            "{m}"
        );
        let m = err(r#"{"cluster":["h:1"]}"#);
        assert!(m.contains("redis.cluster[0]"), "{m}");
        let m = err(r#"{"cluster":[{"host":"h","port":70000}]}"#);
        assert!(m.contains("redis.cluster[0].port"), "{m}");
        let m = err(r#"{"cluster":[{"host":"h","password":"x"}]}"#);
        assert!(m.contains("redis.cluster[0].password"), "{m}");
        let m = err(r#"{"cluster":["redis://h:1"],"db":2}"#);
        assert!(m.contains("redis.db"), "{m}");
        let m = err(r#"{"cluster":["redis://h:1"],"natMap":{"nope":{"host":"h"}}}"#);
        assert!(m.contains("ip:port"), "{m}");
        let m =
            err(r#"{"cluster":["redis://h:1"],"shardedPubSub":true,"shardedSubscribers":false}"#);
        assert!(m.contains("disagree"), "{m}");
    }

    #[test]
    fn sharded_pub_sub_and_its_alias() {
        for k in ["shardedPubSub", "shardedSubscribers"] {
            let Endpoint::Cluster(c) =
                endpoint(&format!(r#"{{"cluster":["redis://h:1"],"{k}":true}}"#)).unwrap()
            else {
                panic!("cluster expected")
            };
            assert!(c.sharded, "{k}");
        }
    }

    #[test]
    fn unhonoured_address_keys_are_refused() {
        for k in [
            "path",
            "family",
            "scaleReads",
            "redisOptions",
            "sentinel",
            "nodes",
        ] {
            let m = err(&format!(r#"{{"{k}":"x"}}"#));
            assert!(m.starts_with(&format!("redis.{k} is not supported")), "{m}");
        }
    }

    #[test]
    fn tuning_keys_are_accepted_without_warning_and_others_warned() {
        let c = EventBusConfig::from_json(
            r#"{"serviceName":"a","redis":{"maxRetriesPerRequest":3,"enableReadyCheck":true,
                "retryDelayOnClusterDown":100,"slotsRefreshTimeout":1000,"updateSentinels":true,
                "somethingElse":1}}"#,
        )
        .unwrap();
        assert_eq!(c.unknown_keys, vec!["redis.somethingElse".to_string()]);
        c.settings().unwrap();
    }
}
