//! Connections for durable delivery (Redis Streams): commands on a key, sent to the node
//! that holds it.
//!
//! A [`Streams`] owns its connections (one per node it talked to), apart from the pub/sub
//! links: a durable reader's `XREADGROUP BLOCK` would hold up everything else on a shared
//! connection. It finds nodes with its own [`Locator`], so it follows the topology the same
//! way the links do:
//! - one server: that server;
//! - Sentinel: the master the sentinels name (checked with `ROLE`); a lost connection or a
//!   `READONLY` refusal (the node was demoted) drops the connection and the next command asks
//!   the sentinels again;
//! - Cluster: the master serving the key's slot (the key's hash tag keeps a type's stream,
//!   dead letters and dedupe keys on one slot); `MOVED`/`ASK`, a lost connection or
//!   `CLUSTERDOWN` drop the slot map and it is read again.
//!
//! A command the server refused before running it (`MOVED`, `READONLY`, ...) is sent again
//! once, to the right node. A command whose connection died before the answer is not resent
//! here: the caller decides (a persistent publish answers *outcome unknown*, a reader reads
//! again).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{FromRedisValue, PushInfo, PushKind};
use tokio::sync::mpsc;

use super::connect::is_connection_error;
use super::locate::{slot, Locator, SlotMap};
use super::refusal::refused_error;
use super::Shared;
use crate::error::{Error, ErrorKind, Result};
use crate::state::Link;

/// Commands on stream keys, each to the node that holds its key.
pub(crate) struct Streams {
    locator: Locator,
    shared: Arc<Shared>,
    /// Connections by node (`""` for the single server / the sentinels' master).
    conns: tokio::sync::Mutex<HashMap<String, Cached>>,
    slots: tokio::sync::Mutex<Option<SlotMap>>,
}

/// An open connection, with what its driver reports (a `Disconnection` when it closes).
struct Cached {
    conn: MultiplexedConnection,
    push: mpsc::UnboundedReceiver<PushInfo>,
}

impl Cached {
    /// The connection closed since it was last used (Redis went away while it was idle): a
    /// command sent on it now would fail with its outcome unknown, so it is not used again.
    fn closed(&mut self) -> bool {
        loop {
            match self.push.try_recv() {
                Ok(pi) if pi.kind == PushKind::Disconnection => return true,
                Ok(_) => {}
                Err(mpsc::error::TryRecvError::Empty) => return false,
                Err(mpsc::error::TryRecvError::Disconnected) => return true,
            }
        }
    }
}

/// Why a command failed, for the retry decision.
enum Failure {
    /// Refused before it ran, because it went to the wrong node: send again after a new look.
    Misrouted(Error),
    /// The connection died (the command may or may not have run).
    Lost(Error),
    /// Anything else: the answer.
    Other(Error),
}

impl Streams {
    /// A new set of connections for the client's endpoint (none open yet).
    pub(crate) fn new(shared: Arc<Shared>) -> Result<Streams> {
        Ok(Streams {
            locator: Locator::new(&shared.settings.endpoint, &shared.settings.display_addr)?,
            shared,
            conns: Default::default(),
            slots: Default::default(),
        })
    }

    /// The connection for `key`, opened if needed, and the node name it is cached under.
    async fn conn_for(&self, key: &str) -> Result<(String, MultiplexedConnection)> {
        let addr = match self.locator.cluster() {
            None => None,
            Some(c) => {
                let mut slots = self.slots.lock().await;
                if slots.is_none() {
                    *slots = Some(c.slot_map(&self.shared).await?);
                }
                let owner = slots
                    .as_ref()
                    .and_then(|m| m.owner(slot(key.as_bytes())).cloned());
                match owner {
                    Some(a) => Some(a),
                    None => {
                        *slots = None;
                        return Err(Error::new(
                            ErrorKind::Connection,
                            format!("no Redis Cluster master serves the slot of \"{key}\""),
                        ));
                    }
                }
            }
        };
        let node = addr.as_ref().map(|a| a.to_string()).unwrap_or_default();
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get_mut(&node) {
            if !c.closed() {
                return Ok((node, c.conn.clone()));
            }
            conns.remove(&node);
        }
        let (conn, push, _) = match (self.locator.cluster(), &addr) {
            (Some(c), Some(addr)) => c.open_node(&self.shared, Link::Subscriber, addr).await?,
            _ => self.locator.open(&self.shared, Link::Subscriber).await?,
        };
        conns.insert(
            node.clone(),
            Cached {
                conn: conn.clone(),
                push,
            },
        );
        Ok((node, conn))
    }

    /// Forget `node`'s connection (and the slot map): the next command looks again.
    async fn forget(&self, node: &str) {
        self.conns.lock().await.remove(node);
        *self.slots.lock().await = None;
    }

    async fn try_once<T: FromRedisValue>(
        &self,
        key: &str,
        cmd: &redis::Cmd,
        name: &str,
        timeout: Duration,
    ) -> std::result::Result<T, Failure> {
        let (node, mut conn) = self.conn_for(key).await.map_err(Failure::Misrouted)?;
        let r = tokio::time::timeout(timeout, cmd.query_async::<T>(&mut conn)).await;
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if is_connection_error(&e) => {
                self.forget(&node).await;
                Err(Failure::Lost(
                    Error::new(
                        ErrorKind::OutcomeUnknown,
                        format!(
                            "Redis connection lost before it answered {name} on \"{key}\": \
                             it may or may not have run"
                        ),
                    )
                    .with_source(e),
                ))
            }
            Ok(Err(e)) => {
                let code = e.code().unwrap_or("");
                if matches!(
                    code,
                    "MOVED"
                        | "ASK"
                        | "READONLY"
                        | "UNBLOCKED"
                        | "CLUSTERDOWN"
                        | "TRYAGAIN"
                        | "LOADING"
                        | "MASTERDOWN"
                ) {
                    self.forget(&node).await;
                    if code == "MOVED" || code == "ASK" {
                        self.shared
                            .stats
                            .redirects
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    return Err(Failure::Misrouted(refused_error(name, key, &e)));
                }
                Err(Failure::Other(refused_error(name, key, &e)))
            }
            Err(_) => {
                self.forget(&node).await;
                Err(Failure::Lost(Error::new(
                    ErrorKind::OutcomeUnknown,
                    format!(
                        "Redis did not answer {name} on \"{key}\" within {} ms (it may or may not have run)",
                        timeout.as_millis()
                    ),
                )))
            }
        }
    }

    /// Run `cmd` (whose key is `key`; `name` names it in errors) on the node holding `key`,
    /// waiting at most `timeout` for the answer. Sent again once, to a new look, when it was
    /// refused for going to the wrong node (or no connection could be opened).
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        key: &str,
        cmd: &redis::Cmd,
        name: &str,
        timeout: Duration,
    ) -> Result<T> {
        match self.try_once(key, cmd, name, timeout).await {
            Ok(v) => Ok(v),
            Err(Failure::Misrouted(_)) => match self.try_once(key, cmd, name, timeout).await {
                Ok(v) => Ok(v),
                Err(Failure::Misrouted(e) | Failure::Lost(e) | Failure::Other(e)) => Err(e),
            },
            Err(Failure::Lost(e) | Failure::Other(e)) => Err(e),
        }
    }

    /// Run `cmd` (not safe to repeat once it ran: XADD) on the node holding `key`, waiting
    /// until `deadline` for a connection while Redis cannot be reached, as a plain publish
    /// waits in the offline queue: it is sent once a connection opens, and fails with
    /// `TIMEOUT` (never sent) when none opens in time. Once sent, a lost connection or no
    /// answer by the deadline is *outcome unknown*, never sent again.
    pub(crate) async fn query_until<T: FromRedisValue>(
        &self,
        key: &str,
        cmd: &redis::Cmd,
        name: &str,
        deadline: tokio::time::Instant,
    ) -> Result<T> {
        let mut delay = Duration::from_millis(50);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let attempt = self.try_once(key, cmd, name, left.max(Duration::from_millis(1)));
            let last = match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(Failure::Lost(e) | Failure::Other(e))) => return Err(e),
                Ok(Err(Failure::Misrouted(e))) => e,
                // Still connecting at the deadline (try_once bounds the command itself by
                // `left`, so this is the connection that did not open in time).
                Err(_) => Error::new(
                    ErrorKind::Connection,
                    "the connection did not open in time".to_string(),
                ),
            };
            // Not run: no connection, or refused by a node that does not hold the key or is
            // not ready (MOVED, LOADING, CLUSTERDOWN...): a new look after a pause.
            let now = tokio::time::Instant::now();
            if now + delay >= deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "{name} on \"{key}\" was not sent: Redis could not be reached before \
                         the publish timeout ({})",
                        last.message()
                    ),
                ));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }

    /// Run `cmd` on the node holding `key`, sending it again while the connection is lost or
    /// misrouted, for up to `patience` (commands that are safe to repeat: XACK, XPENDING,
    /// XINFO, ...).
    pub(crate) async fn query_patiently<T: FromRedisValue>(
        &self,
        key: &str,
        cmd: &redis::Cmd,
        name: &str,
        patience: Duration,
    ) -> Result<T> {
        let deadline = tokio::time::Instant::now() + patience;
        let timeout = self
            .shared
            .settings
            .publish_timeout
            .max(Duration::from_secs(1));
        let mut delay = Duration::from_millis(50);
        loop {
            match self.try_once(key, cmd, name, timeout).await {
                Ok(v) => return Ok(v),
                Err(Failure::Other(e)) => return Err(e),
                Err(Failure::Misrouted(e) | Failure::Lost(e)) => {
                    if tokio::time::Instant::now() + delay >= deadline {
                        return Err(e);
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

impl super::RedisTransport {
    /// A new, independent set of stream connections.
    pub(crate) fn streams(&self) -> Result<Streams> {
        Streams::new(self.shared.clone())
    }
}
