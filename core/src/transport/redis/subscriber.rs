//! The subscriber task: it owns the RESP3 subscriber connection, hands every push message to
//! the registry, and reconnects forever when the connection dies.
//!
//! The registry is the source of truth for what the client is subscribed to: after any
//! reconnect the task subscribes exactly the registry's keys and checks every reply, and a
//! `sync` from the client (after subscribe/unsubscribe) reconciles the connection's set with
//! the registry. A PING heartbeat catches half-open links (no traffic and no reply), and the
//! time spent disconnected is reported as a `gap` once the link is back.

use std::collections::HashSet;
use std::sync::atomic::Ordering::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::{mpsc, oneshot, watch};

use super::backlog::Backlog;
use super::connect::{is_connection_error, Attempt, Reconnect};
use super::locate::Locator;
use super::refusal::refused_error;
use super::{LinkState, Shared};
use crate::error::{Error, ErrorKind, Result};
use crate::state::{Link, StateEvent};
use crate::subscription::Key;

/// What the handle asks of the subscriber task.
pub(super) enum SubCtl {
    Sync(oneshot::Sender<Result<()>>),
}

/// A failed (un)subscribe: the error, the command and the channels or patterns it named.
type Refused = (redis::RedisError, &'static str, String);

/// The keys subscribed on the current connection, counted in the process's backlog account
/// (what a publisher of the process may run ahead of its subscribers) while held.
struct Subscribed<'a> {
    keys: HashSet<Key>,
    backlog: &'a Backlog,
}

impl Drop for Subscribed<'_> {
    /// The connection is gone (or the task ends): it is owed nothing more.
    fn drop(&mut self) {
        self.backlog.lost(&self.keys);
    }
}

/// Subscribe/unsubscribe so the connection's set equals the registry's keys.
async fn reconcile(
    conn: &mut MultiplexedConnection,
    shared: &Shared,
    current: &mut Subscribed<'_>,
) -> std::result::Result<(), Refused> {
    let (backlog, current) = (current.backlog, &mut current.keys);
    let named = |cmd: &'static str, keys: &[&str]| {
        let keys = keys.join(", ");
        move |e| (e, cmd, keys)
    };
    let desired: HashSet<Key> = shared.registry.keys().into_iter().collect();
    let add: Vec<Key> = desired.difference(current).cloned().collect();
    let remove: Vec<Key> = current.difference(&desired).cloned().collect();
    let chans: Vec<&str> = add
        .iter()
        .filter_map(|k| match k {
            Key::Channel(c) => Some(c.as_str()),
            _ => None,
        })
        .collect();
    let pats: Vec<&str> = add
        .iter()
        .filter_map(|k| match k {
            Key::Pattern(p) => Some(p.as_str()),
            _ => None,
        })
        .collect();
    if !chans.is_empty() {
        conn.subscribe(&chans)
            .await
            .map_err(named("SUBSCRIBE", &chans))?;
    }
    if !pats.is_empty() {
        conn.psubscribe(&pats)
            .await
            .map_err(named("PSUBSCRIBE", &pats))?;
    }
    backlog.change(&add, true);
    current.extend(add);
    let rchans: Vec<&str> = remove
        .iter()
        .filter_map(|k| match k {
            Key::Channel(c) => Some(c.as_str()),
            _ => None,
        })
        .collect();
    let rpats: Vec<&str> = remove
        .iter()
        .filter_map(|k| match k {
            Key::Pattern(p) => Some(p.as_str()),
            _ => None,
        })
        .collect();
    if !rchans.is_empty() {
        conn.unsubscribe(&rchans)
            .await
            .map_err(named("UNSUBSCRIBE", &rchans))?;
    }
    if !rpats.is_empty() {
        conn.punsubscribe(&rpats)
            .await
            .map_err(named("PUNSUBSCRIBE", &rpats))?;
    }
    backlog.change(&remove, false);
    for k in remove {
        current.remove(&k);
    }
    Ok(())
}

/// The bytes of a string reply.
fn bulk(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b.as_slice()),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// A bulk string taken out of its reply (the message text is kept, not copied).
fn into_bulk(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

/// Dispatch one push message; `Some(reason)` when it says the connection is gone.
fn handle_push(shared: &Shared, backlog: &Backlog, pi: PushInfo) -> Option<String> {
    let mut data = pi.data;
    match pi.kind {
        PushKind::Message => {
            if let [ch, payload, ..] = &mut data[..] {
                let payload = into_bulk(std::mem::replace(payload, Value::Nil));
                if let (Some(ch), Some(payload)) = (bulk(ch), payload) {
                    backlog.received(payload.len());
                    let ch = String::from_utf8_lossy(ch);
                    shared.registry.dispatch(&ch, None, payload);
                }
            }
            None
        }
        PushKind::PMessage => {
            if let [pat, ch, payload, ..] = &mut data[..] {
                let payload = into_bulk(std::mem::replace(payload, Value::Nil));
                if let (Some(pat), Some(ch), Some(payload)) = (bulk(pat), bulk(ch), payload) {
                    backlog.received(payload.len());
                    let pat = String::from_utf8_lossy(pat);
                    let ch = String::from_utf8_lossy(ch);
                    shared.registry.dispatch(&ch, Some(&pat), payload);
                }
            }
            None
        }
        PushKind::Disconnection => Some(
            "connection closed by Redis (server down, CLIENT KILL, or evicted for exceeding client-output-buffer-limit pubsub)"
                .into(),
        ),
        _ => None,
    }
}

/// [`reconcile`] bounded by the connect timeout; `Err((dead, error))`, `dead` when the
/// connection is gone rather than the command refused.
async fn reconcile_timed(
    conn: &mut MultiplexedConnection,
    shared: &Shared,
    current: &mut Subscribed<'_>,
) -> std::result::Result<(), (bool, Error)> {
    match tokio::time::timeout(
        shared.settings.connect_timeout,
        reconcile(conn, shared, current),
    )
    .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err((e, _, _))) if is_connection_error(&e) => Err((
            true,
            Error::new(
                ErrorKind::Connection,
                format!("the subscriber connection failed while subscribing: {e}"),
            ),
        )),
        Ok(Err((e, cmd, keys))) => Err((false, refused_error(cmd, &keys, &e))),
        Err(_) => Err((
            true,
            Error::new(
                ErrorKind::Connection,
                "no reply to SUBSCRIBE within the connect timeout",
            ),
        )),
    }
}

/// The subscriber link's supervisor: (re)subscribe, serve push messages and sync requests
/// until the connection dies, then reconnect, until shutdown.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    locator: Arc<Locator>,
    mut conn: MultiplexedConnection,
    mut push: mpsc::UnboundedReceiver<PushInfo>,
    mut ctl: mpsc::UnboundedReceiver<SubCtl>,
    shared: Arc<Shared>,
    links: Arc<LinkState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut lost: Option<(Instant, String)> = None;
    // The last moment the link was known to deliver: an outage (and its `gap`) starts here, not
    // when it is noticed; a half-open link or a connection that stops forwarding before it
    // closes loses what is published between the two.
    let mut alive = Instant::now();
    let s = &shared.settings;
    let hb = s.heartbeat_interval.unwrap_or(Duration::from_secs(3600));
    'outer: loop {
        // ---- connected: (re)subscribe exactly the registry's keys ----
        let mut current = Subscribed {
            keys: HashSet::new(),
            backlog: &links.backlog,
        };
        let mut reason = match reconcile_timed(&mut conn, &shared, &mut current).await {
            Ok(()) => None,
            Err((_, e)) => {
                let msg = e.message();
                let message = format!("Resubscribe failed: {msg}");
                shared.logger.error(&message, &[]);
                shared.emitter.emit(StateEvent::Error {
                    connection: Link::Subscriber,
                    message,
                    code: Some(e.kind().code().to_string()),
                });
                Some(format!("resubscribe failed: {msg}"))
            }
        };
        if reason.is_none() {
            alive = Instant::now();
            links.sub_up.store(true, Release);
            if let Some((at, from)) = lost.take() {
                shared.stats.total_connections.fetch_add(1, Relaxed);
                super::announce_resubscribed(
                    &shared,
                    "Redis subscriber reconnected and resubscribed",
                    current.keys.len(),
                    at,
                    from,
                );
            }
            let mut ticker = tokio::time::interval(hb);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            let mut last_tick = Instant::now();
            // Whether anything arrived since the last tick (a flag, not a clock read per
            // message): a tick that finds none PINGs.
            let mut heard = false;
            let mut switch = links.switch.subscribe();
            reason = Some(loop {
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => break 'outer,
                    _ = switch.changed() => break "the sentinels switched the master".to_string(),
                    p = push.recv() => match p {
                        None => break "connection closed".to_string(),
                        Some(pi) => {
                            heard = true;
                            if let Some(r) = handle_push(&shared, &links.backlog, pi) {
                                break r;
                            }
                        }
                    },
                    c = ctl.recv() => match c {
                        None => break 'outer,
                        Some(SubCtl::Sync(w)) => {
                            let mut waiters = vec![w];
                            while let Ok(SubCtl::Sync(w)) = ctl.try_recv() {
                                waiters.push(w);
                            }
                            match reconcile_timed(&mut conn, &shared, &mut current).await {
                                Ok(()) => for w in waiters { let _ = w.send(Ok(())); },
                                Err((dead, e)) => {
                                    for w in waiters {
                                        let _ = w.send(Err(Error::new(e.kind(), e.message())));
                                    }
                                    if dead {
                                        break format!("subscribe failed: {}", e.message());
                                    }
                                    // Refused (ACL, ...): drop what the registry no longer has
                                    // and go on; the caller has been told.
                                }
                            }
                        }
                    },
                    _ = ticker.tick(), if s.heartbeat_interval.is_some() => {
                        let tick = Instant::now();
                        if std::mem::take(&mut heard) {
                            // Something arrived since the last tick: alive then at least.
                            alive = alive.max(last_tick);
                        } else {
                            let ping = tokio::time::timeout(
                                hb.min(Duration::from_secs(5)),
                                redis::cmd("PING").query_async::<Value>(&mut conn),
                            ).await;
                            match ping {
                                // Pushes come in order before the PONG: alive when it was sent.
                                Ok(Ok(_)) => alive = tick,
                                Ok(Err(e)) => break format!("heartbeat PING failed: {e}"),
                                Err(_) => break "heartbeat PING timed out (half-open connection)".to_string(),
                            }
                        }
                        last_tick = tick;
                    }
                }
            });
        }
        // ---- disconnected ----
        links.sub_up.store(false, Release);
        drop(current);
        let reason = reason.unwrap_or_default();
        if lost.is_none() {
            // Without a heartbeat nothing tells when the link stopped delivering: from now.
            let since = if s.heartbeat_interval.is_some() {
                alive
            } else {
                Instant::now()
            };
            lost = Some((since, crate::event::iso_of(since)));
        }
        shared.logger.warn(
            "Redis subscriber connection lost",
            &[("reason", reason.clone())],
        );
        shared.emitter.emit(StateEvent::Disconnected {
            connection: Link::Subscriber,
            reason,
        });
        drop(conn);
        let mut retry = Reconnect::new(Link::Subscriber);
        loop {
            let mut due = retry.announce(&shared);
            loop {
                tokio::select! {
                    _ = &mut due => break,
                    c = ctl.recv() => match c {
                        // Offline: the registry already holds the change; resubscribe applies it.
                        Some(SubCtl::Sync(w)) => { let _ = w.send(Ok(())); }
                        None => break 'outer,
                    },
                    _ = shutdown.changed() => break 'outer,
                }
            }
            match retry.connect(&locator, &shared, &mut shutdown).await {
                Attempt::Up((c, p, _)) => {
                    conn = c;
                    push = p;
                    continue 'outer;
                }
                Attempt::Failed => {}
                Attempt::Shutdown => break 'outer,
            }
        }
    }
    links.sub_up.store(false, Release);
    // Answer anyone still waiting.
    ctl.close();
    while let Ok(SubCtl::Sync(w)) = ctl.try_recv() {
        let _ = w.send(Err(Error::closed()));
    }
}
