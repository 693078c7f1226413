//! Connection flags, shared by every command: the configuration they build and the connect.

use std::path::PathBuf;

use clap::Args;
use event_bus::{EventBusClient, EventBusConfig};
use serde_json::{json, Map, Value};

use crate::{exit, CliError, CliResult};

/// Where no flag, variable or configuration says otherwise.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

#[derive(Args, Debug)]
pub struct ConnArgs {
    /// Redis URL [default: redis://127.0.0.1:6379]. A password in it is accepted but warned
    /// about: use --password-env.
    #[arg(long, env = "REDIS_URL", global = true, value_name = "URL")]
    pub url: Option<String>,
    /// A Redis Cluster: seed nodes (the topology is read from them)
    #[arg(
        long,
        global = true,
        value_name = "HOST:PORT,...",
        value_delimiter = ',',
        conflicts_with = "sentinels"
    )]
    pub cluster: Vec<String>,
    /// A master managed by Redis Sentinel: the sentinels, asked in order (port default 26379)
    #[arg(
        long,
        global = true,
        value_name = "HOST:PORT,...",
        value_delimiter = ',',
        requires = "name"
    )]
    pub sentinels: Vec<String>,
    /// With --sentinels: the master's name as the sentinels know it
    #[arg(long, global = true, value_name = "MASTER", requires = "sentinels")]
    pub name: Option<String>,
    /// TLS, verifying the server with the CA certificate(s) of this PEM file
    #[arg(long, global = true, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Read the Redis password from this environment variable
    #[arg(
        long,
        global = true,
        value_name = "VAR",
        conflicts_with = "ask_password"
    )]
    pub password_env: Option<String>,
    /// Ask for the Redis password on the terminal (read without echo)
    #[arg(long, global = true)]
    pub ask_password: bool,
    /// Redis ACL user name. (Not `--user`: `publish --user` names the user whose room an
    /// event goes to.)
    #[arg(long, global = true, value_name = "NAME")]
    pub redis_user: Option<String>,
    /// The libraries' JSON configuration (serviceName, redis: url/cluster/sentinels/tls...)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// serviceName of the CLI's client (when --config does not set one)
    #[arg(
        long,
        global = true,
        default_value = "event-bus-cli",
        value_name = "NAME"
    )]
    pub service: String,
    /// Print the library's log lines at this level and above on stderr (debug|info|warn|error)
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
}

/// `host:port` (or `host`, or `:port`) as the configuration's `{host, port}`.
fn node(s: &str, default_port: u16, flag: &str) -> CliResult<Value> {
    let s = s.trim();
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok().filter(|p| *p > 0)),
        None => (s, Some(default_port)),
    };
    let Some(port) = port else {
        return Err(CliError::new(
            exit::USAGE,
            format!("{flag}: \"{s}\" is not HOST:PORT (the port must be 1..65535)"),
        ));
    };
    let host = if host.is_empty() { "127.0.0.1" } else { host };
    Ok(json!({ "host": host, "port": port }))
}

/// True when `url` has a password in its user-info part (`redis://:pw@h`, `redis://u:pw@h`).
pub fn url_has_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    match authority.rsplit_once('@') {
        Some((userinfo, _)) => userinfo
            .split_once(':')
            .is_some_and(|(_, pw)| !pw.is_empty()),
        None => false,
    }
}

impl ConnArgs {
    /// The configuration JSON: `--config` (or a new one), with the flags applied.
    pub fn config_json(&self) -> CliResult<String> {
        let mut cfg: Map<String, Value> = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    CliError::new(
                        exit::BAD_INPUT,
                        format!("cannot read --config {}: {e}", path.display()),
                    )
                })?;
                match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(m)) => m,
                    Ok(_) => {
                        return Err(CliError::new(
                            exit::BAD_INPUT,
                            format!(
                                "--config {}: the configuration must be a JSON object",
                                path.display()
                            ),
                        ))
                    }
                    Err(e) => {
                        return Err(CliError::new(
                            exit::BAD_INPUT,
                            format!("--config {} is not valid JSON: {e}", path.display()),
                        ))
                    }
                }
            }
            None => Map::new(),
        };
        cfg.entry("serviceName")
            .or_insert_with(|| Value::String(self.service.clone()));
        match &self.log_level {
            Some(l) => {
                cfg.insert("logLevel".into(), Value::String(l.clone()));
            }
            None => {
                cfg.entry("logLevel").or_insert_with(|| json!("warn"));
            }
        }
        let memory = cfg.get("transport").and_then(Value::as_str) == Some("memory");
        let redis = cfg.entry("redis").or_insert_with(|| json!({}));
        let Value::Object(redis) = redis else {
            return Err(CliError::new(
                exit::BAD_INPUT,
                "--config: `redis` must be an object",
            ));
        };
        if !self.cluster.is_empty() || !self.sentinels.is_empty() {
            // The flags say where: what --config said about it goes.
            for k in ["url", "host", "port", "cluster", "sentinels", "name"] {
                redis.remove(k);
            }
        }
        if !self.cluster.is_empty() {
            let nodes = self
                .cluster
                .iter()
                .map(|n| node(n, 6379, "--cluster"))
                .collect::<CliResult<Vec<_>>>()?;
            redis.insert("cluster".into(), Value::Array(nodes));
        }
        if !self.sentinels.is_empty() {
            let nodes = self
                .sentinels
                .iter()
                .map(|n| node(n, 26379, "--sentinels"))
                .collect::<CliResult<Vec<_>>>()?;
            redis.insert("sentinels".into(), Value::Array(nodes));
            if let Some(n) = &self.name {
                redis.insert("name".into(), json!(n));
            }
        }
        if let Some(path) = &self.tls_ca {
            let pem = std::fs::read_to_string(path).map_err(|e| {
                CliError::new(
                    exit::BAD_INPUT,
                    format!("cannot read --tls-ca {}: {e}", path.display()),
                )
            })?;
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(CliError::new(
                    exit::BAD_INPUT,
                    format!(
                        "--tls-ca {}: no PEM certificate in the file",
                        path.display()
                    ),
                ));
            }
            redis.insert("tls".into(), json!({ "ca": pem }));
        }
        let has_endpoint = ["url", "host", "cluster", "sentinels"]
            .iter()
            .any(|k| redis.contains_key(*k));
        let in_argv = |u: &str| std::env::args().any(|a| a.contains(u));
        let placed = !self.cluster.is_empty() || !self.sentinels.is_empty();
        match &self.url {
            // REDIS_URL in the environment gives way to --cluster/--sentinels; --url does not.
            Some(u) if placed => {
                if std::env::args().any(|a| a == "--url" || a.starts_with("--url=")) {
                    return Err(CliError::new(
                        exit::USAGE,
                        "--url cannot be combined with --cluster or --sentinels: each says where Redis is",
                    ));
                }
                let _ = u;
            }
            Some(u) => {
                if url_has_password(u) && in_argv(u) {
                    eprintln!(
                        "event-bus: warning: the password in --url is visible to other users of \
                         this machine (ps, /proc); pass it with --password-env VAR instead"
                    );
                }
                redis.insert("url".into(), Value::String(u.clone()));
            }
            None if !has_endpoint && !memory => {
                redis.insert("url".into(), json!(DEFAULT_URL));
            }
            None => {}
        }
        if let Some(var) = &self.password_env {
            let pw = std::env::var(var).map_err(|_| {
                CliError::new(
                    exit::BAD_INPUT,
                    format!("--password-env {var}: the variable is not set (or not valid UTF-8)"),
                )
            })?;
            redis.insert("password".into(), Value::String(pw));
        }
        if self.ask_password {
            let pw = rpassword::prompt_password("Redis password: ").map_err(|e| {
                CliError::new(
                    exit::BAD_INPUT,
                    format!("--ask-password: cannot read a password from the terminal: {e}"),
                )
            })?;
            redis.insert("password".into(), Value::String(pw));
        }
        if let Some(u) = &self.redis_user {
            redis.insert("username".into(), Value::String(u.clone()));
        }
        Ok(Value::Object(cfg).to_string())
    }

    /// The configuration JSON with every secret replaced by `"<redacted>"` (what `event-bus
    /// config` prints).
    pub fn redacted_config(&self) -> CliResult<Value> {
        let mut v: Value = serde_json::from_str(&self.config_json()?).expect("we wrote it");
        if let Some(r) = v.get_mut("redis").and_then(Value::as_object_mut) {
            for k in ["password", "sentinelPassword"] {
                if r.contains_key(k) {
                    r.insert(k.into(), json!("<redacted>"));
                }
            }
            if let Some(Value::String(u)) = r.get("url") {
                if url_has_password(u) {
                    let red = redact_url(u);
                    r.insert("url".into(), Value::String(red));
                }
            }
        }
        Ok(v)
    }

    /// A client from the flags, not connected.
    pub fn client(&self) -> CliResult<EventBusClient> {
        if self.log_level.is_some() {
            event_bus::logging::install_stderr(false);
        }
        let text = self.config_json()?;
        let cfg = EventBusConfig::from_json(&text)
            .map_err(|e| CliError::new(exit::BAD_INPUT, format!("bad configuration: {e}")))?;
        EventBusClient::new(cfg)
            .map_err(|e| CliError::new(exit::BAD_INPUT, format!("bad configuration: {e}")))
    }

    /// A connected client; an unreachable Redis is [`exit::UNREACHABLE`] with the address.
    pub async fn connect(&self) -> CliResult<EventBusClient> {
        let bus = self.client()?;
        bus.connect().await.map_err(|e| {
            let msg = e.to_string();
            let addr = &bus.settings().display_addr;
            CliError::new(
                exit::UNREACHABLE,
                if msg.contains(addr.as_str()) {
                    msg
                } else {
                    format!("cannot connect to Redis at {addr}: {msg}")
                },
            )
        })?;
        Ok(bus)
    }
}

/// `url` with the password of its user-info replaced by `<redacted>`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:<redacted>@{host}{tail}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{node, redact_url, url_has_password};

    #[test]
    fn nodes_and_redaction() {
        assert_eq!(
            node("10.0.0.1:7000", 6379, "--cluster").unwrap()["port"],
            7000
        );
        assert_eq!(node("h", 26379, "--sentinels").unwrap()["port"], 26379);
        assert_eq!(
            node(":7001", 6379, "--cluster").unwrap()["host"],
            "127.0.0.1"
        );
        assert!(node("h:x", 6379, "--cluster").is_err());
        assert!(node("h:0", 6379, "--cluster").is_err());
        assert_eq!(
            redact_url("redis://u:pw@h:1/0"),
            "redis://u:<redacted>@h:1/0"
        );
        assert_eq!(redact_url("redis://:pw@h"), "redis://:<redacted>@h");
    }

    #[test]
    fn passwords_in_urls() {
        assert!(url_has_password("redis://:pw@h:6379"));
        assert!(url_has_password("rediss://user:pw@h:6379/0"));
        assert!(!url_has_password("redis://user@h:6379"));
        assert!(!url_has_password("redis://h:6379"));
        assert!(!url_has_password("redis://h:6379/0?x=a:b@c"));
        assert!(!url_has_password("memory://x"));
    }
}
