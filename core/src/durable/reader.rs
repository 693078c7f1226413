//! A durable subscription's tasks, per event type: the reader (own connection: `XREADGROUP
//! BLOCK`), the claimer (`XAUTOCLAIM` every `claimInterval`, plus group upkeep) and the
//! worker that runs the handler and acknowledges or dead-letters each entry.
//!
//! Backpressure: at most `max(count, concurrency)` entries are held (read, not finished) per
//! type; the reader and claimer wait for room, so nothing is ever dropped: what is not read
//! stays in the stream, what is not finished stays pending in the group.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Value;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::JoinHandle;

use super::value::{self, id_cmp, StreamEntry};
use super::{dead_key, seen_key, stream_key, DurableStats};
use crate::error::Result;
use crate::event::Delivery;
use crate::handler::Handler;
use crate::options::{DurablePolicy, Policy, StartFrom};
use crate::state::{Emitter, Link, StateEvent};
use crate::subscription::{run_handler, Ctx, SubscriptionInfo};
use crate::transport::redis::streams::Streams;

/// How long upkeep commands may keep retrying through an outage before giving up this round.
const PATIENCE: Duration = Duration::from_secs(10);

/// Counters of one durable subscription.
#[derive(Default)]
pub(crate) struct Counters {
    pub dead_lettered: AtomicU64,
    pub reclaimed: AtomicU64,
    /// Per type: (pending, lag or u64::MAX for unknown), from the last upkeep.
    pub group_state: Mutex<Vec<(String, u64, Option<u64>)>>,
}

/// A live durable subscription.
pub(crate) struct DurableSub {
    pub info: SubscriptionInfo,
    pub types: Vec<String>,
    pub policy: Arc<DurablePolicy>,
    pub counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    readers: Mutex<Vec<JoinHandle<()>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl DurableSub {
    pub(crate) fn stats(&self) -> DurableStats {
        let g = self
            .counters
            .group_state
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let pending = g.iter().map(|(_, p, _)| p).sum();
        let lag = g.iter().try_fold(0u64, |acc, (_, _, l)| l.map(|l| acc + l));
        DurableStats {
            id: self.info.id.clone(),
            group: self.policy.group.clone(),
            consumer: self.policy.consumer.clone(),
            types: self.types.clone(),
            pending,
            lag: if g.is_empty() { None } else { lag },
            dead_lettered: self.counters.dead_lettered.load(Relaxed),
            reclaimed: self.counters.reclaimed.load(Relaxed),
        }
    }

    /// Stop reading; let entries in hand finish for up to `drain` (then abandon them: they
    /// stay pending and are redelivered), or stop at once for `None`.
    pub(crate) async fn stop(&self, drain: Option<Duration>) {
        let _ = self.stop.send(true);
        let readers: Vec<_> =
            std::mem::take(&mut *self.readers.lock().unwrap_or_else(|p| p.into_inner()));
        for r in &readers {
            r.abort();
        }
        for r in readers {
            let _ = r.await;
        }
        let workers: Vec<_> =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        match drain {
            None => {
                for w in &workers {
                    w.abort();
                }
                for w in workers {
                    let _ = w.await;
                }
            }
            Some(d) => {
                let deadline = tokio::time::Instant::now() + d;
                for mut w in workers {
                    if tokio::time::timeout_at(deadline, &mut w).await.is_err() {
                        w.abort();
                        let _ = w.await;
                    }
                }
            }
        }
    }
}

/// What every task of one type shares.
struct TypeCtx {
    sub_id: String,
    event_type: String,
    key: String,
    dead: String,
    prefix: String,
    max_len: u64,
    dp: Arc<DurablePolicy>,
    policy: Arc<Policy>,
    handler: Arc<dyn Handler>,
    ctx: Arc<Ctx>,
    emitter: Arc<Emitter>,
    counters: Arc<Counters>,
    /// Commands other than the blocking read.
    ops: Streams,
    /// Entries read and not finished.
    held: AtomicUsize,
    room: Notify,
    /// Ids in hand (so a claim never hands the same entry out twice at once).
    in_hand: Mutex<HashSet<String>>,
    bound: usize,
}

/// An entry for the worker.
struct Work {
    id: String,
    event: Option<String>,
    attempt: u32,
}

/// Everything `start` needs.
pub(crate) struct Start {
    pub info: SubscriptionInfo,
    pub types: Vec<String>,
    pub dp: DurablePolicy,
    pub policy: Policy,
    pub handler: Arc<dyn Handler>,
    pub ctx: Arc<Ctx>,
    pub emitter: Arc<Emitter>,
    pub prefix: String,
    pub max_len: u64,
    /// Makes a new set of stream connections.
    pub streams: Box<dyn Fn() -> Result<Streams> + Send + Sync>,
}

/// Create the groups (so the subscription counts from now on), then start the tasks.
pub(crate) async fn start(s: Start) -> Result<Arc<DurableSub>> {
    let dp = Arc::new(s.dp);
    let policy = Arc::new(s.policy);
    let counters = Arc::new(Counters::default());
    let (stop, stop_rx) = watch::channel(false);
    let mut readers = Vec::new();
    let mut workers = Vec::new();
    let mut made = Vec::new();
    for t in &s.types {
        let key = stream_key(&s.prefix, t);
        let ops = (s.streams)()?;
        create_group(&ops, &key, &dp).await?;
        made.push((t.clone(), key, ops, (s.streams)()?));
    }
    for (t, key, ops, reads) in made {
        let bound = dp.count.max(policy.concurrency);
        let tc = Arc::new(TypeCtx {
            sub_id: s.info.id.clone(),
            event_type: t.clone(),
            dead: dead_key(&s.prefix, &t),
            key,
            prefix: s.prefix.clone(),
            max_len: s.max_len,
            dp: dp.clone(),
            policy: policy.clone(),
            handler: s.handler.clone(),
            ctx: s.ctx.clone(),
            emitter: s.emitter.clone(),
            counters: counters.clone(),
            ops,
            held: AtomicUsize::new(0),
            room: Notify::new(),
            in_hand: Mutex::default(),
            bound,
        });
        let (tx, rx) = mpsc::channel::<Work>(bound + 1);
        readers.push(crate::runtime::spawn(read_loop(
            tc.clone(),
            reads,
            tx.clone(),
            stop_rx.clone(),
        )));
        readers.push(crate::runtime::spawn(claim_loop(
            tc.clone(),
            tx,
            stop_rx.clone(),
        )));
        workers.push(crate::runtime::spawn(work_loop(tc, rx)));
    }
    Ok(Arc::new(DurableSub {
        info: s.info,
        types: s.types,
        policy: dp,
        counters,
        stop,
        readers: Mutex::new(readers),
        workers: Mutex::new(workers),
    }))
}

async fn create_group(ops: &Streams, key: &str, dp: &DurablePolicy) -> Result<()> {
    let mut cmd = redis::cmd("XGROUP");
    cmd.arg("CREATE").arg(key).arg(&dp.group);
    match dp.start_from {
        StartFrom::New => {
            cmd.arg("$").arg("MKSTREAM");
        }
        StartFrom::All => {
            // Entries trimmed before the group existed were never its to read: say so with
            // ENTRIESREAD, or they would count as trimmed unread.
            let mut info = redis::cmd("XINFO");
            info.arg("STREAM").arg(key);
            let gone = match ops
                .query_patiently::<Value>(key, &info, "XINFO STREAM", PATIENCE)
                .await
            {
                Ok(v) => {
                    let added = value::field(&v, "entries-added")
                        .and_then(value::number)
                        .unwrap_or(0);
                    let length = value::field(&v, "length")
                        .and_then(value::number)
                        .unwrap_or(0);
                    (added - length).max(0)
                }
                Err(_) => 0, // no stream yet
            };
            cmd.arg("0").arg("MKSTREAM").arg("ENTRIESREAD").arg(gone);
        }
    }
    match ops
        .query_patiently::<Value>(key, &cmd, "XGROUP CREATE", PATIENCE)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.message().contains("BUSYGROUP") => Ok(()),
        Err(e) => Err(e),
    }
}

impl TypeCtx {
    fn warn(&self, what: &str, e: &crate::error::Error) {
        if let Some(suppressed) = self.ctx.fail_log.check() {
            self.ctx.logger.warn(
                what,
                &[
                    ("stream", self.key.clone()),
                    ("group", self.dp.group.clone()),
                    ("error", e.to_string()),
                    ("suppressed", suppressed.to_string()),
                ],
            );
        }
    }

    /// Wait until fewer than `bound` entries are held; how many more may be taken.
    async fn wait_room(&self) -> usize {
        loop {
            let notified = self.room.notified();
            let held = self.held.load(Acquire);
            if held < self.bound {
                return self.bound - held;
            }
            notified.await;
        }
    }

    fn release(&self, id: &str) {
        self.in_hand
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.held.fetch_sub(1, AcqRel);
        self.room.notify_waiters();
    }

    /// Delivery counts of `ids` (XPENDING), by id.
    async fn attempts(&self, ids: &[String]) -> std::collections::HashMap<String, u32> {
        let mut out = std::collections::HashMap::new();
        let (Some(first), Some(last)) = (
            ids.iter().min_by(|a, b| id_cmp(a, b)),
            ids.iter().max_by(|a, b| id_cmp(a, b)),
        ) else {
            return out;
        };
        let mut cmd = redis::cmd("XPENDING");
        cmd.arg(&self.key)
            .arg(&self.dp.group)
            .arg(first)
            .arg(last)
            .arg(ids.len().max(1) * 4)
            .arg(&self.dp.consumer);
        if let Ok(v) = self
            .ops
            .query_patiently::<Value>(&self.key, &cmd, "XPENDING", PATIENCE)
            .await
        {
            for row in value::items(&v) {
                let r = value::items(row);
                if let (Some(id), Some(n)) = (
                    r.first().and_then(value::text),
                    r.get(3).and_then(value::number),
                ) {
                    out.insert(id, n.max(1) as u32);
                }
            }
        }
        out
    }

    /// Hand `entries` to the worker (`attempts` known, or looked up).
    async fn hand(&self, tx: &mpsc::Sender<Work>, entries: Vec<StreamEntry>, fresh: bool) -> bool {
        let ids: Vec<String> = entries.iter().map(|(id, _)| id.clone()).collect();
        let attempts = if fresh {
            Default::default()
        } else {
            self.attempts(&ids).await
        };
        for (id, fields) in entries {
            {
                let mut in_hand = self.in_hand.lock().unwrap_or_else(|p| p.into_inner());
                if !in_hand.insert(id.clone()) {
                    continue; // already being handled here
                }
            }
            self.held.fetch_add(1, AcqRel);
            let event =
                fields.and_then(|f| f.into_iter().find(|(k, _)| k == "event").map(|(_, v)| v));
            let attempt = attempts.get(&id).copied().unwrap_or(1);
            if tx.send(Work { id, event, attempt }).await.is_err() {
                return false;
            }
        }
        true
    }

    fn trimmed(&self, n: u64, how: &str) {
        if n == 0 {
            return;
        }
        self.ctx.stats.trimmed_unread.fetch_add(n, Relaxed);
        let message = format!(
            "{n} entries of stream \"{}\" were trimmed ({how}) before group \"{}\" handled them",
            self.key, self.dp.group
        );
        self.ctx.logger.warn(&message, &[]);
        self.emitter.emit(StateEvent::Error {
            connection: Link::Subscriber,
            message,
            code: Some("EVENTS_TRIMMED".into()),
        });
    }
}

/// The reader: own pending entries first (from `0`), then new ones (`>`), blocking.
async fn read_loop(
    tc: Arc<TypeCtx>,
    reads: Streams,
    tx: mpsc::Sender<Work>,
    mut stop: watch::Receiver<bool>,
) {
    let mut cursor = "0".to_string();
    let mut draining = true;
    let mut trim_mark: Option<(String, u64)> = None;
    let mut last_check: Option<Instant> = None;
    let mut delay = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            return;
        }
        let room = tokio::select! {
            r = tc.wait_room() => r,
            _ = stop.changed() => return,
        };
        let n = room.min(tc.dp.count);
        if !draining && last_check.is_none_or(|t| t.elapsed() >= tc.dp.claim_interval) {
            last_check = Some(Instant::now());
            check_trimmed(&tc, &mut trim_mark).await;
        }
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&tc.dp.group)
            .arg(&tc.dp.consumer)
            .arg("COUNT")
            .arg(n);
        if !draining {
            cmd.arg("BLOCK").arg(tc.dp.block.as_millis() as u64);
        }
        cmd.arg("STREAMS")
            .arg(&tc.key)
            .arg(if draining { cursor.as_str() } else { ">" });
        let wait = tc.dp.block + tc.ctx_timeout();
        let r = tokio::select! {
            r = reads.query::<Value>(&tc.key, &cmd, "XREADGROUP", wait) => r,
            _ = stop.changed() => return,
        };
        match r {
            Ok(v) => {
                delay = Duration::from_millis(100);
                let entries = value::read_reply(&v);
                if draining {
                    if entries.is_empty() {
                        draining = false;
                        continue;
                    }
                    if let Some((id, _)) = entries.last() {
                        cursor = id.clone();
                    }
                    if !tc.hand(&tx, entries, false).await {
                        return;
                    }
                } else if !tc.hand(&tx, entries, true).await {
                    return;
                }
            }
            Err(e) => {
                if e.message().contains("NOGROUP") {
                    // The stream or group was deleted: make it again.
                    let _ = create_group(&tc.ops, &tc.key, &tc.dp).await;
                } else {
                    tc.warn("Durable read failed; retrying", &e);
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(2));
                // After an outage, our own pending entries first again.
                draining = true;
                cursor = "0".into();
            }
        }
    }
}

impl TypeCtx {
    fn ctx_timeout(&self) -> Duration {
        Duration::from_secs(5)
    }
}

/// Entries trimmed before the group read them. Trimming (`MAXLEN`/`MINID`) removes the
/// oldest entries, so when the stream's first entry is past the group's `last-delivered-id`,
/// every entry between them is gone unread: `entries-added - entries-read - length` of them.
/// (`max-deleted-entry-id` only tracks `XDEL`, not trimming.)
async fn check_trimmed(tc: &TypeCtx, mark: &mut Option<(String, u64)>) {
    let mut xs = redis::cmd("XINFO");
    xs.arg("STREAM").arg(&tc.key);
    let Ok(stream) = tc
        .ops
        .query_patiently::<Value>(&tc.key, &xs, "XINFO STREAM", PATIENCE)
        .await
    else {
        return;
    };
    let mut xg = redis::cmd("XINFO");
    xg.arg("GROUPS").arg(&tc.key);
    let Ok(groups) = tc
        .ops
        .query_patiently::<Value>(&tc.key, &xg, "XINFO GROUPS", PATIENCE)
        .await
    else {
        return;
    };
    let Some(group) = value::items(&groups).iter().find(|g| {
        value::field(g, "name").and_then(value::text).as_deref() == Some(tc.dp.group.as_str())
    }) else {
        return;
    };
    let last = value::field(group, "last-delivered-id")
        .and_then(value::text)
        .unwrap_or_default();
    let first = value::field(&stream, "first-entry")
        .and_then(|e| value::items(e).first().and_then(value::text));
    let newest = value::field(&stream, "last-generated-id")
        .and_then(value::text)
        .unwrap_or_default();
    let gone_past_last = match &first {
        Some(f) => id_cmp(f, &last) == std::cmp::Ordering::Greater,
        None => id_cmp(&newest, &last) == std::cmp::Ordering::Greater,
    };
    if !gone_past_last {
        return;
    }
    let added = value::field(&stream, "entries-added")
        .and_then(value::number)
        .unwrap_or(0);
    let length = value::field(&stream, "length")
        .and_then(value::number)
        .unwrap_or(0);
    let Some(read) = value::field(group, "entries-read").and_then(value::number) else {
        return;
    };
    let lost = (added - read - length).max(0) as u64;
    let before = match mark {
        Some((at, n)) if *at == last => *n,
        _ => 0,
    };
    if lost > before {
        tc.trimmed(lost - before, "maxLen or ttl");
    }
    *mark = Some((last, lost));
}

/// The claimer: every `claimInterval`, entries idle longer than `minIdleTime` in the group
/// (a member that died or failed) come to this member; plus upkeep (group stats, idle
/// consumers removed).
async fn claim_loop(tc: Arc<TypeCtx>, tx: mpsc::Sender<Work>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(tc.dp.claim_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let mut cursor = "0-0".to_string();
        loop {
            let room = tokio::select! {
                r = tc.wait_room() => r,
                _ = stop.changed() => return,
            };
            let mut cmd = redis::cmd("XAUTOCLAIM");
            cmd.arg(&tc.key)
                .arg(&tc.dp.group)
                .arg(&tc.dp.consumer)
                .arg(tc.dp.min_idle_time.as_millis() as u64)
                .arg(&cursor)
                .arg("COUNT")
                .arg(room.min(tc.dp.count));
            let v = match tc
                .ops
                .query_patiently::<Value>(&tc.key, &cmd, "XAUTOCLAIM", PATIENCE)
                .await
            {
                Ok(v) => v,
                Err(e) => {
                    if e.message().contains("NOGROUP") {
                        let _ = create_group(&tc.ops, &tc.key, &tc.dp).await;
                    } else {
                        tc.warn("Durable claim failed; retrying next interval", &e);
                    }
                    break;
                }
            };
            let parts = value::items(&v);
            let next = parts
                .first()
                .and_then(value::text)
                .unwrap_or_else(|| "0-0".into());
            let claimed = parts.get(1).map(value::entries).unwrap_or_default();
            let deleted = parts.get(2).map(|d| value::items(d).len()).unwrap_or(0);
            tc.trimmed(deleted as u64, "while pending");
            let fresh: Vec<StreamEntry> = {
                let in_hand = tc.in_hand.lock().unwrap_or_else(|p| p.into_inner());
                claimed
                    .into_iter()
                    .filter(|(id, _)| !in_hand.contains(id))
                    .collect()
            };
            let n = fresh.len() as u64;
            if n > 0 {
                tc.counters.reclaimed.fetch_add(n, Relaxed);
                tc.ctx.stats.reclaimed.fetch_add(n, Relaxed);
                if !tc.hand(&tx, fresh, false).await {
                    return;
                }
            }
            if next == "0-0" {
                break;
            }
            cursor = next;
        }
        upkeep(&tc).await;
    }
}

/// Group stats for `getStats()`, and consumers idle for long with nothing pending removed.
async fn upkeep(tc: &TypeCtx) {
    let mut xg = redis::cmd("XINFO");
    xg.arg("GROUPS").arg(&tc.key);
    if let Ok(groups) = tc
        .ops
        .query_patiently::<Value>(&tc.key, &xg, "XINFO GROUPS", PATIENCE)
        .await
    {
        if let Some(g) = value::items(&groups).iter().find(|g| {
            value::field(g, "name").and_then(value::text).as_deref() == Some(tc.dp.group.as_str())
        }) {
            let pending = value::field(g, "pending")
                .and_then(value::number)
                .unwrap_or(0)
                .max(0) as u64;
            let lag = value::field(g, "lag")
                .and_then(value::number)
                .map(|l| l.max(0) as u64);
            let mut st = tc
                .counters
                .group_state
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match st.iter_mut().find(|(t, _, _)| *t == tc.event_type) {
                Some(e) => *e = (tc.event_type.clone(), pending, lag),
                None => st.push((tc.event_type.clone(), pending, lag)),
            }
        }
    }
    let mut xc = redis::cmd("XINFO");
    xc.arg("CONSUMERS").arg(&tc.key).arg(&tc.dp.group);
    let Ok(consumers) = tc
        .ops
        .query_patiently::<Value>(&tc.key, &xc, "XINFO CONSUMERS", PATIENCE)
        .await
    else {
        return;
    };
    let limit = (tc.dp.min_idle_time * 10)
        .max(Duration::from_secs(3600))
        .as_millis() as i64;
    for c in value::items(&consumers) {
        let name = value::field(c, "name")
            .and_then(value::text)
            .unwrap_or_default();
        let pending = value::field(c, "pending")
            .and_then(value::number)
            .unwrap_or(1);
        let idle = value::field(c, "idle").and_then(value::number).unwrap_or(0);
        if name != tc.dp.consumer && pending == 0 && idle > limit {
            let mut cmd = redis::cmd("XGROUP");
            cmd.arg("DELCONSUMER")
                .arg(&tc.key)
                .arg(&tc.dp.group)
                .arg(&name);
            let _ = tc
                .ops
                .query_patiently::<Value>(&tc.key, &cmd, "XGROUP DELCONSUMER", PATIENCE)
                .await;
        }
    }
}

/// The worker: runs the handler for each entry (in order, or up to `concurrency` at once).
async fn work_loop(tc: Arc<TypeCtx>, mut rx: mpsc::Receiver<Work>) {
    if tc.policy.concurrency <= 1 {
        while let Some(w) = rx.recv().await {
            handle(&tc, w).await;
        }
        return;
    }
    let sem = Arc::new(Semaphore::new(tc.policy.concurrency));
    let mut running = tokio::task::JoinSet::new();
    while let Some(w) = rx.recv().await {
        let permit = sem.clone().acquire_owned().await.expect("never closed");
        let tc = tc.clone();
        running.spawn(async move {
            handle(&tc, w).await;
            drop(permit);
        });
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
}

/// One entry: decode, filter, dedupe, run, then acknowledge, leave pending or dead-letter.
async fn handle(tc: &TypeCtx, w: Work) {
    let id = w.id.clone();
    handle_inner(tc, w).await;
    tc.release(&id);
}

async fn handle_inner(tc: &TypeCtx, w: Work) {
    let Some(text) = w.event else {
        // The entry is gone from the stream (trimmed while pending) or has no event field.
        tc.trimmed(1, "while pending");
        ack(tc, &w.id).await;
        return;
    };
    tc.ctx.stats.record_received(Instant::now());
    let info = crate::event::DeliveryInfo {
        attempt: w.attempt,
        stream_id: w.id.clone(),
        group: tc.dp.group.clone(),
    };
    let d = match Delivery::decode_durable(&tc.event_type, text.clone(), info) {
        Ok(d) => d,
        Err(e) => {
            tc.ctx.stats.invalid.fetch_add(1, Relaxed);
            let error = serde_json::json!({"message": format!("invalid event: {}", e.message()), "code": "INVALID_EVENT"});
            dead_letter(tc, &w.id, &text, error, w.attempt).await;
            return;
        }
    };
    if let Some(f) = &tc.policy.filter {
        if !f.matches(&d) {
            tc.ctx.stats.filtered.fetch_add(1, Relaxed);
            ack(tc, &w.id).await;
            return;
        }
    }
    let seen = tc
        .dp
        .idempotent
        .then(|| seen_key(&tc.prefix, &tc.event_type, &tc.dp.group, d.id()));
    if let Some(k) = &seen {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(k);
        if let Ok(1) = tc
            .ops
            .query_patiently::<i64>(k, &cmd, "EXISTS", PATIENCE)
            .await
        {
            tc.ctx.logger.debug(
                "Durable event already handled by this group; skipped",
                &[("eventId", d.id().to_string()), ("streamId", w.id.clone())],
            );
            ack(tc, &w.id).await;
            return;
        }
    }
    match run_handler(&tc.sub_id, &tc.handler, &tc.policy, d, &tc.ctx).await {
        None => {
            if let Some(k) = &seen {
                let mut cmd = redis::cmd("SET");
                cmd.arg(k)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(tc.dp.idempotent_ttl.as_millis() as u64);
                let _ = tc
                    .ops
                    .query_patiently::<Value>(k, &cmd, "SET", PATIENCE)
                    .await;
            }
            ack(tc, &w.id).await;
        }
        Some(message) => {
            if w.attempt >= tc.dp.max_deliveries {
                let error = serde_json::json!({"message": message});
                dead_letter(tc, &w.id, &text, error, w.attempt).await;
            }
            // Otherwise it stays pending: claimed again after minIdleTime.
        }
    }
}

async fn ack(tc: &TypeCtx, id: &str) {
    let mut cmd = redis::cmd("XACK");
    cmd.arg(&tc.key).arg(&tc.dp.group).arg(id);
    if let Err(e) = tc
        .ops
        .query_patiently::<Value>(&tc.key, &cmd, "XACK", PATIENCE)
        .await
    {
        tc.warn("XACK failed; the entry will be delivered again", &e);
    }
}

async fn dead_letter(
    tc: &TypeCtx,
    id: &str,
    event: &str,
    error: serde_json::Value,
    deliveries: u32,
) {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(&tc.dead)
        .arg("MAXLEN")
        .arg("~")
        .arg(tc.max_len)
        .arg("*")
        .arg("event")
        .arg(event)
        .arg("error")
        .arg(error.to_string())
        .arg("deliveries")
        .arg(deliveries)
        .arg("failedAt")
        .arg(crate::stats::now_ms())
        .arg("streamId")
        .arg(id)
        .arg("group")
        .arg(&tc.dp.group);
    // XADD is not repeated on a lost connection (it could land twice): the entry then stays
    // pending and is dead-lettered on its next failure.
    if let Err(e) = tc
        .ops
        .query::<Value>(&tc.dead, &cmd, "XADD", Duration::from_secs(5))
        .await
    {
        tc.warn("Dead-lettering failed; the entry stays pending", &e);
        return;
    }
    ack(tc, id).await;
    tc.counters.dead_lettered.fetch_add(1, Relaxed);
    tc.ctx.stats.dead_lettered.fetch_add(1, Relaxed);
    let message = format!(
        "event {id} of stream \"{}\" dead-lettered for group \"{}\" after {deliveries} deliveries: {}",
        tc.key,
        tc.dp.group,
        error.get("message").and_then(|m| m.as_str()).unwrap_or("")
    );
    tc.ctx.logger.error(&message, &[]);
    tc.emitter.emit(StateEvent::Error {
        connection: Link::Subscriber,
        message,
        code: Some("DEAD_LETTERED".into()),
    });
}
