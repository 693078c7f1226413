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
    /// Read the Redis password from this environment variable
    #[arg(long, global = true, value_name = "VAR")]
    pub password_env: Option<String>,
    /// Redis ACL user name
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
        let has_endpoint = ["url", "host", "cluster", "sentinels"]
            .iter()
            .any(|k| redis.contains_key(*k));
        let in_argv = |u: &str| std::env::args().any(|a| a.contains(u));
        match &self.url {
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
        if let Some(u) = &self.redis_user {
            redis.insert("username".into(), Value::String(u.clone()));
        }
        Ok(Value::Object(cfg).to_string())
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

#[cfg(test)]
mod tests {
    use super::url_has_password;

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
