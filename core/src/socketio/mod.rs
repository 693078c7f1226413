//! Rooms over a Socket.IO hub, the protocol of the TS package (SPEC §4 "Rooms").
//!
//! With `client` in the config, `connect()` also opens a Socket.IO connection (Socket.IO v5 on
//! Engine.IO v4, see [`engine`]) that authenticates with `auth: {token, serviceName}`. Over it:
//! `subscribe {pattern, filter, options, subscriptionId}` for every subscription (again after
//! every reconnect), `unsubscribe {subscriptionId}`, `join_room {room}` / `leave_room {room}` /
//! `get_room_members {room}` with acks, and incoming `event` packets carrying an event that is
//! dispatched to the subscriptions whose pattern matches its type. Joined rooms are rejoined
//! after a reconnect.
//!
//! One task owns the connection: it connects, answers commands, reconnects with backoff and
//! replays subscriptions and rooms. Callers talk to it through a command channel.

pub(crate) mod engine;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::{SioTransport, SocketIoSettings};
use crate::error::{Error, ErrorKind, Result};
use crate::logging::Logger;
use crate::state::{Emitter, Link, StateEvent};
use crate::subscription::Registry;
use engine::{Engine, Incoming, Target};

/// The message every room call fails with while there is no hub connection.
pub(crate) const NOT_CONNECTED: &str = "Socket.IO not connected";

/// What the rest of the client can see of the connection.
#[derive(Default)]
pub(crate) struct SioState {
    up: AtomicBool,
    rooms: Mutex<BTreeSet<String>>,
    transport: Mutex<Option<SioTransport>>,
    last_error: Mutex<Option<String>>,
    reconnects: AtomicU64,
}

impl SioState {
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Relaxed)
    }
    pub(crate) fn rooms(&self) -> Vec<String> {
        lock(&self.rooms).iter().cloned().collect()
    }
    pub(crate) fn transport(&self) -> Option<SioTransport> {
        *lock(&self.transport)
    }
    pub(crate) fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }
    pub(crate) fn reconnects(&self) -> u64 {
        self.reconnects.load(Relaxed)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

type AckTx = oneshot::Sender<Result<Value>>;

enum Cmd {
    /// Emit an event, optionally waiting for the hub's ack.
    Emit {
        event: &'static str,
        data: Value,
        ack: Option<AckTx>,
    },
    /// A new subscription: announce it (once per session).
    Subscribe { id: String, data: Value },
    /// A removed subscription.
    Unsubscribe { id: String },
    /// Disconnect and end the task.
    Close(oneshot::Sender<()>),
}

/// Everything the connection task needs.
struct Ctx {
    settings: SocketIoSettings,
    target: Target,
    service_name: String,
    registry: Arc<Registry>,
    emitter: Arc<Emitter>,
    logger: Logger,
    state: Arc<SioState>,
}

/// The Socket.IO side of one client.
pub(crate) struct SocketIo {
    cmd: mpsc::UnboundedSender<Cmd>,
    state: Arc<SioState>,
    timeout: Duration,
    task: Mutex<Option<JoinHandle<()>>>,
}

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

impl SocketIo {
    /// Start the connection task and wait for its first attempt (bounded by `client.timeout`).
    ///
    /// A hub that refuses the token fails this call. A hub that cannot be reached fails it
    /// only when `client.reconnection` is false; otherwise the task keeps trying in the
    /// background (health reports it, room calls fail with `Socket.IO not connected`).
    pub(crate) async fn start(
        settings: SocketIoSettings,
        service_name: String,
        registry: Arc<Registry>,
        emitter: Arc<Emitter>,
        logger: Logger,
    ) -> Result<SocketIo> {
        let target = Target::parse(&settings.url)?;
        let state = Arc::new(SioState::default());
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (first_tx, first_rx) = oneshot::channel();
        let timeout = settings.timeout;
        let ctx = Ctx {
            settings,
            target,
            service_name,
            registry,
            emitter,
            logger,
            state: state.clone(),
        };
        let task = crate::runtime::spawn(run(ctx, cmd_rx, first_tx));
        let sio = SocketIo {
            cmd: cmd_tx,
            state,
            timeout,
            task: Mutex::new(Some(task)),
        };
        match first_rx.await {
            Ok(Ok(())) => Ok(sio),
            Ok(Err((e, retrying))) => {
                if retrying {
                    Ok(sio)
                } else {
                    sio.close().await;
                    Err(e)
                }
            }
            Err(_) => Err(Error::new(
                ErrorKind::Internal,
                "Socket.IO connection task ended before its first attempt",
            )),
        }
    }

    pub(crate) fn state(&self) -> &SioState {
        &self.state
    }

    /// Disconnect from the hub and end the task.
    pub(crate) async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Cmd::Close(tx)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), rx).await;
        }
        let task = lock(&self.task).take();
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
    }

    /// Announce a subscription to the hub (now if connected, else on the next connect).
    pub(crate) fn subscribed(&self, id: &str, data: Value) {
        let _ = self.cmd.send(Cmd::Subscribe {
            id: id.to_string(),
            data,
        });
    }

    /// Tell the hub a subscription is gone.
    pub(crate) fn unsubscribed(&self, id: &str) {
        let _ = self.cmd.send(Cmd::Unsubscribe { id: id.to_string() });
    }

    /// Emit `event` with `data` and wait for the hub's ack (its first argument).
    async fn request(&self, event: &'static str, data: Value) -> Result<Value> {
        if !self.state.is_up() {
            return Err(Error::new(ErrorKind::Connection, NOT_CONNECTED));
        }
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Emit {
                event,
                data,
                ack: Some(tx),
            })
            .map_err(|_| Error::new(ErrorKind::Connection, NOT_CONNECTED))?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::new(ErrorKind::Connection, NOT_CONNECTED)),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "the Socket.IO hub did not acknowledge {event} within {} ms",
                    self.timeout.as_millis()
                ),
            )),
        }
    }

    /// `join_room {room}`; remembered for rejoining after a reconnect.
    pub(crate) async fn join_room(&self, room: &str) -> Result<()> {
        let ack = self.request("join_room", json!({ "room": room })).await?;
        check_ack("join_room", room, &ack)?;
        lock(&self.state.rooms).insert(room.to_string());
        Ok(())
    }

    /// `leave_room {room}`.
    pub(crate) async fn leave_room(&self, room: &str) -> Result<()> {
        let ack = self.request("leave_room", json!({ "room": room })).await?;
        check_ack("leave_room", room, &ack)?;
        lock(&self.state.rooms).remove(room);
        Ok(())
    }

    /// `get_room_members {room}` -> the ack's `members`.
    pub(crate) async fn get_room_members(&self, room: &str) -> Result<Vec<String>> {
        let ack = self
            .request("get_room_members", json!({ "room": room }))
            .await?;
        check_ack("get_room_members", room, &ack)?;
        let members = ack
            .get("members")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Protocol,
                    format!(
                        "the Socket.IO hub answered get_room_members without a members list: {ack}"
                    ),
                )
            })?;
        Ok(members
            .iter()
            .map(|m| match m {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect())
    }
}

impl Drop for SocketIo {
    fn drop(&mut self) {
        if let Some(t) = lock(&self.task).take() {
            t.abort();
        }
    }
}

/// An ack `{success: false, error}` becomes an error naming the request.
fn check_ack(event: &str, room: &str, ack: &Value) -> Result<()> {
    match ack.get("success").and_then(Value::as_bool) {
        Some(true) => Ok(()),
        Some(false) => {
            let why = match ack.get("error") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Object(o)) => o
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| Value::Object(o.clone()).to_string()),
                Some(v) if !v.is_null() => v.to_string(),
                _ => "no reason given".to_string(),
            };
            Err(Error::new(
                ErrorKind::Protocol,
                format!("the Socket.IO hub refused {event} for room \"{room}\": {why}"),
            ))
        }
        None => Err(Error::new(
            ErrorKind::Protocol,
            format!("the Socket.IO hub answered {event} with an unexpected ack: {ack}"),
        )),
    }
}

/// A Socket.IO packet: `<type>[<attachments>-][<nsp>,][<ack id>][<json>]`.
struct Packet<'a> {
    kind: u8,
    nsp: &'a str,
    id: Option<u64>,
    data: &'a str,
}

fn parse_packet(p: &str) -> Option<Packet<'_>> {
    let kind = p.as_bytes().first()?.checked_sub(b'0')?;
    let mut rest = &p[1..];
    let mut nsp = "/";
    if rest.starts_with('/') {
        let end = rest.find(',').unwrap_or(rest.len());
        nsp = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or("");
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = if digits > 0 {
        rest[..digits].parse().ok()
    } else {
        None
    };
    Some(Packet {
        kind,
        nsp,
        id,
        data: &rest[digits..],
    })
}

fn nsp_prefix(ns: &str) -> String {
    if ns == "/" {
        String::new()
    } else {
        format!("{ns},")
    }
}

/// The connection task: sessions, with backoff in between, until closed.
async fn run(
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
                });
            }
            return idle(&mut cmds).await;
        }
        attempt += 1;
        let delay = backoff(&ctx.settings, attempt);
        ctx.emitter.emit(StateEvent::Reconnecting {
            connection: Link::Socketio,
            attempt,
            delay: delay.as_millis() as u64,
        });
        let wake = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => break,
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

fn subscribe_payload(id: &str, pattern: &str, options: &crate::SubscriptionOptions) -> Value {
    json!({
        "pattern": pattern,
        "filter": options.filter,
        "options": options,
        "subscriptionId": id,
    })
}

pub(crate) fn subscription_payload(info: &crate::SubscriptionInfo) -> Value {
    subscribe_payload(&info.id, &info.pattern, &info.options)
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

    #[test]
    fn parses_socketio_packets() {
        let p = parse_packet(r#"2["event",{"a":1}]"#).unwrap();
        assert_eq!(
            (p.kind, p.nsp, p.id, p.data),
            (2, "/", None, r#"["event",{"a":1}]"#)
        );
        let p = parse_packet(r#"312[{"success":true}]"#).unwrap();
        assert_eq!(
            (p.kind, p.id, p.data),
            (3, Some(12), r#"[{"success":true}]"#)
        );
        let p = parse_packet(r#"2/admin,7["x"]"#).unwrap();
        assert_eq!((p.nsp, p.id, p.data), ("/admin", Some(7), r#"["x"]"#));
        let p = parse_packet(r#"0{"sid":"s"}"#).unwrap();
        assert_eq!((p.kind, p.data), (0, r#"{"sid":"s"}"#));
        let p = parse_packet("1/admin,").unwrap();
        assert_eq!((p.kind, p.nsp, p.data), (1, "/admin", ""));
        assert!(parse_packet("").is_none());
    }

    #[test]
    fn acks_become_results() {
        assert!(check_ack("join_room", "r", &json!({"success": true})).is_ok());
        let e = check_ack(
            "join_room",
            "r",
            &json!({"success": false, "error": "full"}),
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(
            e.message()
                .contains("refused join_room for room \"r\": full"),
            "{e}"
        );
        assert!(check_ack("leave_room", "r", &json!("ok")).is_err());
    }

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
