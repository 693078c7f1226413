//! Subscriptions: the handler trait the faces implement, the registry that is the source of
//! truth for what the client is subscribed to, and the per-subscription workers.
//!
//! Dispatch never scans subscriptions: a message arrives with the pattern (or channel) Redis
//! reports, which is the registry key; each subscription under that key gets the event once,
//! through its own bounded queue, so a slow handler never blocks the socket reader.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::FutureExt;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use crate::error::{Error, ErrorKind, Result};
use crate::event::Delivery;
use crate::filter::SubscriptionFilter;
use crate::glob::is_pattern;
use crate::logging::{Logger, RateLimit};
use crate::stats::Stats;

/// Why a handler run failed.
#[derive(Debug, Clone)]
pub struct HandlerError {
    /// Human-readable reason (the host exception's message).
    pub message: String,
}

impl HandlerError {
    /// A failure with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
        }
    }
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The future a handler returns.
pub type HandlerFuture =
    Pin<Box<dyn Future<Output = std::result::Result<(), HandlerError>> + Send>>;

/// What a face supplies for each subscription: run the host's callable for one event and
/// report success or failure. Timeouts, retries, ordering and concurrency are the core's job.
///
/// The handler object is dropped once, after its last call has finished (C's `drop(ctx)`
/// hangs off that).
pub trait Handler: Send + Sync + 'static {
    /// Handle one event.
    fn call(&self, event: Delivery) -> HandlerFuture;

    /// True when the face can take several queued events of an in-order subscription in one
    /// crossing ([`Handler::call_batch`]). Faces whose calls cost a thread hop or a wake-up
    /// (Node, asyncio) say yes; the default is no.
    fn batched(&self) -> bool {
        false
    }

    /// Run `events` in order in the host (each one starting after the previous one finished)
    /// and return one future per event, in order, completing when that event's handler has
    /// finished. Only called when [`Handler::batched`] is true and the subscription is in
    /// order (`concurrency` 1). Timeouts and retries still apply per event: a failed event is
    /// retried through [`Handler::call`] once the core reaches it, which may be after later
    /// events of the same batch already ran. At most `min(1024, maxPending)` events are handed
    /// over at once; once handed over they count as being handled, not as pending.
    fn call_batch(&self, events: Vec<Delivery>) -> Vec<HandlerFuture> {
        events.into_iter().map(|e| self.call(e)).collect()
    }
}

/// Most events handed to one [`Handler::call_batch`].
pub const MAX_HANDLER_BATCH: usize = 1024;

impl<F, Fut> Handler for F
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), HandlerError>> + Send + 'static,
{
    fn call(&self, event: Delivery) -> HandlerFuture {
        Box::pin(self(event))
    }
}

/// `SubscriptionOptions`: the TS fields plus `filter`, `concurrency`, `maxPending`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionOptions {
    /// Handler timeout in ms (default 30000).
    #[serde(default)]
    pub timeout: Option<u64>,
    /// Retry a failed or timed-out handler (default false).
    #[serde(default)]
    pub retry_on_error: Option<bool>,
    /// Retries after the first attempt (default 3, or `performance.maxRetries`).
    #[serde(default)]
    pub max_retries: Option<u32>,
    /// First retry delay in ms (default 1000, or `performance.retryDelay`), doubled each retry.
    #[serde(default)]
    pub retry_delay: Option<u64>,
    /// Retry delay cap in ms (default 10000).
    #[serde(default)]
    pub max_retry_delay: Option<u64>,
    /// Only events passing this filter reach the handler.
    #[serde(default)]
    pub filter: Option<SubscriptionFilter>,
    /// Handler runs in flight at once (default 1: strictly in order).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Queue bound; past it events are dropped and counted (default 10000).
    #[serde(default)]
    pub max_pending: Option<usize>,
    /// Accepted (TS field), no effect.
    #[serde(default)]
    pub priority: Option<Value>,
    /// Free-form (TS field); a `filter` inside it is honoured as the TS hub protocol sent it.
    #[serde(default)]
    pub metadata: Option<Value>,
}

impl SubscriptionOptions {
    /// Parse from JSON (`null`/empty = defaults).
    pub fn from_json(json: &str) -> Result<SubscriptionOptions> {
        let t = json.trim();
        if t.is_empty() || t == "null" {
            return Ok(SubscriptionOptions::default());
        }
        serde_json::from_str(t).map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("invalid subscription options: {e}"),
            )
        })
    }

    fn effective_filter(&self) -> Result<Option<SubscriptionFilter>> {
        if let Some(f) = &self.filter {
            return Ok(Some(f.clone()));
        }
        match self.metadata.as_ref().and_then(|m| m.get("filter")) {
            Some(v) if !v.is_null() => serde_json::from_value(v.clone()).map(Some).map_err(|e| {
                Error::new(
                    ErrorKind::Validation,
                    format!("invalid metadata.filter: {e}"),
                )
            }),
            _ => Ok(None),
        }
    }
}

/// Resolved per-subscription policy.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub timeout: Duration,
    pub retry_on_error: bool,
    pub max_retries: u32,
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
    pub filter: Option<SubscriptionFilter>,
    pub concurrency: usize,
    pub max_pending: usize,
}

impl Policy {
    pub(crate) fn new(
        o: &SubscriptionOptions,
        default_retries: u32,
        default_delay: Duration,
    ) -> Result<Policy> {
        let filter = o.effective_filter()?;
        if let Some(f) = &filter {
            f.check()?;
        }
        let concurrency = o.concurrency.unwrap_or(1);
        let max_pending = o.max_pending.unwrap_or(10_000);
        if concurrency == 0 {
            return Err(Error::validation("concurrency must be at least 1"));
        }
        if max_pending == 0 {
            return Err(Error::validation("maxPending must be at least 1"));
        }
        Ok(Policy {
            timeout: Duration::from_millis(o.timeout.filter(|t| *t > 0).unwrap_or(30_000)),
            retry_on_error: o.retry_on_error.unwrap_or(false),
            max_retries: o.max_retries.unwrap_or(default_retries),
            retry_delay: o
                .retry_delay
                .map(Duration::from_millis)
                .unwrap_or(default_delay),
            max_retry_delay: Duration::from_millis(o.max_retry_delay.unwrap_or(10_000)),
            filter,
            concurrency,
            max_pending,
        })
    }
}

/// What the Redis (or memory) side is subscribed to: a channel or a glob pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// SUBSCRIBE.
    Channel(String),
    /// PSUBSCRIBE.
    Pattern(String),
}

impl Key {
    /// The key a subscription pattern needs.
    pub fn for_pattern(p: &str) -> Key {
        if is_pattern(p) {
            Key::Pattern(p.to_string())
        } else {
            Key::Channel(p.to_string())
        }
    }
}

/// Public description of a subscription (`Subscription` minus the handler).
#[derive(Debug, Clone)]
pub struct SubscriptionInfo {
    /// UUID v4.
    pub id: String,
    /// The pattern given to `subscribe`.
    pub pattern: String,
    /// The options as given.
    pub options: SubscriptionOptions,
    /// Creation time (ISO).
    pub created_at: String,
    /// Still subscribed.
    pub active: bool,
}

pub(crate) struct Entry {
    pub id: String,
    pub pattern: String,
    pub key: Key,
    pub options: SubscriptionOptions,
    pub created_at: String,
    pub active: Arc<AtomicBool>,
    tx: std::sync::Mutex<Option<mpsc::Sender<Delivery>>>,
    worker: std::sync::Mutex<Option<JoinHandle<()>>>,
    filter: Option<SubscriptionFilter>,
}

impl Entry {
    pub(crate) fn info(&self) -> SubscriptionInfo {
        SubscriptionInfo {
            id: self.id.clone(),
            pattern: self.pattern.clone(),
            options: self.options.clone(),
            created_at: self.created_at.clone(),
            active: self.active.load(Relaxed),
        }
    }
}

/// Shared state a worker needs.
pub(crate) struct Ctx {
    pub stats: Arc<Stats>,
    pub logger: Logger,
    pub drop_log: RateLimit,
    pub invalid_log: RateLimit,
    pub fail_log: RateLimit,
    /// Received messages longer than this are invalid (the event size limit).
    pub max_message_size: usize,
}

/// The client's subscriptions, by id and by Redis key.
pub(crate) struct Registry {
    inner: RwLock<RegInner>,
    pub ctx: Arc<Ctx>,
}

#[derive(Default)]
struct RegInner {
    by_id: HashMap<String, Arc<Entry>>,
    by_key: HashMap<Key, Vec<Arc<Entry>>>,
}

impl Registry {
    pub(crate) fn new(ctx: Arc<Ctx>) -> Self {
        Registry {
            inner: RwLock::new(RegInner::default()),
            ctx,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, RegInner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, RegInner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Every key with at least one subscription: what the server side must match.
    pub(crate) fn keys(&self) -> Vec<Key> {
        self.read().by_key.keys().cloned().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.read().by_id.len()
    }

    pub(crate) fn has_key(&self, key: &Key) -> bool {
        self.read().by_key.contains_key(key)
    }

    /// Create and register a subscription; its worker starts on the shared runtime.
    pub(crate) fn add(
        &self,
        pattern: &str,
        handler: Arc<dyn Handler>,
        options: SubscriptionOptions,
        policy: Policy,
    ) -> Arc<Entry> {
        let (tx, rx) = mpsc::channel(policy.max_pending);
        let active = Arc::new(AtomicBool::new(true));
        let entry = Arc::new(Entry {
            id: crate::event::new_id(),
            pattern: pattern.to_string(),
            key: Key::for_pattern(pattern),
            options,
            created_at: crate::event::now_iso(),
            active: active.clone(),
            tx: std::sync::Mutex::new(Some(tx)),
            worker: std::sync::Mutex::new(None),
            filter: policy.filter.clone(),
        });
        let worker = crate::runtime::spawn(run_worker(
            entry.id.clone(),
            handler,
            policy,
            rx,
            active,
            self.ctx.clone(),
        ));
        *entry.worker.lock().unwrap_or_else(|p| p.into_inner()) = Some(worker);
        let mut g = self.write();
        g.by_id.insert(entry.id.clone(), entry.clone());
        g.by_key
            .entry(entry.key.clone())
            .or_default()
            .push(entry.clone());
        entry
    }

    /// Remove a subscription: no event is handed to it after this returns (queued ones are
    /// discarded; a handler already running finishes in the background).
    pub(crate) fn remove(&self, id: &str) -> Option<Arc<Entry>> {
        let mut g = self.write();
        let e = g.by_id.remove(id)?;
        if let Some(list) = g.by_key.get_mut(&e.key) {
            list.retain(|x| x.id != e.id);
            if list.is_empty() {
                g.by_key.remove(&e.key);
            }
        }
        drop(g);
        e.active.store(false, Relaxed);
        e.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        Some(e)
    }

    /// Events waiting in a subscription's queue (not counting the ones being handled).
    pub(crate) fn queued(&self, id: &str) -> Option<usize> {
        let e = self.get(id)?;
        let tx = e.tx.lock().unwrap_or_else(|p| p.into_inner());
        Some(tx.as_ref().map_or(0, |t| t.max_capacity() - t.capacity()))
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Entry>> {
        self.read().by_id.get(id).cloned()
    }

    pub(crate) fn all(&self) -> Vec<Arc<Entry>> {
        self.read().by_id.values().cloned().collect()
    }

    /// Remove everything, let queued events drain for up to `timeout`, then stop the workers.
    pub(crate) async fn drain_all(&self, timeout: Duration) {
        let entries: Vec<Arc<Entry>> = {
            let mut g = self.write();
            g.by_key.clear();
            g.by_id.drain().map(|(_, e)| e).collect()
        };
        let mut workers = Vec::new();
        for e in &entries {
            // Closing the queue lets the worker finish what is queued, then exit.
            e.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(w) = e.worker.lock().unwrap_or_else(|p| p.into_inner()).take() {
                workers.push(w);
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut late = Vec::new();
        for mut w in workers {
            if late.is_empty() && tokio::time::timeout_at(deadline, &mut w).await.is_ok() {
                continue;
            }
            late.push(w);
        }
        if !late.is_empty() {
            self.ctx.logger.warn(
                "Handlers still running at disconnect timeout; abandoning them",
                &[
                    ("timeoutMs", timeout.as_millis().to_string()),
                    ("subscriptions", late.len().to_string()),
                ],
            );
            for w in &late {
                w.abort();
            }
            for w in late {
                let _ = w.await;
            }
        }
        for e in &entries {
            e.active.store(false, Relaxed);
        }
    }

    /// Hand a message to the subscriptions under its key. Called by the transports for every
    /// message; never blocks. `pattern` is what Redis reported for a pmessage.
    pub(crate) fn dispatch(&self, channel: &str, pattern: Option<&str>, payload: &[u8]) {
        let key = match pattern {
            Some(p) => Key::Pattern(p.to_string()),
            None => Key::Channel(channel.to_string()),
        };
        let g = self.read();
        let Some(entries) = g.by_key.get(&key) else {
            return; // a late message for a key just unsubscribed
        };
        let ctx = &self.ctx;
        let decoded = if payload.len() > ctx.max_message_size {
            Err(Error::validation(format!(
                "message size ({} bytes) exceeds maximum allowed size ({} bytes)",
                payload.len(),
                ctx.max_message_size
            )))
        } else {
            Delivery::decode(channel, pattern, payload)
        };
        let delivery = match decoded {
            Ok(d) => d,
            Err(e) => {
                ctx.stats.invalid.fetch_add(1, Relaxed);
                if let Some(suppressed) = ctx.invalid_log.check() {
                    let prefix: String = String::from_utf8_lossy(&payload[..payload.len().min(64)])
                        .chars()
                        .collect();
                    ctx.logger.warn(
                        "Invalid message ignored",
                        &[
                            ("channel", channel.to_string()),
                            ("reason", e.message().to_string()),
                            ("bytes", payload.len().to_string()),
                            ("prefix", format!("{prefix:?}")),
                            ("suppressed", suppressed.to_string()),
                        ],
                    );
                }
                return;
            }
        };
        ctx.stats.record_received();
        for e in entries {
            if let Some(f) = &e.filter {
                if !f.matches(&delivery) {
                    ctx.stats.filtered.fetch_add(1, Relaxed);
                    continue;
                }
            }
            let tx = e.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let Some(tx) = tx else { continue };
            if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(delivery.clone()) {
                ctx.stats.dropped.fetch_add(1, Relaxed);
                if let Some(suppressed) = ctx.drop_log.check() {
                    ctx.logger.warn(
                        "Subscription queue full; event dropped",
                        &[
                            ("subscription", e.id.clone()),
                            ("pattern", e.pattern.clone()),
                            ("maxPending", tx.max_capacity().to_string()),
                            ("suppressed", suppressed.to_string()),
                        ],
                    );
                }
            }
        }
    }
}

async fn run_worker(
    id: String,
    handler: Arc<dyn Handler>,
    policy: Policy,
    mut rx: mpsc::Receiver<Delivery>,
    active: Arc<AtomicBool>,
    ctx: Arc<Ctx>,
) {
    let policy = Arc::new(policy);
    if policy.concurrency <= 1 {
        let mut buf = Vec::new();
        // Only faces that take batches pull more than one event out of the queue at a time:
        // for the others, what waits stays in the bounded queue (and counts toward maxPending).
        let batch_max = if handler.batched() {
            MAX_HANDLER_BATCH.min(policy.max_pending)
        } else {
            1
        };
        let batched = batch_max > 1;
        while rx.recv_many(&mut buf, batch_max).await > 0 {
            if !active.load(Relaxed) {
                break; // unsubscribed: discard what is queued
            }
            if batched && buf.len() > 1 {
                let events: Vec<Delivery> = std::mem::take(&mut buf);
                let batch = events.clone();
                let futs: Vec<Option<HandlerFuture>> = match std::panic::catch_unwind(
                    AssertUnwindSafe(|| handler.call_batch(batch)),
                ) {
                    Ok(f) if f.len() == events.len() => f.into_iter().map(Some).collect(),
                    // A face that panicked or miscounted: fall back to one call per event.
                    _ => events.iter().map(|_| None).collect(),
                };
                for (d, fut) in events.into_iter().zip(futs) {
                    if !active.load(Relaxed) {
                        break;
                    }
                    run_one(&id, &handler, &policy, d, &ctx, fut).await;
                }
            } else {
                for d in buf.drain(..) {
                    if !active.load(Relaxed) {
                        break;
                    }
                    run_one(&id, &handler, &policy, d, &ctx, None).await;
                }
            }
            buf.clear();
        }
    } else {
        let sem = Arc::new(Semaphore::new(policy.concurrency));
        let mut running = tokio::task::JoinSet::new();
        while let Some(d) = rx.recv().await {
            if !active.load(Relaxed) {
                break;
            }
            let permit = sem.clone().acquire_owned().await.expect("never closed");
            let (id, handler, policy, ctx) =
                (id.clone(), handler.clone(), policy.clone(), ctx.clone());
            running.spawn(async move {
                run_one(&id, &handler, &policy, d, &ctx, None).await;
                drop(permit);
            });
            while running.try_join_next().is_some() {}
        }
        while running.join_next().await.is_some() {}
    }
}

fn latency_ms(d: &Delivery) -> Option<f64> {
    let ts = d.metadata().timestamp.as_deref()?;
    let t = chrono::DateTime::parse_from_rfc3339(ts).ok()?;
    let now = chrono::Utc::now();
    let ms = (now - t.with_timezone(&chrono::Utc)).num_microseconds()? as f64 / 1000.0;
    Some(ms.max(0.0))
}

async fn run_one(
    id: &str,
    handler: &Arc<dyn Handler>,
    p: &Policy,
    d: Delivery,
    ctx: &Ctx,
    mut first: Option<HandlerFuture>,
) {
    if let Some(ms) = latency_ms(&d) {
        ctx.stats.record_latency(ms);
    }
    let mut attempt: u32 = 0;
    let mut delay = p.retry_delay;
    loop {
        let call = match first.take() {
            Some(f) => f,
            None => handler.call(d.clone()),
        };
        let fut = AssertUnwindSafe(call).catch_unwind();
        let outcome = match tokio::time::timeout(p.timeout, fut).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(e.message),
            Ok(Err(_panic)) => Err("handler panicked".to_string()),
            Err(_) => Err(format!(
                "Handler timeout after {} ms",
                p.timeout.as_millis()
            )),
        };
        match outcome {
            Ok(()) => {
                ctx.stats.delivered.fetch_add(1, Relaxed);
                return;
            }
            Err(msg) => {
                if p.retry_on_error && attempt < p.max_retries {
                    attempt += 1;
                    ctx.logger.warn(
                        &format!("Handler error for subscription {id}; retrying"),
                        &[
                            ("error", msg),
                            ("attempt", attempt.to_string()),
                            ("delayMs", delay.as_millis().to_string()),
                        ],
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(p.max_retry_delay);
                    continue;
                }
                ctx.stats.handler_failed.fetch_add(1, Relaxed);
                if let Some(suppressed) = ctx.fail_log.check() {
                    ctx.logger.error(
                        &format!("Handler error for subscription {id}"),
                        &[
                            ("error", msg),
                            ("eventId", d.id().to_string()),
                            ("attempts", (attempt + 1).to_string()),
                            ("suppressed", suppressed.to_string()),
                        ],
                    );
                }
                return;
            }
        }
    }
}
