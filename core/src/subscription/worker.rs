//! Each subscription's queue and the worker task that runs its handler.
//!
//! The queue is bounded by `maxPending`: an event that does not fit is dropped (counted and
//! logged, rate-limited), so a slow handler costs its own events, never the socket reader.
//! The worker runs the handler in order (`concurrency` 1, taking batches when the face runs
//! them in one crossing) or up to `concurrency` at once, each run bounded by the timeout and
//! retried with a doubling delay up to `maxRetries`.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{
    AtomicBool, AtomicUsize, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed,
};
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::{mpsc, Semaphore};

use super::{Ctx, Entry, Policy, Registry};
use crate::event::Delivery;
use crate::handler::outcomes::{batch_outcomes_counted, BatchOutcome};
use crate::handler::{Handler, HandlerFuture, MAX_HANDLER_BATCH};
use crate::metrics::SubscriptionMetrics;

/// What the events of a batch fail with when the host drops its reporter before reporting them.
const BATCH_GONE: &str =
    "the handler's host stopped before the handler finished (client disconnected, or its event loop or dispatcher closed)";

impl Registry {
    /// Queue one delivery for one subscription (filter, bound, drop accounting).
    pub(super) fn offer(&self, e: &Entry, delivery: &Delivery) {
        let ctx = &self.ctx;
        if let Some(f) = &e.filter {
            if !f.matches(delivery) {
                ctx.stats.filtered.fetch_add(1, Relaxed);
                e.metrics.filtered.fetch_add(1, Relaxed);
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
            e.metrics.dropped.fetch_add(1, Relaxed);
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

/// A subscription's worker: runs until its queue closes (unsubscribe or disconnect) or it is
/// told to stop (`active` false: what is still queued is discarded).
pub(super) async fn run_worker(
    id: String,
    handler: Arc<dyn Handler>,
    policy: Policy,
    (mut rx, waiting): (mpsc::Receiver<Delivery>, Arc<AtomicUsize>),
    active: Arc<AtomicBool>,
    (ctx, metrics): (Arc<Ctx>, Arc<SubscriptionMetrics>),
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
                let (outcomes, futs) = batch_outcomes_counted(
                    events.len(),
                    BATCH_GONE,
                    Some(crate::stats::LateCompletions(ctx.stats.clone())),
                );
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
                    if run_one(&id, &handler, &policy, d, (&ctx, &metrics), first).await {
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
                    run_one(&id, &handler, &policy, d, (&ctx, &metrics), None).await;
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
            let (id, handler, policy, ctx, metrics) = (
                id.clone(),
                handler.clone(),
                policy.clone(),
                ctx.clone(),
                metrics.clone(),
            );
            running.spawn(async move {
                run_one(&id, &handler, &policy, d, (&ctx, &metrics), None).await;
                drop(permit);
            });
            while running.try_join_next().is_some() {}
        }
        while running.join_next().await.is_some() {}
    }
}

/// Microseconds from the event's `metadata.timestamp` to now (0 when its clock is ahead).
fn latency_us(d: &Delivery) -> Option<u64> {
    let ts = d.metadata().timestamp.as_deref()?;
    let t = chrono::DateTime::parse_from_rfc3339(ts).ok()?;
    let now = chrono::Utc::now();
    let us = (now - t.with_timezone(&chrono::Utc)).num_microseconds()?;
    Some(us.max(0) as u64)
}

/// Run `d`'s handler with the timeout and retries of `p` (a durable subscription's one
/// delivery): `None` on success, else the last failure's message.
pub(crate) async fn run_handler(
    id: &str,
    handler: &Arc<dyn Handler>,
    p: &Policy,
    d: Delivery,
    ctx: (&Ctx, &SubscriptionMetrics),
) -> Option<String> {
    run_one_outcome(id, handler, p, d, ctx, None).await.1
}

async fn run_one(
    id: &str,
    handler: &Arc<dyn Handler>,
    p: &Policy,
    d: Delivery,
    ctx: (&Ctx, &SubscriptionMetrics),
    first: Option<HandlerFuture>,
) -> bool {
    run_one_outcome(id, handler, p, d, ctx, first).await.0
}

/// Run `d`'s handler (starting with `first`, a batch's future, when given) with the timeout and
/// retries of `p`, and count the outcome. True when `first` timed out: the host is then still
/// busy with this event. Also the last failure's message, when it failed.
async fn run_one_outcome(
    id: &str,
    handler: &Arc<dyn Handler>,
    p: &Policy,
    d: Delivery,
    (ctx, m): (&Ctx, &SubscriptionMetrics),
    mut first: Option<HandlerFuture>,
) -> (bool, Option<String>) {
    if let Some(us) = latency_us(&d) {
        ctx.stats.latency.record_us(us);
        m.latency.record_us(us);
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
        let mut fut = Box::pin(AssertUnwindSafe(call).catch_unwind());
        let began = std::time::Instant::now();
        let result = tokio::time::timeout(p.timeout, fut.as_mut()).await;
        if result.is_err() {
            crate::handler::drop_on_timeout(fut); // faces tell their handler to stop
        } else {
            drop(fut);
        }
        let took = began.elapsed();
        ctx.stats.handler.record(took);
        m.handler.record(took);
        let outcome = match result {
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
                m.delivered.fetch_add(1, Relaxed);
                return (batch_call_timed_out, None);
            }
            Err(msg) => {
                if p.retry_on_error && attempt < p.max_retries {
                    attempt += 1;
                    m.retries.fetch_add(1, Relaxed);
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
                m.failed.fetch_add(1, Relaxed);
                if let Some(suppressed) = ctx.fail_log.check() {
                    ctx.logger.error(
                        &format!("Handler error for subscription {id}"),
                        &[
                            ("error", msg.clone()),
                            ("eventId", d.id().to_string()),
                            ("attempts", (attempt + 1).to_string()),
                            ("suppressed", suppressed.to_string()),
                        ],
                    );
                }
                return (batch_call_timed_out, Some(msg));
            }
        }
    }
}
