//! `EventBusClient`: the one client every face wraps.
//!
//! A cheap cloneable handle (`Arc` inside). Construct with a config, `connect()`, publish and
//! subscribe, `disconnect()`. All async methods run on the shared runtime; the blocking
//! wrappers in the faces use [`crate::runtime::block_on`].

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::config::{Endpoint, EventBusConfig, Settings};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{encode, PublishOptions};
use crate::logging::{Logger, RateLimit};
use crate::state::{Emitter, StateEvent, StateListener};
use crate::stats::{Stats, StatsSnapshot};
use crate::subscription::{Ctx, Handler, Policy, Registry, SubscriptionInfo, SubscriptionOptions};
use crate::transport::{memory::MemoryTransport, redis::RedisTransport, Shared, Transport};
use crate::validate::EventValidator;

/// Library version reported by health checks.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A successful publish.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishReceipt {
    /// The event's id.
    pub event_id: String,
    /// The event's `metadata.timestamp`.
    pub published_at: String,
    /// Redis's PUBLISH reply: clients that received it.
    pub delivered_to: u64,
    /// The channel it went to.
    pub channel: String,
}

/// A failed publish: the error plus the event id / time when the event had been built.
#[derive(Debug)]
pub struct PublishFailure {
    /// What went wrong.
    pub error: Error,
    /// The event's id (a fresh id when it failed before one was assigned, as the TS package).
    pub event_id: String,
    /// When it failed / was built.
    pub published_at: String,
}

/// Outcome of one publish.
pub type PublishOutcome = std::result::Result<PublishReceipt, PublishFailure>;

/// How a face that hands publish outcomes out as JSON text shapes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeShape {
    /// The TS package's `PublishResult` (Node): no `deliveredTo` on a failure, and
    /// `error.details` is `{}`.
    Ts,
    /// The C header's: `deliveredTo` always (0 on a failure), no `error.details`.
    C,
}

/// A publish outcome as JSON, written straight to text with `serde_json::to_string`:
/// `{"success","eventId","publishedAt","deliveredTo"?,"error"?:{"code","message","details"?}}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeJson<'a> {
    success: bool,
    event_id: &'a str,
    published_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivered_to: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<OutcomeErrorJson<'a>>,
}

#[derive(Debug, Serialize)]
struct OutcomeErrorJson<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Map<String, Value>>,
}

impl<'a> OutcomeJson<'a> {
    /// `o` in `shape`.
    pub fn of(o: &'a PublishOutcome, shape: OutcomeShape) -> Self {
        match o {
            Ok(r) => OutcomeJson {
                success: true,
                event_id: &r.event_id,
                published_at: &r.published_at,
                delivered_to: Some(r.delivered_to),
                error: None,
            },
            Err(f) => Self::failure(&f.error, &f.event_id, &f.published_at, shape),
        }
    }

    /// The JSON of a failed publish.
    fn failure(
        e: &'a Error,
        event_id: &'a str,
        published_at: &'a str,
        shape: OutcomeShape,
    ) -> Self {
        OutcomeJson {
            success: false,
            event_id,
            published_at,
            delivered_to: (shape == OutcomeShape::C).then_some(0),
            error: Some(OutcomeErrorJson {
                code: e.kind().code(),
                message: e.full_message(),
                details: (shape == OutcomeShape::Ts).then(Map::new),
            }),
        }
    }
}

/// One item of `publish_batch`.
#[derive(Debug, Clone)]
pub struct BatchItem {
    /// Event type.
    pub event_type: String,
    /// Data as JSON text.
    pub data: Box<RawValue>,
    /// Options.
    pub options: PublishOptions,
}

/// An item for [`EventBusClient::queue_batch`]: made into a [`BatchItem`] on the runtime, by
/// the client's hand-over task, so the host's thread does not pay for the checking.
pub trait IntoBatchItem: Send + 'static {
    /// The item, or why it cannot be published (it then fails before it is sent).
    fn into_batch_item(self) -> Result<BatchItem>;
}

impl IntoBatchItem for BatchItem {
    fn into_batch_item(self) -> Result<BatchItem> {
        Ok(self)
    }
}

/// An item as JSON text, as the Node face hands its publishes over: `data` is the event data
/// (`JSON.stringify`'s output), `options` the publish options object (or empty).
#[derive(Debug, Clone)]
pub struct JsonItem {
    /// Event type.
    pub event_type: String,
    /// Data as JSON text.
    pub data: String,
    /// Options as JSON text; empty or `null` for none.
    pub options: String,
}

impl IntoBatchItem for JsonItem {
    fn into_batch_item(self) -> Result<BatchItem> {
        let data = RawValue::from_string(self.data).map_err(|e| {
            Error::new(
                ErrorKind::Validation,
                format!("Event data is not valid JSON: {e}"),
            )
        })?;
        Ok(BatchItem {
            event_type: self.event_type,
            data,
            options: PublishOptions::from_json(&self.options)?,
        })
    }
}

/// `healthCheck()` result: `{status, timestamp, checks, uptime, version}`.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// `healthy` | `degraded` | `unhealthy`.
    pub status: String,
    /// ISO time.
    pub timestamp: String,
    /// Per-component checks.
    pub checks: Map<String, Value>,
    /// ms since connect.
    pub uptime: u64,
    /// Library version.
    pub version: String,
}

struct Inner {
    settings: Settings,
    validator: EventValidator,
    logger: Logger,
    stats: Arc<Stats>,
    registry: Arc<Registry>,
    emitter: Arc<Emitter>,
    transport: RwLock<Option<Arc<Transport>>>,
    #[cfg(feature = "socketio")]
    socketio: RwLock<Option<Arc<crate::socketio::SocketIo>>>,
    lifecycle: tokio::sync::Mutex<()>,
    connected_at: AtomicU64,
    /// The hand-over task of [`EventBusClient::queue_batch`], started on first use.
    hand_over: Mutex<Option<tokio::sync::mpsc::UnboundedSender<HandOverJob>>>,
    /// Events given to `queue_batch` that the hand-over task has not handed over yet.
    waiting_hand_over: AtomicUsize,
}

/// The event bus client.
#[derive(Clone)]
pub struct EventBusClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EventBusClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBusClient")
            .field("service", &self.inner.settings.service_name)
            .field("addr", &self.inner.settings.display_addr)
            .field("connected", &self.is_connected())
            .finish()
    }
}

fn failure(error: Error) -> PublishFailure {
    PublishFailure {
        error,
        event_id: crate::event::new_id(),
        published_at: crate::event::now_iso(),
    }
}

impl EventBusClient {
    /// Build a client from a parsed config (checks it with the TS constructor's messages).
    pub fn new(config: EventBusConfig) -> Result<EventBusClient> {
        let settings = config.settings()?;
        let logger = Logger::new(
            &settings.service_name,
            settings.log_level,
            settings.log_json,
        );
        let stats = Arc::new(Stats::default());
        let ctx = Arc::new(Ctx {
            stats: stats.clone(),
            logger: logger.clone(),
            drop_log: RateLimit::new(5000),
            invalid_log: RateLimit::new(5000),
            fail_log: RateLimit::new(1000),
            max_message_size: settings.max_event_size,
        });
        let validator = EventValidator {
            max_event_size: settings.max_event_size,
            max_data_size: settings.max_data_size,
            strict_schemas: settings.strict_schemas,
        };
        Ok(EventBusClient {
            inner: Arc::new(Inner {
                validator,
                logger,
                stats,
                registry: Arc::new(Registry::new(
                    ctx,
                    cfg!(feature = "socketio") && settings.socketio.is_some(),
                )),
                emitter: Arc::new(Emitter::default()),
                transport: RwLock::new(None),
                #[cfg(feature = "socketio")]
                socketio: RwLock::new(None),
                lifecycle: tokio::sync::Mutex::new(()),
                connected_at: AtomicU64::new(0),
                hand_over: Mutex::new(None),
                waiting_hand_over: AtomicUsize::new(0),
                settings,
            }),
        })
    }

    /// Build a client from the config's JSON text.
    pub fn from_json(config: &str) -> Result<EventBusClient> {
        Self::new(EventBusConfig::from_json(config)?)
    }

    /// The resolved settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// This client's logger (bindings log through it so lines carry the service name).
    pub fn logger(&self) -> &Logger {
        &self.inner.logger
    }

    /// The validator with this client's limits.
    pub fn validator(&self) -> &EventValidator {
        &self.inner.validator
    }

    fn transport(&self) -> Option<Arc<Transport>> {
        self.inner
            .transport
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `connect()`: open the publisher and subscriber connections. A second call while
    /// connected is a no-op (logged), as in the TS package.
    pub async fn connect(&self) -> Result<()> {
        let this = self.clone();
        crate::runtime::spawn(async move { this.connect_inner().await })
            .await
            .map_err(|e| Error::new(ErrorKind::Internal, format!("connect task failed: {e}")))?
    }

    async fn connect_inner(&self) -> Result<()> {
        let _g = self.inner.lifecycle.lock().await;
        if self.transport().is_some() {
            self.inner
                .logger
                .warn("Already connected to Event Bus", &[]);
            return Ok(());
        }
        let s = &self.inner.settings;
        self.inner.logger.info(
            "Connecting to Event Bus service...",
            &[("addr", s.display_addr.clone())],
        );
        let shared = Arc::new(Shared {
            registry: self.inner.registry.clone(),
            stats: self.inner.stats.clone(),
            logger: self.inner.logger.clone(),
            emitter: self.inner.emitter.clone(),
            settings: s.clone(),
        });
        let transport = match &s.endpoint {
            Endpoint::Memory(name) => {
                Transport::Memory(MemoryTransport::connect(name, self.inner.registry.clone()))
            }
            Endpoint::Redis(info) => {
                match RedisTransport::connect((**info).clone(), shared).await {
                    Ok(t) => Transport::Redis(t),
                    Err(e) => {
                        self.inner.logger.error(
                            "Failed to connect to Event Bus",
                            &[("error", e.to_string())],
                        );
                        return Err(e);
                    }
                }
            }
        };
        let transport = Arc::new(transport);
        #[cfg(feature = "socketio")]
        if let Some(sio) = &s.socketio {
            match crate::socketio::SocketIo::start(
                sio.clone(),
                s.service_name.clone(),
                self.inner.registry.clone(),
                self.inner.emitter.clone(),
                self.inner.logger.clone(),
            )
            .await
            {
                Ok(sio) => {
                    if !sio.state().is_up() {
                        self.inner.logger.warn(
                            "Socket.IO hub not reachable; rooms are unavailable until it is (retrying in the background)",
                            &[("url", s.socketio.as_ref().map(|c| c.url.clone()).unwrap_or_default())],
                        );
                    }
                    *self
                        .inner
                        .socketio
                        .write()
                        .unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(sio));
                }
                Err(e) => {
                    transport.close().await;
                    self.inner.logger.error(
                        "Failed to connect to Event Bus",
                        &[("error", e.to_string())],
                    );
                    return Err(e);
                }
            }
        }
        #[cfg(not(feature = "socketio"))]
        if s.socketio.is_some() {
            self.inner.logger.warn(
                "client (Socket.IO) config given, but this build has no socketio feature; joinRoom/leaveRoom/getRoomMembers will fail",
                &[],
            );
        }
        *self
            .inner
            .transport
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(transport);
        self.inner
            .connected_at
            .store(crate::stats::now_ms(), Relaxed);
        self.inner
            .logger
            .info("Successfully connected to Event Bus service", &[]);
        self.inner.emitter.emit(StateEvent::Connected {
            connection: crate::state::Link::Publisher,
            reconnect: false,
        });
        self.inner.emitter.emit(StateEvent::Connected {
            connection: crate::state::Link::Subscriber,
            reconnect: false,
        });
        Ok(())
    }

    /// `isConnected()`: between a successful `connect()` and `disconnect()` (Redis outages
    /// in between are reported by `healthCheck()` and state events, not here).
    pub fn is_connected(&self) -> bool {
        self.transport().is_some()
    }

    /// `disconnect()`: stop receiving, let queued and running handlers finish (up to
    /// `disconnectTimeout`), fail publishes still waiting with a closed error, close both
    /// connections and release every task. Idempotent.
    pub async fn disconnect(&self) -> Result<()> {
        self.disconnect_from(false).await
    }

    /// [`disconnect`](Self::disconnect), told whether one of this client's own handlers is
    /// the caller. If so, it does not wait for handlers (the caller's could not finish before
    /// this returns, so waiting would only run out `disconnectTimeout`): events still queued
    /// are dropped, and the core stops waiting for handlers already running, as at the
    /// disconnect timeout; a host's handler (Python, Node, C) runs to its end on its own
    /// thread or loop, a Rust handler's future is dropped. Each face knows its own way of
    /// telling that a handler is calling.
    pub async fn disconnect_from(&self, handler: bool) -> Result<()> {
        let this = self.clone();
        crate::runtime::spawn(async move { this.disconnect_inner(!handler).await })
            .await
            .map_err(|e| Error::new(ErrorKind::Internal, format!("disconnect task failed: {e}")))
    }

    async fn disconnect_inner(&self, wait: bool) {
        let _g = self.inner.lifecycle.lock().await;
        let t = self
            .inner
            .transport
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(t) = t else { return };
        self.inner
            .logger
            .info("Disconnecting from Event Bus...", &[]);
        #[cfg(feature = "socketio")]
        if let Some(sio) = self.socketio_handle() {
            *self
                .inner
                .socketio
                .write()
                .unwrap_or_else(|p| p.into_inner()) = None;
            sio.close().await;
        }
        t.close().await;
        let drain = wait.then_some(self.inner.settings.disconnect_timeout);
        self.inner.registry.drain_all(drain).await;
        self.inner.connected_at.store(0, Relaxed);
        self.inner.logger.info("Disconnected from Event Bus", &[]);
    }

    /// Build, validate and encode one event (no I/O).
    fn prepare(
        &self,
        event_type: &str,
        data: &RawValue,
        opts: &PublishOptions,
    ) -> std::result::Result<crate::event::OutgoingEvent, PublishFailure> {
        let s = &self.inner.settings;
        self.inner
            .validator
            .validate_publish(&s.service_name, event_type, data.get(), opts)
            .map_err(failure)?;
        let ev = encode(&s.service_name, event_type, data, opts);
        self.inner
            .validator
            .validate_sizes(ev.payload.len(), ev.data_len)
            .map_err(|e| PublishFailure {
                error: e,
                event_id: ev.id.clone(),
                published_at: ev.timestamp.clone(),
            })?;
        Ok(ev)
    }

    /// `publish(type, data, options)`. `data` is JSON text (what `JSON.stringify` gives).
    pub async fn publish(
        &self,
        event_type: &str,
        data: &RawValue,
        opts: &PublishOptions,
    ) -> PublishOutcome {
        let ev = match self.prepare(event_type, data, opts) {
            Ok(ev) => ev,
            Err(f) => {
                self.count_failure(&f);
                return Err(f);
            }
        };
        self.send(vec![ev])
            .await
            .pop()
            .expect("one result per event")
    }

    /// `publishToRoom(room, type, data, options)`: `publish` with `options.room = room`
    /// (channel `room:{room}`).
    pub async fn publish_to_room(
        &self,
        room: &str,
        event_type: &str,
        data: &RawValue,
        opts: &PublishOptions,
    ) -> PublishOutcome {
        let mut o = opts.clone();
        o.room = Some(room.to_string());
        self.publish(event_type, data, &o).await
    }

    /// `publishToUser(userId, type, data, options)`: `publish` with `options.userId = userId`
    /// (channel `user:{userId}` unless a room is given).
    pub async fn publish_to_user(
        &self,
        user_id: &str,
        event_type: &str,
        data: &RawValue,
        opts: &PublishOptions,
    ) -> PublishOutcome {
        let mut o = opts.clone();
        o.user_id = Some(user_id.to_string());
        self.publish(event_type, data, &o).await
    }

    /// `broadcast(type, data, options)`: `publish` with `options.broadcast = true` (channel
    /// `broadcast` unless a room or user is given).
    pub async fn broadcast(
        &self,
        event_type: &str,
        data: &RawValue,
        opts: &PublishOptions,
    ) -> PublishOutcome {
        let mut o = opts.clone();
        o.broadcast = Some(true);
        self.publish(event_type, data, &o).await
    }

    /// `publishBatch([...])`: every event validated on its own, the valid ones written in
    /// order; one outcome per item, in order. Events are handed to the publisher a chunk at a
    /// time as they are encoded, so writing the first overlaps encoding the rest.
    pub async fn publish_batch(&self, items: &[BatchItem]) -> Vec<PublishOutcome> {
        let deadline = tokio::time::Instant::now() + self.inner.settings.publish_timeout;
        let parts = self.hand_over_all(items, deadline).await;
        self.answer(parts).await
    }

    /// Validate, encode and hand over `items` a chunk at a time, in order; the transport's
    /// waits for room end at `deadline`.
    async fn hand_over_all(
        &self,
        items: &[BatchItem],
        deadline: tokio::time::Instant,
    ) -> Vec<Part> {
        let t = self.transport();
        let mut parts = Vec::with_capacity(items.len().div_ceil(HAND_OVER_CHUNK));
        for chunk in items.chunks(HAND_OVER_CHUNK) {
            let (slots, mut evs) = self.prepare_all(chunk);
            let queued = match &t {
                Some(t) => Some(t.hand_over(take_payloads(&mut evs), deadline).await),
                None => None,
            };
            parts.push(Part { slots, evs, queued });
        }
        parts
    }

    /// Validate and encode every item: the events to send, and one slot per item (already
    /// holding the failure of an item that is not valid).
    fn prepare_all(
        &self,
        items: &[BatchItem],
    ) -> (
        Vec<Option<PublishOutcome>>,
        Vec<crate::event::OutgoingEvent>,
    ) {
        let mut slots = Vec::with_capacity(items.len());
        let mut evs = Vec::with_capacity(items.len());
        for it in items {
            match self.prepare(&it.event_type, &it.data, &it.options) {
                Ok(ev) => {
                    evs.push(ev);
                    slots.push(None);
                }
                Err(f) => {
                    self.count_failure(&f);
                    slots.push(Some(Err(f)));
                }
            }
        }
        (slots, evs)
    }

    fn count_failure(&self, f: &PublishFailure) {
        self.inner.stats.publish_failed.fetch_add(1, Relaxed);
        self.inner.logger.error(
            "Failed to publish event",
            &[
                ("code", f.error.kind().code().to_string()),
                ("error", f.error.to_string()),
            ],
        );
    }

    async fn send(&self, mut evs: Vec<crate::event::OutgoingEvent>) -> Vec<PublishOutcome> {
        if evs.is_empty() {
            return Vec::new();
        }
        let Some(t) = self.transport() else {
            return self.not_sent(evs);
        };
        let items = take_payloads(&mut evs);
        crate::runtime::note_activity();
        let results = t
            .publish_many(items, self.inner.settings.publish_timeout)
            .await;
        self.settle(evs, results)
    }

    /// `publish_batch` for hosts whose calls return before the work is done (the Node face:
    /// the publishes of one tick are one call; Python asyncio): the items go to the client's
    /// hand-over task at once, which validates, encodes and hands them to the publisher after
    /// those of earlier calls, so events queued by successive calls reach Redis in call
    /// order, whichever thread awaits the returned future (which answers each item). The
    /// host's thread only moves the items; the encoding runs on the runtime. When
    /// [`MAX_WAITING_HAND_OVER`] events already wait for the task, the calling thread waits
    /// for room, up to the publish timeout (then the items fail with a timeout): call it from
    /// a host thread, not from inside the runtime. (The memory transport delivers when the
    /// future runs.)
    pub fn queue_batch<I: IntoBatchItem>(
        &self,
        items: Vec<I>,
    ) -> impl std::future::Future<Output = Vec<PublishOutcome>> + Send + 'static {
        let s = &self.inner.settings;
        let deadline = tokio::time::Instant::now() + s.publish_timeout;
        let n = items.len();
        let timeout = s.publish_timeout;
        let taken = Arc::new(AtomicU8::new(JOB_WAITING));
        let parts = if self.room_to_hand_over(n, deadline) {
            Ok(self.send_to_hand_over(items, deadline, taken.clone()))
        } else {
            Err(Unsent::TimedOut)
        };
        let this = self.clone();
        async move {
            let gone = || Unsent::RuntimeGone;
            let why = match parts {
                Ok(Some(mut rx)) => {
                    // The task takes the job by the deadline unless it is stuck (or gone, as
                    // in a forked child); a job not taken by then is called off, so it is
                    // never sent after this reports it failed.
                    let answered = match tokio::time::timeout_at(deadline, &mut rx).await {
                        Ok(r) => r.map_err(|_| gone()),
                        Err(_) => {
                            if taken
                                .compare_exchange(JOB_WAITING, JOB_CANCELLED, AcqRel, Acquire)
                                .is_ok()
                            {
                                Err(Unsent::TimedOut)
                            } else {
                                // Taken just now: the transport answers by the deadline.
                                rx.await.map_err(|_| gone())
                            }
                        }
                    };
                    match answered {
                        Ok((parts, early)) => return fill(early, this.answer(parts).await),
                        Err(e) => e,
                    }
                }
                Ok(None) => gone(),
                Err(e) => e,
            };
            (0..n)
                .map(|_| {
                    let f = failure(match why {
                        Unsent::TimedOut => Error::unsent_timeout(timeout),
                        Unsent::RuntimeGone => Error::new(
                            ErrorKind::Closed,
                            "the event-bus runtime stopped before the publish was sent",
                        ),
                    });
                    this.count_failure(&f);
                    Err(f)
                })
                .collect()
        }
    }

    /// Count `n` more events waiting for the hand-over task, first waiting (on this thread,
    /// up to `deadline`) while that would pass [`MAX_WAITING_HAND_OVER`]; `false` when the
    /// deadline passed first. A call larger than the bound goes alone.
    fn room_to_hand_over(&self, n: usize, deadline: tokio::time::Instant) -> bool {
        let w = &self.inner.waiting_hand_over;
        loop {
            let cur = w.load(Acquire);
            if cur == 0 || cur + n <= MAX_WAITING_HAND_OVER {
                if w.compare_exchange(cur, cur + n, AcqRel, Acquire).is_ok() {
                    return true;
                }
                continue;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Give the items to the hand-over task (started on first use); `None` when it cannot
    /// be started (the runtime is shutting down).
    fn send_to_hand_over<I: IntoBatchItem>(
        &self,
        items: Vec<I>,
        deadline: tokio::time::Instant,
        taken: Arc<AtomicU8>,
    ) -> Option<tokio::sync::oneshot::Receiver<HandedOver>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut job = HandOverJob {
            client: self.clone(),
            n: items.len(),
            items: Some(Box::new(move || {
                items.into_iter().map(I::into_batch_item).collect()
            })),
            deadline,
            taken,
            parts: Some(tx),
        };
        let mut task = self
            .inner
            .hand_over
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Twice at most: a task that stopped (its runtime was shut down) is replaced.
        for _ in 0..2 {
            let sender = task.get_or_insert_with(|| {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                crate::runtime::spawn(hand_over_jobs(rx));
                tx
            });
            match sender.send(job) {
                Ok(()) => return Some(rx),
                Err(e) => {
                    job = e.0;
                    *task = None;
                }
            }
        }
        None // dropping the job gives its room back
    }

    /// Every item's outcome, in order, once the transport has answered each part.
    async fn answer(&self, parts: Vec<Part>) -> Vec<PublishOutcome> {
        crate::runtime::note_activity();
        let mut out = Vec::with_capacity(parts.iter().map(|p| p.slots.len()).sum());
        for Part { slots, evs, queued } in parts {
            let sent = match queued {
                Some(q) => self.settle(evs, q.answers().await),
                None => self.not_sent(evs),
            };
            out.extend(fill(slots, sent));
        }
        out
    }

    /// Outcomes for events that could not be sent: not connected.
    fn not_sent(&self, evs: Vec<crate::event::OutgoingEvent>) -> Vec<PublishOutcome> {
        let errs = evs.iter().map(|_| Err(Error::not_connected())).collect();
        self.settle(evs, errs)
    }

    /// One outcome per event from the transport's answers (counted, and logged at debug).
    fn settle(
        &self,
        evs: Vec<crate::event::OutgoingEvent>,
        results: Vec<Result<u64>>,
    ) -> Vec<PublishOutcome> {
        evs.into_iter()
            .zip(results)
            .map(|(ev, r)| match r {
                Ok(n) => {
                    self.inner.stats.published.fetch_add(1, Relaxed);
                    if self.inner.logger.enabled(crate::config::LogLevel::Debug) {
                        self.inner.logger.debug(
                            &format!(
                                "Published event: {} to channel: {}",
                                ev.event_type, ev.channel
                            ),
                            &[],
                        );
                    }
                    Ok(PublishReceipt {
                        event_id: ev.id,
                        published_at: ev.timestamp,
                        delivered_to: n,
                        channel: ev.channel,
                    })
                }
                Err(error) => {
                    let f = PublishFailure {
                        error,
                        event_id: ev.id,
                        published_at: ev.timestamp,
                    };
                    self.count_failure(&f);
                    Err(f)
                }
            })
            .collect()
    }

    /// `subscribe(pattern, handler, options)`. Resolves once Redis has confirmed the
    /// subscription (or at once while Redis is down: it is applied on reconnect).
    pub async fn subscribe(
        &self,
        pattern: &str,
        handler: Arc<dyn Handler>,
        options: SubscriptionOptions,
    ) -> Result<SubscriptionInfo> {
        let Some(t) = self.transport() else {
            return Err(Error::not_connected());
        };
        if pattern.is_empty() {
            return Err(Error::validation("Subscription pattern cannot be empty"));
        }
        let s = &self.inner.settings;
        let policy = Policy::new(&options, s.default_max_retries, s.default_retry_delay)?;
        let entry = self.inner.registry.add(pattern, handler, options, policy);
        self.inner.stats.total_subscriptions.fetch_add(1, Relaxed);
        if let Err(e) = t.sync().await {
            self.inner.registry.remove(&entry.id);
            return Err(e);
        }
        self.inner.logger.debug(
            &format!("Subscribed to pattern: {pattern}"),
            &[("subscription", entry.id.clone())],
        );
        let info = entry.info();
        #[cfg(feature = "socketio")]
        if let Some(sio) = self.socketio_handle() {
            sio.subscribed(&info.id, crate::socketio::subscription_payload(&info));
        }
        Ok(info)
    }

    /// `unsubscribe(id)`: `false` when no such subscription. The Redis subscription is
    /// dropped only when no other subscription of this client uses the same pattern.
    pub async fn unsubscribe(&self, id: &str) -> Result<bool> {
        let Some(e) = self.inner.registry.remove(id) else {
            return Ok(false);
        };
        #[cfg(feature = "socketio")]
        if let Some(sio) = self.socketio_handle() {
            sio.unsubscribed(id);
        }
        if let Some(t) = self.transport() {
            if !self.inner.registry.has_key(&e.key) {
                // Failure here only means Redis keeps sending a pattern nobody handles; the
                // registry already ignores it.
                if let Err(err) = t.sync().await {
                    self.inner.logger.warn(
                        "Unsubscribe from Redis failed; will be applied on reconnect",
                        &[("error", err.to_string())],
                    );
                }
            }
        }
        self.inner
            .logger
            .debug(&format!("Unsubscribed from: {}", e.pattern), &[]);
        Ok(true)
    }

    /// Live subscriptions.
    pub fn subscriptions(&self) -> Vec<SubscriptionInfo> {
        self.inner.registry.all().iter().map(|e| e.info()).collect()
    }

    /// One subscription by id.
    pub fn subscription(&self, id: &str) -> Option<SubscriptionInfo> {
        self.inner.registry.get(id).map(|e| e.info())
    }

    /// Events waiting in subscription `id`'s queue (bounded by its `maxPending`; a handler run
    /// in progress is not counted). `None` when no such subscription.
    pub fn pending_events(&self, id: &str) -> Option<usize> {
        self.inner.registry.queued(id)
    }

    /// Register a state listener; returns an id for [`Self::off_state`].
    pub fn on_state(&self, listener: StateListener) -> u64 {
        self.inner.emitter.add(listener)
    }

    /// Remove a state listener.
    pub fn off_state(&self, id: u64) -> bool {
        self.inner.emitter.remove(id)
    }

    /// Remove every state listener (bindings do this when the host object goes away).
    pub fn clear_state_listeners(&self) {
        self.inner.emitter.clear()
    }

    #[cfg(feature = "socketio")]
    fn socketio_handle(&self) -> Option<Arc<crate::socketio::SocketIo>> {
        self.inner
            .socketio
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The Socket.IO connection a room call goes through, or why there is none.
    #[cfg(feature = "socketio")]
    fn rooms(&self, room: &str) -> Result<Arc<crate::socketio::SocketIo>> {
        if room.is_empty() {
            return Err(Error::validation("Room name cannot be empty"));
        }
        self.socketio_handle()
            .ok_or_else(|| Error::new(ErrorKind::Connection, crate::socketio::NOT_CONNECTED))
    }

    #[cfg(not(feature = "socketio"))]
    fn rooms(&self, _room: &str) -> Result<std::convert::Infallible> {
        if self.inner.settings.socketio.is_none() {
            Err(Error::new(ErrorKind::Connection, "Socket.IO not connected"))
        } else {
            Err(Error::new(
                ErrorKind::Unsupported,
                "Socket.IO not connected: this build of the event bus has no socketio feature",
            ))
        }
    }

    /// `joinRoom(room)`: join a room on the Socket.IO hub (acknowledged by the hub). The room
    /// is rejoined after every reconnect. Fails with `Socket.IO not connected` without
    /// `client` config or while the hub is unreachable.
    pub async fn join_room(&self, room: &str) -> Result<()> {
        let sio = self.rooms(room)?;
        #[cfg(feature = "socketio")]
        return sio.join_room(room).await;
        #[cfg(not(feature = "socketio"))]
        match sio {}
    }

    /// `leaveRoom(room)`: leave a room on the hub.
    pub async fn leave_room(&self, room: &str) -> Result<()> {
        let sio = self.rooms(room)?;
        #[cfg(feature = "socketio")]
        return sio.leave_room(room).await;
        #[cfg(not(feature = "socketio"))]
        match sio {}
    }

    /// `getRoomMembers(room)`: the members the hub reports for a room.
    pub async fn get_room_members(&self, room: &str) -> Result<Vec<String>> {
        let sio = self.rooms(room)?;
        #[cfg(feature = "socketio")]
        return sio.get_room_members(room).await;
        #[cfg(not(feature = "socketio"))]
        match sio {}
    }

    /// Rooms joined through this client (rejoined after reconnects).
    pub fn joined_rooms(&self) -> Vec<String> {
        #[cfg(feature = "socketio")]
        if let Some(sio) = self.socketio_handle() {
            return sio.state().rooms();
        }
        Vec::new()
    }

    #[cfg(feature = "socketio")]
    fn socketio_check(&self) -> Option<(Value, bool)> {
        let cfg = self.inner.settings.socketio.as_ref()?;
        let sio = self.socketio_handle()?;
        let st = sio.state();
        let up = st.is_up();
        let check = json!({
            "status": if up { "pass" } else { "fail" },
            "message": if up {
                "Socket.IO hub connection healthy".to_string()
            } else {
                format!(
                    "Socket.IO not connected: {}; reconnecting",
                    st.last_error().unwrap_or_else(|| "connecting".into())
                )
            },
            "duration": 0,
            "details": {
                "url": cfg.url,
                "transport": st.transport().map(|t| t.name()),
                "rooms": st.rooms(),
                "reconnects": st.reconnects(),
            }
        });
        Some((check, up))
    }

    #[cfg(not(feature = "socketio"))]
    fn socketio_check(&self) -> Option<(Value, bool)> {
        self.inner.settings.socketio.as_ref()?;
        Some((
            json!({"status": "warn", "message": "this build has no socketio feature; rooms are unavailable"}),
            true,
        ))
    }

    fn uptime(&self) -> u64 {
        let at = self.inner.connected_at.load(Relaxed);
        if at == 0 {
            0
        } else {
            crate::stats::now_ms().saturating_sub(at)
        }
    }

    /// `healthCheck()`: PINGs Redis. `degraded` while a connection is reconnecting,
    /// `unhealthy` when not connected or Redis does not answer.
    pub async fn health_check(&self) -> HealthReport {
        let this = self.clone();
        match crate::runtime::spawn(async move { this.health_inner().await }).await {
            Ok(r) => r,
            Err(e) => HealthReport {
                status: "unhealthy".into(),
                timestamp: crate::event::now_iso(),
                checks: Map::new(),
                uptime: 0,
                version: format!("{VERSION} (health task failed: {e})"),
            },
        }
    }

    async fn health_inner(&self) -> HealthReport {
        let mut checks = Map::new();
        let status;
        match self.transport() {
            None => {
                checks.insert(
                    "redis".into(),
                    json!({"status": "fail", "message": "Not connected to Event Bus", "duration": 0}),
                );
                status = "unhealthy";
            }
            Some(t) => {
                let links = t.links();
                let start = std::time::Instant::now();
                let ping = t.ping().await;
                let dur = start.elapsed().as_secs_f64() * 1000.0;
                let both = links.publisher_up && links.subscriber_up;
                let (st, msg, overall) = match (&ping, both) {
                    (Ok(_), true) => ("pass", "Redis connection healthy".to_string(), "healthy"),
                    (Ok(_), false) => (
                        "warn",
                        "Redis subscriber connection is reconnecting".to_string(),
                        "degraded",
                    ),
                    (Err(e), _) => (
                        "fail",
                        format!("Redis connection failed: {e}; reconnecting"),
                        "degraded",
                    ),
                };
                checks.insert(
                    "redis".into(),
                    json!({
                        "status": st,
                        "message": msg,
                        "duration": dur,
                        "details": {
                            "publisher": if links.publisher_up { "up" } else { "reconnecting" },
                            "subscriber": if links.subscriber_up { "up" } else { "reconnecting" },
                            "address": self.inner.settings.display_addr,
                        }
                    }),
                );
                status = match self.socketio_check() {
                    Some((check, up)) => {
                        checks.insert("socketio".into(), check);
                        if !up && overall == "healthy" {
                            "degraded"
                        } else {
                            overall
                        }
                    }
                    None => overall,
                };
            }
        }
        HealthReport {
            status: status.into(),
            timestamp: crate::event::now_iso(),
            checks,
            uptime: self.uptime(),
            version: VERSION.into(),
        }
    }

    /// `getStats()`.
    pub fn stats(&self) -> StatsSnapshot {
        let mut s = self.inner.stats.snapshot();
        s.active_subscriptions = self.inner.registry.len() as u64;
        s.active_connections = match self.transport() {
            None => 0,
            Some(t) => {
                let l = t.links();
                u64::from(l.publisher_up) + u64::from(l.subscriber_up)
            }
        };
        #[cfg(feature = "socketio")]
        if let Some(sio) = self.socketio_handle() {
            s.active_rooms = sio.state().rooms().len() as u64;
            s.active_connections += u64::from(sio.state().is_up());
        }
        s.uptime = self.uptime();
        s
    }

    /// Wait until both connections are up (tests and `connect()`-then-publish users after an
    /// outage). Returns false on timeout.
    pub async fn wait_until_up(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(t) = self.transport() {
                let l = t.links();
                if l.publisher_up && l.subscriber_up {
                    return true;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A batch is validated, encoded and handed to the publisher this many events at a time.
const HAND_OVER_CHUNK: usize = 64;

/// Most events waiting for a client's hand-over task ([`EventBusClient::queue_batch`]) before
/// the calling thread waits for room (as many as the publisher's own queue holds).
pub const MAX_WAITING_HAND_OVER: usize = 65_536;

/// One `queue_batch` call for the hand-over task. It holds the client (the task itself does
/// not, so the task ends when the last client handle is dropped). Dropped, handed over or
/// not, it gives back its room in [`MAX_WAITING_HAND_OVER`].
struct HandOverJob {
    client: EventBusClient,
    /// Makes the call's items into `BatchItem`s (or their failures), on the task.
    #[allow(clippy::type_complexity)]
    items: Option<Box<dyn FnOnce() -> Vec<Result<BatchItem>> + Send>>,
    n: usize,
    deadline: tokio::time::Instant,
    /// [`JOB_WAITING`] until the task takes the job or the caller calls it off.
    taken: Arc<AtomicU8>,
    parts: Option<tokio::sync::oneshot::Sender<HandedOver>>,
}

impl Drop for HandOverJob {
    fn drop(&mut self) {
        self.client
            .inner
            .waiting_hand_over
            .fetch_sub(self.n, AcqRel);
    }
}

/// Why a `queue_batch` call's items were never handed over.
#[derive(Clone, Copy)]
enum Unsent {
    TimedOut,
    RuntimeGone,
}

const JOB_WAITING: u8 = 0;
const JOB_TAKEN: u8 = 1;
const JOB_CANCELLED: u8 = 2;

/// What the hand-over task made of a job: the parts handed to the transport, and one slot per
/// item, holding the failure of one that could not be made into an event.
type HandedOver = (Vec<Part>, Vec<Option<PublishOutcome>>);

/// A client's hand-over task: validates, encodes and hands each job's events to the
/// transport, one job after the other, so they reach Redis in the order of the calls.
async fn hand_over_jobs(mut rx: tokio::sync::mpsc::UnboundedReceiver<HandOverJob>) {
    while let Some(mut job) = rx.recv().await {
        if job
            .taken
            .compare_exchange(JOB_WAITING, JOB_TAKEN, AcqRel, Acquire)
            .is_err()
        {
            continue; // called off by its caller at the deadline: never sent
        }
        let (Some(items), Some(parts)) = (job.items.take(), job.parts.take()) else {
            continue;
        };
        let client = &job.client;
        let mut early = Vec::with_capacity(job.n);
        let mut good = Vec::with_capacity(job.n);
        for item in items() {
            match item {
                Ok(b) => {
                    early.push(None);
                    good.push(b);
                }
                Err(e) => {
                    let f = failure(e);
                    client.count_failure(&f);
                    early.push(Some(Err(f)));
                }
            }
        }
        let handed = client.hand_over_all(&good, job.deadline).await;
        drop(job);
        let _ = parts.send((handed, early));
    }
}

/// One chunk of a batch: a slot per item (holding the failure of one that is not valid), the
/// events encoded from the valid ones, and what the transport was handed (`None`: not
/// connected).
struct Part {
    slots: Vec<Option<PublishOutcome>>,
    evs: Vec<crate::event::OutgoingEvent>,
    queued: Option<crate::transport::Queued>,
}

/// `(channel, payload)` for each event, moving the payloads out (they are not needed after the
/// write).
fn take_payloads(evs: &mut [crate::event::OutgoingEvent]) -> Vec<(String, String)> {
    evs.iter_mut()
        .map(|e| (e.channel.clone(), std::mem::take(&mut e.payload)))
        .collect()
}

/// Put the outcomes of the events sent into the empty slots, in order.
fn fill(slots: Vec<Option<PublishOutcome>>, sent: Vec<PublishOutcome>) -> Vec<PublishOutcome> {
    let mut sent = sent.into_iter();
    slots
        .into_iter()
        .map(|s| s.or_else(|| sent.next()).expect("one outcome per item"))
        .collect()
}

#[cfg(test)]
mod outcome_json_tests {
    use super::*;

    #[test]
    fn both_shapes_of_a_success_and_a_failure() {
        let ok: PublishOutcome = Ok(PublishReceipt {
            event_id: "i".into(),
            published_at: "t".into(),
            delivered_to: 2,
            channel: "c".into(),
        });
        let bad: PublishOutcome = Err(PublishFailure {
            error: Error::validation("Event type is required"),
            event_id: "j".into(),
            published_at: "u".into(),
        });
        let text = |o, s| serde_json::to_string(&OutcomeJson::of(o, s)).unwrap();
        let success = r#"{"success":true,"eventId":"i","publishedAt":"t","deliveredTo":2}"#;
        assert_eq!(text(&ok, OutcomeShape::Ts), success);
        assert_eq!(text(&ok, OutcomeShape::C), success);
        assert_eq!(
            text(&bad, OutcomeShape::Ts),
            r#"{"success":false,"eventId":"j","publishedAt":"u","error":{"code":"VALIDATION_ERROR","message":"Event type is required","details":{}}}"#
        );
        assert_eq!(
            text(&bad, OutcomeShape::C),
            r#"{"success":false,"eventId":"j","publishedAt":"u","deliveredTo":0,"error":{"code":"VALIDATION_ERROR","message":"Event type is required"}}"#
        );
    }
}
