//! Where the Redis connection goes: host and port or a `redis://` / `rediss://` URL, and the
//! TLS options of `redis.tls`, checked before anything connects.

use serde_json::Value;

use super::settings::Endpoint;
use super::{redact_url, RedisConfig};
use crate::error::{Error, ErrorKind, Result};

/// What `redis.tls` asks for, checked.
#[derive(Default)]
struct TlsOptions {
    /// `rejectUnauthorized`, when given.
    reject_unauthorized: Option<bool>,
    /// The `ca` PEM texts, joined, when given.
    ca: Option<Vec<u8>>,
}

/// JSON type names for messages.
pub(super) fn json_type(v: &Value) -> &'static str {
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

pub(super) fn redis_endpoint(redis: &RedisConfig) -> Result<(Endpoint, String)> {
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
