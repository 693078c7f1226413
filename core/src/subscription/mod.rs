//! Subscriptions: the registry that is the source of truth for what the client is subscribed
//! to, by id and by the Redis key (channel or pattern) each one needs.
//!
//! Dispatch never scans subscriptions: a message arrives with the pattern (or channel) Redis
//! reports, which is the registry key; each subscription under that key gets the event once,
//! through its own bounded queue, so a slow handler never blocks the socket reader. The jobs:
//! - this file: [`Key`], [`SubscriptionInfo`], the registry and a subscription's lifecycle
//!   (add, remove, drain at disconnect);
//! - `dispatch`: a received message decoded and handed to the subscriptions under its key
//!   (or, from Socket.IO, to those whose pattern matches its type);
//! - `worker`: each subscription's bounded queue and the worker that runs its handler
//!   (ordering, concurrency, batches, timeout, retries, drops);
//! - `seen`: the duplicate check for events that arrive both by Redis and by Socket.IO.
//!
//! The handler contract itself ([`Handler`], [`HandlerError`]) lives in `crate::handler`; the
//! options ([`SubscriptionOptions`]) and what the core makes of them (`Policy`) in
//! `crate::options`. Both are re-exported here.

mod dispatch;
mod seen;
mod worker;
pub(crate) use worker::run_handler;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::event::Delivery;
use crate::filter::SubscriptionFilter;
use crate::glob::is_pattern;
pub use crate::handler::{Handler, HandlerError, HandlerFuture, MAX_HANDLER_BATCH};
use crate::logging::{Logger, RateLimit};
pub(crate) use crate::options::Policy;
pub use crate::options::SubscriptionOptions;
use crate::stats::Stats;
use seen::{Seen, DEDUPE_WINDOW};

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
        let worker = crate::runtime::spawn(worker::run_worker(
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
}
