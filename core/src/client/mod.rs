//! `EventBusClient`: the one client every face wraps.
//!
//! A cheap cloneable handle (`Arc` inside). Construct with a config, `connect()`, publish and
//! subscribe, `disconnect()`. All async methods run on the shared runtime; the blocking
//! wrappers in the faces use [`crate::runtime::block_on`].
//!
//! The handle's methods are split by job:
//! - this file: the handle, its construction, `connect()` / `disconnect()`, subscribe and
//!   unsubscribe, the subscription list and state listeners;
//! - `publish`: `publish` and its family, `publish_batch` and `queue_batch` (one path, see
//!   below);
//! - `outcome`: what a publish returns ([`PublishReceipt`], [`PublishFailure`],
//!   [`OutcomeJson`] for faces that hand outcomes out as JSON) and the batch items;
//! - `rooms`: the Socket.IO room calls;
//! - `health`: `healthCheck()` and `getStats()`.
//!
//! # Publishing
//!
//! Every publish goes the same way: validate and encode each event (no I/O), hand the encoded
//! events to the transport in order, then wait for the transport's answer for each. A batch
//! is handed over a chunk at a time, so writing the first events overlaps encoding the rest.
//! `queue_batch` gives its items to the client's hand-over task instead, which does the same
//! work on the runtime, one call after the other, so events of successive calls reach Redis
//! in call order whichever thread awaits them.

mod durable;
mod health;
mod outcome;
mod publish;
mod rooms;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::config::{Endpoint, EventBusConfig, Settings};
use crate::error::{Error, ErrorKind, Result};
use crate::logging::{Logger, RateLimit};
use crate::state::{Emitter, StateEvent, StateListener};
use crate::stats::Stats;
use crate::subscription::{Ctx, Handler, Policy, Registry, SubscriptionInfo, SubscriptionOptions};
use crate::transport::{memory::MemoryTransport, redis::RedisTransport, Shared, Transport};
use crate::validate::EventValidator;

pub use durable::TYPES_NEED_DURABLE;
pub use health::HealthReport;
pub use outcome::{
    BatchItem, IntoBatchItem, JsonItem, OutcomeJson, OutcomeShape, PublishFailure, PublishOutcome,
    PublishReceipt,
};
use publish::HandOverJob;
pub use publish::MAX_WAITING_HAND_OVER;

/// Library version reported by health checks.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

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
    /// Option keys already warned about as unknown (each is named once per client, not once
    /// per publish).
    warned_keys: Mutex<std::collections::HashSet<String>>,
    /// Durable subscriptions, by id.
    durable: Mutex<std::collections::HashMap<String, Arc<crate::durable::reader::DurableSub>>>,
    /// Stream connections for persistent publishes and dead-letter calls.
    streams: Mutex<Option<Arc<crate::transport::redis::streams::Streams>>>,
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
        let client = EventBusClient {
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
                warned_keys: Mutex::default(),
                durable: Mutex::default(),
                streams: Mutex::default(),
                settings,
            }),
        };
        client.warn_unknown_keys("config", &config.unknown_keys);
        Ok(client)
    }

    /// Warn, once per key and client, about input keys that have no effect (a typo such as
    /// `tarceId` must not pass unnoticed). `what` names the input: `config`, `publish
    /// option`, `subscription option`.
    pub(crate) fn warn_unknown_keys(&self, what: &str, keys: &[String]) {
        if keys.is_empty() {
            return;
        }
        let mut warned = self
            .inner
            .warned_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for key in keys {
            if warned.insert(format!("{what}:{key}")) {
                self.inner.logger.warn(
                    &format!("Unknown {what} key '{key}' ignored: it has no effect"),
                    &[],
                );
            }
        }
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

    pub(crate) fn transport(&self) -> Option<Arc<Transport>> {
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
            Endpoint::Redis(_) | Endpoint::Sentinel(_) | Endpoint::Cluster(_) => {
                match RedisTransport::connect(&s.endpoint, shared).await {
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
        self.disconnect_waiting(true).await
    }

    /// [`disconnect`](Self::disconnect) called by one of this client's own handlers. It does
    /// not wait for handlers (the caller's could not finish before this returns, so waiting
    /// would only run out `disconnectTimeout`): events still queued are dropped, and the core
    /// stops waiting for handlers already running, as at the disconnect timeout; a host's
    /// handler (Python, Node, C) runs to its end on its own thread or loop, a Rust handler's
    /// future is dropped. Each face knows its own way of telling that a handler is calling.
    pub async fn disconnect_from_handler(&self) -> Result<()> {
        self.disconnect_waiting(false).await
    }

    async fn disconnect_waiting(&self, wait: bool) -> Result<()> {
        let this = self.clone();
        crate::runtime::spawn(async move { this.disconnect_inner(wait).await })
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
        let drain = wait.then_some(self.inner.settings.disconnect_timeout);
        self.stop_durable(drain).await;
        t.close().await;
        self.inner.registry.drain_all(drain).await;
        self.inner.connected_at.store(0, Relaxed);
        self.inner.logger.info("Disconnected from Event Bus", &[]);
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
        if s.sharded_pub_sub() && crate::glob::is_pattern(pattern) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "sharded pub/sub has no patterns: \"{pattern}\" cannot be subscribed with \
                     redis.shardedPubSub; subscribe to exact channels, or leave shardedPubSub \
                     off to use classic cluster pub/sub (PSUBSCRIBE)"
                ),
            ));
        }
        let policy = Policy::new(&options, s.default_max_retries, s.default_retry_delay)?;
        self.warn_unknown_keys("subscription option", &options.unknown_keys);
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
        if let Some(done) = self.unsubscribe_durable(id).await {
            return Ok(done);
        }
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
        let mut out: Vec<SubscriptionInfo> =
            self.inner.registry.all().iter().map(|e| e.info()).collect();
        out.extend(self.durable_subs().iter().map(|d| d.info.clone()));
        out
    }

    /// One subscription by id.
    pub fn subscription(&self, id: &str) -> Option<SubscriptionInfo> {
        self.inner.registry.get(id).map(|e| e.info()).or_else(|| {
            self.durable_subs()
                .into_iter()
                .find(|d| d.info.id == id)
                .map(|d| d.info.clone())
        })
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
