//! Rooms over a Socket.IO hub, with the protocol of the TS package.
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
//! replays subscriptions and rooms. Callers talk to it through a command channel. The jobs:
//! - this file: [`SocketIo`], the client's handle (start, close, the room requests and their
//!   timeouts, subscription announcements), and [`SioState`], what health and stats read;
//! - [`connection`]: the connection task (sessions, backoff, handshake, replay, serving
//!   commands and packets);
//! - [`protocol`]: Socket.IO packets, acks and the subscription payload;
//! - [`engine`]: the Engine.IO transports underneath (WebSocket, HTTP long-polling).

mod connection;
pub(crate) mod engine;
pub mod hooks;
mod protocol;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::{SioTransport, SocketIoSettings};
use crate::error::{Error, ErrorKind, Result};
use crate::logging::Logger;
use crate::state::Emitter;
use crate::subscription::Registry;
use engine::Target;
use protocol::check_ack;
pub(crate) use protocol::subscription_payload;

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
        let task = crate::runtime::spawn(connection::run(ctx, cmd_rx, first_tx));
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
