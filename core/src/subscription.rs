//! Subscriptions: the handler trait the faces implement, the registry that is the source of
//! truth for what the client is subscribed to, and the per-subscription workers.
//!
//! Dispatch never scans subscriptions: a message arrives with the pattern (or channel) Redis
//! reports, which is the registry key; each subscription under that key gets the event once,
//! through its own bounded queue, so a slow handler never blocks the socket reader.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{
    AtomicBool, AtomicUsize, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed,
};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use crate::event::Delivery;
use crate::filter::SubscriptionFilter;
use crate::glob::is_pattern;
use crate::handler::outcomes::{batch_outcomes, BatchOutcome};
pub use crate::handler::{Handler, HandlerError, HandlerFuture, MAX_HANDLER_BATCH};
use crate::logging::{Logger, RateLimit};
pub(crate) use crate::options::Policy;
pub use crate::options::SubscriptionOptions;
use crate::stats::Stats;

/// What the events of a batch fail with when the host drops its reporter before reporting them.
const BATCH_GONE: &str =
    "the handler's host stopped before the handler finished (client disconnected, or its event loop or dispatcher closed)";

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
    /// Process-unique number (cheaper than the id for duplicate tracking).
    seq: u64,
    pub pattern: String,
    pub key: Key,
    pub options: SubscriptionOptions,
    pub created_at: String,
    pub active: Arc<AtomicBool>,
    tx: std::sync::Mutex<Option<mpsc::Sender<Delivery>>>,
    /// Events offered and not yet started: queued, or taken in a batch and waiting their turn.
    /// `maxPending` bounds this, so a face that takes batches holds no more than one that
    /// takes events one at a time.
    waiting: Arc<AtomicUsize>,
    max_pending: usize,
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
    /// Set when events can arrive by two routes (Socket.IO configured).
    seen: Option<std::sync::Mutex<Seen>>,
}

#[derive(Default)]
struct RegInner {
    by_id: HashMap<String, Arc<Entry>>,
    /// SUBSCRIBE keys and PSUBSCRIBE keys, apart, so a received message is looked up by its
    /// borrowed channel or pattern name without building a key.
    channels: HashMap<String, Vec<Arc<Entry>>>,
    patterns: HashMap<String, Vec<Arc<Entry>>>,
}

impl RegInner {
    fn by_channel(&self, channel: &str) -> Option<&Vec<Arc<Entry>>> {
        self.channels.get(channel)
    }
    fn by_pattern(&self, pattern: &str) -> Option<&Vec<Arc<Entry>>> {
        self.patterns.get(pattern)
    }
    fn map_mut<'k>(&mut self, key: &'k Key) -> (&mut HashMap<String, Vec<Arc<Entry>>>, &'k str) {
        match key {
            Key::Channel(c) => (&mut self.channels, c),
            Key::Pattern(p) => (&mut self.patterns, p),
        }
    }
}

impl Registry {
    /// `dedupe`: remember recent event ids per subscription, for clients that receive
    /// events by Redis and by Socket.IO.
    pub(crate) fn new(ctx: Arc<Ctx>, dedupe: bool) -> Self {
        Registry {
            inner: RwLock::new(RegInner::default()),
            ctx,
            seen: dedupe.then(|| std::sync::Mutex::new(Seen::new(DEDUPE_WINDOW))),
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
        let g = self.read();
        let channels = g.channels.keys().map(|c| Key::Channel(c.clone()));
        channels
            .chain(g.patterns.keys().map(|p| Key::Pattern(p.clone())))
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.read().by_id.len()
    }

    pub(crate) fn has_key(&self, key: &Key) -> bool {
        let g = self.read();
        match key {
            Key::Channel(c) => g.channels.contains_key(c),
            Key::Pattern(p) => g.patterns.contains_key(p),
        }
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
        let waiting = Arc::new(AtomicUsize::new(0));
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let entry = Arc::new(Entry {
            id: crate::event::new_id(),
            seq: SEQ.fetch_add(1, Relaxed),
            pattern: pattern.to_string(),
            key: Key::for_pattern(pattern),
            options,
            created_at: crate::event::now_iso(),
            active: active.clone(),
            tx: std::sync::Mutex::new(Some(tx)),
            waiting: waiting.clone(),
            max_pending: policy.max_pending,
            worker: std::sync::Mutex::new(None),
            filter: policy.filter.clone(),
        });
        let worker = crate::runtime::spawn(run_worker(
            entry.id.clone(),
            handler,
            policy,
            (rx, waiting),
            active,
            self.ctx.clone(),
        ));
        *entry.worker.lock().unwrap_or_else(|p| p.into_inner()) = Some(worker);
        let mut g = self.write();
        g.by_id.insert(entry.id.clone(), entry.clone());
        let (map, name) = g.map_mut(&entry.key);
        map.entry(name.to_string()).or_default().push(entry.clone());
        entry
    }

    /// Remove a subscription: no event is handed to it after this returns (queued ones are
    /// discarded; a handler already running finishes in the background).
    pub(crate) fn remove(&self, id: &str) -> Option<Arc<Entry>> {
        let mut g = self.write();
        let e = g.by_id.remove(id)?;
        let (map, name) = g.map_mut(&e.key);
        if let Some(list) = map.get_mut(name) {
            list.retain(|x| x.id != e.id);
            if list.is_empty() {
                map.remove(name);
            }
        }
        drop(g);
        e.active.store(false, Relaxed);
        e.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        Some(e)
    }

    /// Events waiting for a subscription's handler (queued, or handed over in a batch and not
    /// started yet; not counting the ones being handled).
    pub(crate) fn queued(&self, id: &str) -> Option<usize> {
        let e = self.get(id)?;
        let open = e.tx.lock().unwrap_or_else(|p| p.into_inner()).is_some();
        Some(if open { e.waiting.load(Relaxed) } else { 0 })
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Entry>> {
        self.read().by_id.get(id).cloned()
    }

    pub(crate) fn all(&self) -> Vec<Arc<Entry>> {
        self.read().by_id.values().cloned().collect()
    }

    /// Remove everything, let queued events drain for up to `timeout`, then stop the workers.
    /// `None`: stop them now (a handler of this client is the one disconnecting).
    pub(crate) async fn drain_all(&self, timeout: Option<Duration>) {
        let entries: Vec<Arc<Entry>> = {
            let mut g = self.write();
            g.channels.clear();
            g.patterns.clear();
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
        let Some(timeout) = timeout else {
            for e in &entries {
                e.active.store(false, Relaxed); // workers stop before their next event
            }
            for w in &workers {
                w.abort();
            }
            for w in workers {
                let _ = w.await;
            }
            return;
        };
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

    /// Count (and, rate-limited, log) a message that is not a valid event.
    pub(crate) fn count_invalid(&self, channel: &str, payload: &[u8], reason: &str) {
        let ctx = &self.ctx;
        ctx.stats.invalid.fetch_add(1, Relaxed);
        if let Some(suppressed) = ctx.invalid_log.check() {
            let prefix: String = String::from_utf8_lossy(&payload[..payload.len().min(64)])
                .chars()
                .collect();
            ctx.logger.warn(
                "Invalid message ignored",
                &[
                    ("channel", channel.to_string()),
                    ("reason", reason.to_string()),
                    ("bytes", payload.len().to_string()),
                    ("prefix", format!("{prefix:?}")),
                    ("suppressed", suppressed.to_string()),
                ],
            );
        }
    }

    fn decode(&self, channel: &str, pattern: Option<&str>, payload: Vec<u8>) -> Option<Delivery> {
        let max = self.ctx.max_message_size;
        if payload.len() > max {
            let e = format!(
                "message size ({} bytes) exceeds maximum allowed size ({max} bytes)",
                payload.len(),
            );
            self.count_invalid(channel, &payload, &e);
            return None;
        }
        match Delivery::decode_owned(channel, pattern, payload) {
            Ok(d) => Some(d),
            Err((e, payload)) => {
                self.count_invalid(channel, &payload, e.message());
                None
            }
        }
    }

    /// Hand a message to the subscriptions under its key. Called by the transports for every
    /// message; never blocks. `pattern` is what Redis reported for a pmessage.
    pub(crate) fn dispatch(&self, channel: &str, pattern: Option<&str>, payload: Vec<u8>) {
        let g = self.read();
        let entries = match pattern {
            Some(p) => g.by_pattern(p),
            None => g.by_channel(channel),
        };
        let Some(entries) = entries else {
            return; // a late message for a key just unsubscribed
        };
        let Some(delivery) = self.decode(channel, pattern, payload) else {
            return;
        };
        self.ctx.stats.record_received(delivery.received_at());
        crate::runtime::note_activity();
        let mut seen = self
            .seen
            .as_ref()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()));
        for e in entries {
            if let Some(seen) = seen.as_deref_mut() {
                if !seen.first_time(delivery.id(), e.seq) {
                    continue;
                }
            }
            self.offer(e, &delivery);
        }
    }

    /// An event that came over Socket.IO: it goes to the subscriptions whose pattern matches
    /// its type, except those that already had it (same id) from Redis. Its `channel` is the
    /// event type.
    #[cfg(feature = "socketio")]
    pub(crate) fn dispatch_by_type(&self, payload: &[u8]) {
        let Some(delivery) = self.decode("socket.io", None, payload.to_vec()) else {
            return;
        };
        let ty = delivery.event_type().to_string();
        let g = self.read();
        let mut seen = self
            .seen
            .as_ref()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()));
        let mut received = false;
        let exact = g.channels.get(&ty).map(|v| (None, v));
        let globs = g
            .patterns
            .iter()
            .filter(|(p, _)| crate::glob::matches_pattern(p, &ty))
            .map(|(p, v)| (Some(p.as_str()), v));
        for (pattern, entries) in exact.into_iter().chain(globs) {
            let routed = delivery.routed(&ty, pattern);
            for e in entries {
                if let Some(seen) = seen.as_deref_mut() {
                    if !seen.first_time(delivery.id(), e.seq) {
                        continue;
                    }
                }
                if !received {
                    received = true;
                    self.ctx.stats.record_received(delivery.received_at());
                }
                self.offer(e, &routed);
            }
        }
    }

    /// Queue one delivery for one subscription (filter, bound, drop accounting).
    fn offer(&self, e: &Entry, delivery: &Delivery) {
        let ctx = &self.ctx;
        if let Some(f) = &e.filter {
            if !f.matches(delivery) {
                ctx.stats.filtered.fetch_add(1, Relaxed);
                return;
            }
        }
        let tx = e.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(tx) = tx else { return };
        // Never counts past maxPending, even for a moment (pending_events reads it).
        let admitted = e
            .waiting
            .fetch_update(AcqRel, Acquire, |w| (w < e.max_pending).then_some(w + 1))
            .is_ok();
        let full = !admitted
            || match tx.try_send(delivery.clone()) {
                Ok(()) => false,
                Err(err) => {
                    e.waiting.fetch_sub(1, AcqRel);
                    match err {
                        mpsc::error::TrySendError::Full(_) => true,
                        mpsc::error::TrySendError::Closed(_) => return, // unsubscribed
                    }
                }
            };
        if full {
            ctx.stats.dropped.fetch_add(1, Relaxed);
            if let Some(suppressed) = ctx.drop_log.check() {
                ctx.logger.warn(
                    "Subscription queue full; event dropped",
                    &[
                        ("subscription", e.id.clone()),
                        ("pattern", e.pattern.clone()),
                        ("maxPending", e.max_pending.to_string()),
                        ("suppressed", suppressed.to_string()),
                    ],
                );
            }
        }
    }
}

/// How many recent event ids the duplicate check remembers (about 2 MB at most).
const DEDUPE_WINDOW: usize = 16_384;

/// Which subscriptions already had which recent events: with two routes (Redis and Socket.IO)
/// the same event can arrive twice, and each subscription must see it once. Bounded: the
/// oldest ids are forgotten first.
pub(crate) struct Seen {
    by_id: HashMap<Arc<str>, Vec<u64>>,
    order: std::collections::VecDeque<Arc<str>>,
    cap: usize,
}

impl Seen {
    pub(crate) fn new(cap: usize) -> Seen {
        Seen {
            by_id: HashMap::new(),
            order: std::collections::VecDeque::new(),
            cap,
        }
    }

    /// True the first time `(id, subscription)` is offered.
    fn first_time(&mut self, id: &str, sub: u64) -> bool {
        if let Some(subs) = self.by_id.get_mut(id) {
            if subs.contains(&sub) {
                return false;
            }
            subs.push(sub);
            return true;
        }
        if self.order.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
        let id: Arc<str> = Arc::from(id);
        self.by_id.insert(id.clone(), vec![sub]);
        self.order.push_back(id);
        true
    }
}

async fn run_worker(
    id: String,
    handler: Arc<dyn Handler>,
    policy: Policy,
    (mut rx, waiting): (mpsc::Receiver<Delivery>, Arc<AtomicUsize>),
    active: Arc<AtomicBool>,
    ctx: Arc<Ctx>,
) {
    // An event stops counting toward maxPending when its handler starts.
    let started = || {
        waiting.fetch_sub(1, AcqRel);
    };
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
                let (outcomes, futs) = batch_outcomes(events.len(), BATCH_GONE);
                let batch = events.clone();
                let mut futs: Vec<Option<BatchOutcome>> = futs.into_iter().map(Some).collect();
                // Give up, in order, the events the host has not claimed: those are then called
                // on their own (`None`); a claimed one stays, to be awaited. The host claims in
                // order too and stops at the first claim that fails, so what it runs is a prefix
                // and nothing it skipped runs twice or out of order.
                let give_up = |futs: &mut [Option<BatchOutcome>]| {
                    for f in futs {
                        if f.as_ref().is_some_and(BatchOutcome::abandon) {
                            *f = None;
                        }
                    }
                };
                if std::panic::catch_unwind(AssertUnwindSafe(|| handler.run_batch(batch, outcomes)))
                    .is_err()
                {
                    give_up(&mut futs);
                }
                for (k, d) in events.into_iter().enumerate() {
                    if !active.load(Relaxed) {
                        break; // the futures left are dropped: the host skips those events
                    }
                    started();
                    let first = futs[k].take().map(|f| Box::pin(f) as HandlerFuture);
                    if run_one(&id, &handler, &policy, d, &ctx, first).await {
                        // The host is still in the handler that timed out and would reach the
                        // rest only after it.
                        give_up(&mut futs[k + 1..]);
                    }
                }
            } else {
                for d in buf.drain(..) {
                    if !active.load(Relaxed) {
                        break;
                    }
                    started();
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
            started();
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

/// Run `d`'s handler (starting with `first`, a batch's future, when given) with the timeout and
/// retries of `p`, and count the outcome. True when `first` timed out: the host is then still
/// busy with this event.
async fn run_one(
    id: &str,
    handler: &Arc<dyn Handler>,
    p: &Policy,
    d: Delivery,
    ctx: &Ctx,
    mut first: Option<HandlerFuture>,
) -> bool {
    if let Some(ms) = latency_ms(&d) {
        ctx.stats.record_latency(ms);
    }
    let mut attempt: u32 = 0;
    let mut delay = p.retry_delay;
    let mut batch_call_timed_out = false;
    loop {
        let from_batch = first.is_some();
        let call = match first.take() {
            Some(f) => f,
            None => handler.call(d.clone()),
        };
        let fut = AssertUnwindSafe(call).catch_unwind();
        let outcome = match tokio::time::timeout(p.timeout, fut).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(e.message),
            Ok(Err(_panic)) => Err("handler panicked".to_string()),
            Err(_) => {
                batch_call_timed_out |= from_batch;
                Err(format!(
                    "Handler timeout after {} ms",
                    p.timeout.as_millis()
                ))
            }
        };
        match outcome {
            Ok(()) => {
                ctx.stats.delivered.fetch_add(1, Relaxed);
                return batch_call_timed_out;
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
                return batch_call_timed_out;
            }
        }
    }
}
