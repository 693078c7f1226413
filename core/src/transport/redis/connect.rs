//! Opening a Redis connection, and what happens when that fails.
//!
//! Both links connect the same way: RESP3 (the subscriber needs push messages), a connect
//! timeout, and `CLIENT SETNAME <service>:pub|sub` so an operator can tell the links apart in
//! `CLIENT LIST`. While a link is down its supervisor retries forever with [`backoff`]; the
//! attempts of one outage are counted and their failures reported by [`Reconnect`], and a TLS certificate
//! the client does not trust is explained in plain words ([`explain_untrusted_certificate`]).

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushInfo};
use tokio::sync::{mpsc, watch};
use tokio::time::Sleep;

use super::direct::DirectLink;
use super::locate::Locator;
use super::Shared;
use crate::error::{Error, ErrorKind, Result};
use crate::state::{Link, StateEvent};
use crate::transport::reconnect::announce_attempt;

/// The client for `info`, speaking RESP3.
pub(super) fn client(info: redis::ConnectionInfo) -> Result<redis::Client> {
    let rs = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    let info = info.set_redis_settings(rs);
    redis::Client::open(info).map_err(|e| {
        Error::new(ErrorKind::Config, "invalid Redis connection settings").with_source(e)
    })
}

pub(super) fn conn_name(service: &str, suffix: &str) -> String {
    // CLIENT SETNAME refuses spaces and newlines.
    let clean: String = service
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    format!("{clean}:{suffix}")
}

/// A failure that means the connection is gone (as opposed to Redis refusing a command).
pub(super) fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() || e.is_timeout()
}

/// An open connection: the redis crate's handle, its push messages, and for a publisher
/// connection over plain TCP the socket a lone publish may be written on directly.
pub(super) type Opened = (
    MultiplexedConnection,
    mpsc::UnboundedReceiver<PushInfo>,
    Option<Arc<DirectLink>>,
);

/// Dial the redis crate's connection for `client` with `cfg`. A publisher connection over plain
/// TCP is dialled here instead, its socket shared with direct publishes ([`DirectLink`]): the
/// redis crate then does the same handshake over it.
async fn dial(
    client: &redis::Client,
    cfg: &AsyncConnectionConfig,
    direct: bool,
) -> redis::RedisResult<(MultiplexedConnection, Option<Arc<DirectLink>>)> {
    let info = client.get_connection_info();
    if let (true, redis::ConnectionAddr::Tcp(host, port)) = (direct, info.addr()) {
        // Nagle's algorithm stays on, as the redis crate leaves it: a lone publish finds
        // nothing unacknowledged and goes out at once, and bursts coalesce.
        let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
        let (direct, stream) = DirectLink::new(stream);
        let (conn, driver) =
            MultiplexedConnection::new_with_config(info.redis_settings(), stream, cfg.clone())
                .await?;
        // Ends once every handle of the connection is dropped.
        tokio::spawn(driver);
        return Ok((conn, Some(direct)));
    }
    let conn = client
        .get_multiplexed_async_connection_with_config(cfg)
        .await?;
    Ok((conn, None))
}

/// Open one link's connection to `client`'s server (`display` names it in messages): its push
/// messages arrive on the returned receiver. `direct`: the publisher connection of a client
/// (not sharded), whose lone publishes may be written on its socket directly.
pub(super) async fn open_conn(
    client: &redis::Client,
    display: &str,
    shared: &Shared,
    link: Link,
    direct: bool,
) -> Result<Opened> {
    let s = &shared.settings;
    let (tx, rx) = mpsc::unbounded_channel();
    let cfg = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(s.connect_timeout))
        .set_response_timeout(None)
        .set_push_sender(tx);
    let timed_out = || {
        Error::new(
            ErrorKind::Connection,
            format!(
                "Failed to connect to Redis at {display}: timed out after {} ms",
                s.connect_timeout.as_millis()
            ),
        )
    };
    let suffix = match link {
        Link::Publisher => "pub",
        _ => "sub",
    };
    let handshake = async {
        let (mut conn, direct) = dial(client, &cfg, direct).await?;
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(conn_name(&s.service_name, suffix))
            .query_async::<()>(&mut conn)
            .await?;
        Ok::<_, redis::RedisError>((conn, direct))
    };
    // The connect timeout bounds the dial and the handshake; SETNAME answers at once.
    let conn = match tokio::time::timeout(s.connect_timeout + Duration::from_millis(100), handshake)
        .await
    {
        Err(_) => return Err(timed_out()),
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return Err(connect_failed(client, display, s.connect_timeout, e).await),
    };
    Ok((conn.0, rx, conn.1))
}

/// What a server that refuses a new client at once says, in its own words (the reply Redis
/// writes before closing when `maxclients` is reached).
const MAXCLIENTS: &str = "max number of clients reached";

/// The connection error for a failed dial or handshake to `display`. A server that closes the
/// connection as soon as it is opened (Redis at `maxclients`) writes its reason first, but
/// when the client's first command crosses that close the kernel answers with a reset and the
/// reason is lost: then a second connection, which sends nothing, reads what the server says
/// to a new client ([`server_greeting`]), and the error names that reason.
async fn connect_failed(
    client: &redis::Client,
    display: &str,
    connect_timeout: Duration,
    e: redis::RedisError,
) -> Error {
    let base = format!("Failed to connect to Redis at {display}");
    let said = if e.to_string().contains(MAXCLIENTS) {
        Some(format!("ERR {MAXCLIENTS}"))
    } else if (e.is_io_error() || e.is_connection_dropped())
        && !e.is_connection_refusal()
        && !e.is_timeout()
    {
        server_greeting(client, connect_timeout.min(GREETING_WAIT)).await
    } else {
        None
    };
    let message = match said {
        Some(said) if said.contains(MAXCLIENTS) => format!(
            "{base}: the server refused a new client: {MAXCLIENTS} (the server's `maxclients` \
             limit; connecting succeeds once another connection to it closes)"
        ),
        Some(said) => format!("{base}: the server closed the connection at once, saying: {said}"),
        None => base,
    };
    Error::new(ErrorKind::Connection, message).with_source(e)
}

/// How long [`server_greeting`] waits for a server to speak first. A server that refuses a new
/// client writes its reason as soon as it accepts; one that accepts says nothing, and then this
/// is the time lost on an error path that has already failed.
const GREETING_WAIT: Duration = Duration::from_millis(1000);

/// The error line a server writes to a new connection before any command (`-ERR ...`), read
/// on a connection of its own that sends nothing; `None` when the server says nothing within
/// `wait`, closes without a word, or is not reachable over plain TCP or a Unix socket (a TLS
/// server would need a handshake first: not probed).
async fn server_greeting(client: &redis::Client, wait: Duration) -> Option<String> {
    use tokio::io::{AsyncRead, AsyncReadExt};
    async fn first_line(mut s: impl AsyncRead + Unpin) -> Option<String> {
        let mut buf = Vec::with_capacity(128);
        let mut chunk = [0u8; 128];
        while !buf.ends_with(b"\r\n") && buf.len() < 512 {
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let text = String::from_utf8_lossy(&buf);
        let line = text.lines().next()?.strip_prefix('-')?.trim();
        (!line.is_empty()).then(|| line.to_string())
    }
    let read = async {
        match client.get_connection_info().addr() {
            redis::ConnectionAddr::Tcp(host, port) => {
                first_line(
                    tokio::net::TcpStream::connect((host.as_str(), *port))
                        .await
                        .ok()?,
                )
                .await
            }
            #[cfg(unix)]
            redis::ConnectionAddr::Unix(path) => {
                first_line(tokio::net::UnixStream::connect(path).await.ok()?).await
            }
            _ => None,
        }
    };
    tokio::time::timeout(wait, read).await.ok().flatten()
}

/// How long to wait before reconnect attempt `attempt` (1-based).
fn backoff(settings: &crate::config::Settings, attempt: u64) -> Duration {
    crate::state::reconnect_delay(
        settings.reconnect_delay,
        settings.reconnect_delay_max,
        attempt,
    )
}

/// How often a reconnect that keeps failing for the same reason is reported again.
const REPEAT_FAILURE_REPORT: Duration = Duration::from_secs(60);

/// How one reconnect attempt went.
pub(super) enum Attempt {
    /// Connected again: the new connection, its push messages and its direct socket.
    Up(Opened),
    /// Failed (and reported); the next attempt follows its backoff.
    Failed,
    /// Shutdown came first.
    Shutdown,
}

/// The reconnect attempts of one outage of one link, counted from 1: each waits out its
/// [`backoff`] ([`Reconnect::announce`]) and then connects ([`Reconnect::connect`]). Each failure
/// is logged, at warn for the first one, when the reason changes and at most once a minute
/// otherwise (debug in between), and those are also emitted as `error` state events: an
/// outage that lasts says why (a rotated password, a certificate no longer trusted) without
/// flooding the log.
pub(super) struct Reconnect {
    link: Link,
    attempt: u64,
    last: Option<(Instant, String)>,
}

impl Reconnect {
    pub(super) fn new(link: Link) -> Self {
        Reconnect {
            link,
            attempt: 0,
            last: None,
        }
    }

    /// Count the next attempt and announce it; see [`announce_attempt`].
    pub(super) fn announce(&mut self, shared: &Shared) -> Pin<Box<Sleep>> {
        self.attempt += 1;
        let delay = backoff(&shared.settings, self.attempt);
        announce_attempt(&shared.emitter, self.link, self.attempt, delay)
    }

    /// Make the attempt, unless shutdown comes first; a failure is reported.
    pub(super) async fn connect(
        &mut self,
        locator: &Locator,
        shared: &Shared,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Attempt {
        let r = tokio::select! {
            r = locator.open(shared, self.link) => r,
            _ = shutdown.changed() => return Attempt::Shutdown,
        };
        match r {
            Ok(opened) => Attempt::Up(opened),
            Err(e) => {
                self.failed(shared, e);
                Attempt::Failed
            }
        }
    }

    fn failed(&mut self, shared: &Shared, e: Error) {
        let attempt = self.attempt;
        let message = explain_untrusted_certificate(e).to_string();
        let what = match self.link {
            Link::Publisher => "Redis publisher reconnect failed",
            _ => "Redis subscriber reconnect failed",
        };
        let fields = [("attempt", attempt.to_string()), ("error", message.clone())];
        let report = match &self.last {
            None => true,
            Some((at, said)) => *said != message || at.elapsed() >= REPEAT_FAILURE_REPORT,
        };
        if !report {
            return shared.logger.debug(what, &fields);
        }
        shared.logger.warn(what, &fields);
        shared.emitter.emit(StateEvent::Error {
            connection: self.link,
            message: format!("{what} (attempt {attempt}): {message}"),
            code: None,
        });
        self.last = Some((Instant::now(), message));
    }
}

/// A connection error when the server's TLS certificate failed verification (on `connect()`
/// and in the reconnect reports), said in plain words with what to do (rustls alone says
/// `invalid peer certificate: UnknownIssuer`); the redis error stays the cause. Other errors
/// pass through.
pub(super) fn explain_untrusted_certificate(e: Error) -> Error {
    let cause = std::error::Error::source(&e)
        .and_then(|s| s.downcast_ref::<redis::RedisError>())
        .cloned();
    let Some(cause) = cause.filter(|c| c.to_string().contains("invalid peer certificate")) else {
        return e;
    };
    let text = cause.to_string();
    let why = if text.contains("UnknownIssuer") || text.contains("BadSignature") {
        " (no CA this client trusts signed it: set redis.tls.ca to the PEM of the CA that did)"
    } else if text.contains("NotValidForName") || text.contains("not valid for name") {
        " (it is not issued for this host name)"
    } else if text.contains("Expired") || text.contains("expired") {
        " (it has expired)"
    } else {
        ""
    };
    Error::new(
        e.kind(),
        format!(
            "{}: the server's TLS certificate is not trusted{why}",
            e.message()
        ),
    )
    .with_source(cause)
}
