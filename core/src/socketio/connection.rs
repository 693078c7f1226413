//! The connection task: it owns the hub connection for the client's lifetime.
//!
//! A session connects (the first Engine.IO transport that works), authenticates with the
//! namespace handshake, replays every subscription and joined room, then serves commands from
//! the handle and packets from the hub until it ends. Between sessions the task backs off
//! (exponential with jitter, capped) and answers room requests with `Socket.IO not
//! connected`; a hub that refuses the token is not retried.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::engine::{Engine, Incoming};
use super::protocol::{check_ack, nsp_prefix, parse_packet, subscription_payload};
use super::{lock, AckTx, Cmd, Ctx, NOT_CONNECTED};
use crate::config::SocketIoSettings;
use crate::error::{Error, ErrorKind, Result};
use crate::state::{Link, StateEvent};
use crate::transport::reconnect::announce_attempt;

/// How a session ended.
enum End {
    /// `close()` was called.
    Closed,
    /// The hub refused the handshake (`CONNECT_ERROR`): wrong token, or a namespace
    /// middleware said no. Not retried.
    Rejected(Error),
    /// Could not connect, or the connection was lost.
    Lost(Error),
}

/// The connection task: sessions, with backoff in between, until closed.
pub(super) async fn run(
    ctx: Ctx,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    first: oneshot::Sender<std::result::Result<(), (Error, bool)>>,
) {
    let mut first = Some(first);
    let mut attempt: u64 = 0;
    let mut ever_up = false;
    loop {
        let mut went_up = false;
        let end = session(&ctx, &mut cmds, &mut first, &mut went_up, ever_up).await;
        ever_up |= went_up;
        if went_up {
            attempt = 0;
        }
        ctx.state.up.store(false, Relaxed);
        *lock(&ctx.state.transport) = None;
        let error = match end {
            End::Closed => return,
            End::Rejected(e) => {
                *lock(&ctx.state.last_error) = Some(e.message().to_string());
                ctx.logger.error(
                    "Socket.IO hub refused the connection",
                    &[("error", e.to_string())],
                );
                ctx.emitter.emit(StateEvent::Error {
                    connection: Link::Socketio,
                    message: e.to_string(),
                    code: None,
                });
                if let Some(f) = first.take() {
                    let _ = f.send(Err((e, false)));
                }
                return idle(&mut cmds).await;
            }
            End::Lost(e) => e,
        };
        *lock(&ctx.state.last_error) = Some(error.message().to_string());
        let retrying = ctx.settings.reconnection
            && ctx
                .settings
                .reconnection_attempts
                .is_none_or(|max| attempt < max);
        if went_up {
            ctx.logger.warn(
                "Socket.IO connection lost",
                &[("error", error.message().to_string())],
            );
            ctx.emitter.emit(StateEvent::Disconnected {
                connection: Link::Socketio,
                reason: error.message().to_string(),
            });
        } else {
            ctx.logger.warn(
                "Socket.IO connection failed",
                &[("error", error.message().to_string())],
            );
        }
        if let Some(f) = first.take() {
            let _ = f.send(Err((error, retrying)));
        }
        if !retrying {
            if ctx.settings.reconnection {
                let msg = format!("Socket.IO gave up reconnecting after {attempt} attempts");
                ctx.logger.error(&msg, &[]);
                ctx.emitter.emit(StateEvent::Error {
                    connection: Link::Socketio,
                    message: msg,
                    code: None,
                });
            }
            return idle(&mut cmds).await;
        }
        attempt += 1;
        let delay = backoff(&ctx.settings, attempt);
        let mut due = announce_attempt(&ctx.emitter, Link::Socketio, attempt, delay);
        loop {
            tokio::select! {
                _ = &mut due => break,
                c = cmds.recv() => if refuse(c) { return; },
            }
        }
    }
}

/// After giving up: answer every request with "not connected" until closed.
async fn idle(cmds: &mut mpsc::UnboundedReceiver<Cmd>) {
    while !refuse(cmds.recv().await) {}
}

fn backoff(s: &SocketIoSettings, attempt: u64) -> Duration {
    crate::state::reconnect_delay(s.reconnection_delay, s.reconnection_delay_max, attempt)
}

/// Open an Engine.IO session on the first transport that works.
async fn open_engine(ctx: &Ctx) -> Result<Engine> {
    let mut last = None;
    for &t in &ctx.settings.transports {
        match tokio::time::timeout(ctx.settings.timeout, Engine::open(&ctx.target, t)).await {
            Ok(Ok(e)) => return Ok(e),
            Ok(Err(e)) => {
                ctx.logger.debug(
                    &format!("Socket.IO {} transport failed", t.name()),
                    &[("error", e.to_string())],
                );
                last = Some(e);
            }
            Err(_) => {
                last = Some(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "Socket.IO {} connection to {} timed out after {} ms",
                        t.name(),
                        ctx.settings.url,
                        ctx.settings.timeout.as_millis()
                    ),
                ))
            }
        }
    }
    Err(last.unwrap_or_else(|| Error::new(ErrorKind::Config, "no Socket.IO transport configured")))
}

enum AckTarget {
    Caller(AckTx),
    Rejoin(String),
}

struct Session<'a> {
    ctx: &'a Ctx,
    engine: Engine,
    prefix: String,
    next_id: u64,
    acks: HashMap<u64, AckTarget>,
    announced: HashSet<String>,
}

impl Session<'_> {
    async fn send(&mut self, packet: String) -> Result<()> {
        self.engine
            .tx
            .send(packet)
            .await
            .map_err(|_| Error::new(ErrorKind::Connection, "Socket.IO transport closed"))
    }

    async fn emit(&mut self, event: &str, data: &Value, ack: Option<AckTarget>) -> Result<()> {
        let id = match ack {
            Some(a) => {
                // Forget acks whose callers gave up (timed out).
                self.acks.retain(|_, t| match t {
                    AckTarget::Caller(tx) => !tx.is_closed(),
                    AckTarget::Rejoin(_) => true,
                });
                self.next_id += 1;
                self.acks.insert(self.next_id, a);
                self.next_id.to_string()
            }
            None => String::new(),
        };
        let body = serde_json::to_string(&json!([event, data])).unwrap_or_default();
        let packet = format!("42{}{id}{body}", self.prefix);
        self.send(packet).await
    }

    fn on_ack(&mut self, id: u64, data: &str) {
        let Some(target) = self.acks.remove(&id) else {
            return;
        };
        let first = serde_json::from_str::<Vec<Value>>(data)
            .ok()
            .and_then(|v| v.into_iter().next())
            .unwrap_or(Value::Null);
        match target {
            AckTarget::Caller(tx) => {
                let _ = tx.send(Ok(first));
            }
            AckTarget::Rejoin(room) => {
                if let Err(e) = check_ack("join_room", &room, &first) {
                    self.ctx.logger.warn(
                        "Rejoining a room after reconnect failed",
                        &[("error", e.to_string())],
                    );
                    self.ctx.emitter.emit(StateEvent::Error {
                        connection: Link::Socketio,
                        message: e.to_string(),
                        code: None,
                    });
                }
            }
        }
    }

    fn on_event(&self, data: &str) {
        let Ok(args) = serde_json::from_str::<Vec<&RawValue>>(data) else {
            self.ctx.registry.count_invalid(
                "socket.io",
                data.as_bytes(),
                "malformed Socket.IO event packet",
            );
            return;
        };
        let name = args
            .first()
            .and_then(|n| serde_json::from_str::<&str>(n.get()).ok());
        match (name, args.get(1)) {
            (Some("event"), Some(ev)) => self.ctx.registry.dispatch_by_type(ev.get().as_bytes()),
            (Some("event"), None) => self.ctx.registry.count_invalid(
                "socket.io",
                b"",
                "Socket.IO event without an event",
            ),
            (other, _) => self.ctx.logger.debug(
                "Socket.IO event ignored",
                &[("event", other.unwrap_or("?").to_string())],
            ),
        }
    }

    /// Tell every pending caller the connection is gone.
    fn fail_acks(&mut self, why: &str) {
        for (_, t) in self.acks.drain() {
            if let AckTarget::Caller(tx) = t {
                let _ = tx.send(Err(Error::new(
                    ErrorKind::Connection,
                    format!("{NOT_CONNECTED}: {why}"),
                )));
            }
        }
    }
}

/// Answer a command that arrives while there is no session (connecting, backing off, or
/// given up). Returns true for `Close` (or when every sender is gone).
fn refuse(c: Option<Cmd>) -> bool {
    match c {
        None => true,
        Some(Cmd::Close(done)) => {
            let _ = done.send(());
            true
        }
        Some(Cmd::Emit { ack: Some(a), .. }) => {
            let _ = a.send(Err(Error::new(ErrorKind::Connection, NOT_CONNECTED)));
            false
        }
        // Subscriptions are replayed from the registry when the session starts.
        Some(_) => false,
    }
}

/// One session: connect, authenticate, replay, then serve until it ends.
async fn session(
    ctx: &Ctx,
    cmds: &mut mpsc::UnboundedReceiver<Cmd>,
    first: &mut Option<oneshot::Sender<std::result::Result<(), (Error, bool)>>>,
    went_up: &mut bool,
    reconnect: bool,
) -> End {
    let prefix = nsp_prefix(&ctx.target.namespace);
    let handshake = async {
        let engine = open_engine(ctx).await?;
        let mut s = Session {
            ctx,
            engine,
            prefix: prefix.clone(),
            next_id: 0,
            acks: HashMap::new(),
            announced: HashSet::new(),
        };
        let auth = json!({ "token": ctx.settings.auth_token, "serviceName": ctx.service_name });
        s.send(format!("40{prefix}{auth}")).await?;
        // The namespace handshake: CONNECT (accepted) or CONNECT_ERROR (refused).
        loop {
            match s.engine.rx.recv().await {
                Some(Incoming::Packet(p)) => match parse_packet(&p) {
                    Some(pk) if pk.kind == 0 && pk.nsp == ctx.target.namespace => {
                        return Ok(Ok(s));
                    }
                    Some(pk) if pk.kind == 4 => {
                        let why = serde_json::from_str::<Value>(pk.data)
                            .ok()
                            .and_then(|v| {
                                v.get("message").and_then(Value::as_str).map(str::to_string)
                            })
                            .unwrap_or_else(|| pk.data.to_string());
                        return Ok(Err(Error::new(
                            ErrorKind::Connection,
                            format!("Socket.IO connection rejected by the hub: {why}"),
                        )));
                    }
                    _ => continue,
                },
                Some(Incoming::Closed(why)) => {
                    return Err(Error::new(
                        ErrorKind::Connection,
                        format!("Socket.IO connection closed during the handshake: {why}"),
                    ))
                }
                None => {
                    return Err(Error::new(
                        ErrorKind::Connection,
                        "Socket.IO connection closed during the handshake",
                    ))
                }
            }
        }
    };
    let limit = ctx.settings.timeout;
    let handshake = tokio::time::timeout(limit, handshake);
    tokio::pin!(handshake);
    let mut s = loop {
        tokio::select! {
            r = &mut handshake => match r {
                Ok(Ok(Ok(s))) => break s,
                Ok(Ok(Err(rejected))) => return End::Rejected(rejected),
                Ok(Err(e)) => return End::Lost(e),
                Err(_) => return End::Lost(Error::new(ErrorKind::Timeout, format!(
                    "the Socket.IO hub at {} did not accept the connection within {} ms",
                    ctx.settings.url, limit.as_millis()))),
            },
            c = cmds.recv() => if refuse(c) { return End::Closed; },
        }
    };

    // Up: replay subscriptions and rooms, then report.
    *went_up = true;
    *lock(&ctx.state.transport) = Some(s.engine.transport);
    for info in ctx.registry.all().iter().map(|e| e.info()) {
        let data = subscription_payload(&info);
        if s.emit("subscribe", &data, None).await.is_err() {
            break;
        }
        s.announced.insert(info.id);
    }
    for room in ctx.state.rooms() {
        let data = json!({ "room": room });
        let _ = s
            .emit("join_room", &data, Some(AckTarget::Rejoin(room)))
            .await;
    }
    ctx.state.up.store(true, Relaxed);
    *lock(&ctx.state.last_error) = None;
    if reconnect {
        ctx.state.reconnects.fetch_add(1, Relaxed);
    }
    ctx.logger.info(
        "Connected to Socket.IO hub",
        &[
            ("url", ctx.settings.url.clone()),
            ("transport", s.engine.transport.name().to_string()),
        ],
    );
    ctx.emitter.emit(StateEvent::Connected {
        connection: Link::Socketio,
        reconnect,
    });
    if let Some(f) = first.take() {
        let _ = f.send(Ok(()));
    }

    let end = loop {
        tokio::select! {
            c = cmds.recv() => match c {
                None => break End::Closed,
                Some(Cmd::Close(done)) => {
                    let _ = s.send(format!("41{}", s.prefix)).await;
                    s.fail_acks("the client disconnected");
                    s.engine.close().await;
                    let _ = done.send(());
                    return End::Closed;
                }
                Some(Cmd::Emit { event, data, ack }) => {
                    if let Err(e) = s.emit(event, &data, ack.map(AckTarget::Caller)).await {
                        break End::Lost(e);
                    }
                }
                Some(Cmd::Subscribe { id, data }) => {
                    if s.announced.insert(id) {
                        if let Err(e) = s.emit("subscribe", &data, None).await {
                            break End::Lost(e);
                        }
                    }
                }
                Some(Cmd::Unsubscribe { id }) => {
                    if s.announced.remove(&id) {
                        let data = json!({ "subscriptionId": id });
                        if let Err(e) = s.emit("unsubscribe", &data, None).await {
                            break End::Lost(e);
                        }
                    }
                }
            },
            m = s.engine.rx.recv() => match m {
                Some(Incoming::Packet(p)) => {
                    let Some(pk) = parse_packet(&p) else { continue };
                    if pk.nsp != ctx.target.namespace {
                        continue;
                    }
                    match pk.kind {
                        2 => s.on_event(pk.data),
                        3 => if let Some(id) = pk.id { s.on_ack(id, pk.data) },
                        1 => break End::Lost(Error::new(ErrorKind::Connection,
                            "the Socket.IO hub disconnected this client")),
                        4 => break End::Lost(Error::new(ErrorKind::Connection,
                            format!("Socket.IO error from the hub: {}", pk.data))),
                        _ => {} // binary packets are not part of this protocol
                    }
                }
                Some(Incoming::Closed(why)) => break End::Lost(Error::new(ErrorKind::Connection,
                    format!("Socket.IO connection lost: {why}"))),
                None => break End::Lost(Error::new(ErrorKind::Connection,
                    "Socket.IO connection lost")),
            },
        }
    };
    ctx.state.up.store(false, Relaxed);
    let why = match &end {
        End::Lost(e) => e.message().to_string(),
        _ => "closed".to_string(),
    };
    s.fail_acks(&why);
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SioTransport;

    #[test]
    fn backoff_grows_to_the_cap() {
        let s = SocketIoSettings {
            url: "http://h".into(),
            auth_token: None,
            reconnection: true,
            reconnection_delay: Duration::from_millis(100),
            reconnection_delay_max: Duration::from_millis(1000),
            reconnection_attempts: None,
            timeout: Duration::from_secs(1),
            transports: vec![SioTransport::Websocket],
        };
        for attempt in 1..40 {
            let d = backoff(&s, attempt).as_millis() as u64;
            let exp = (100u64 << (attempt - 1).min(20)).min(1000);
            assert!(d <= 1000 && d * 2 >= exp, "attempt {attempt}: {d} ms");
        }
    }
}
