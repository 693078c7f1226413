//! The publisher task: it owns the publisher connection, writes what callers queued as
//! pipelines of PUBLISH commands, and reconnects forever when the connection dies.
//!
//! Automatic pipelining: whatever has queued up since the last write goes as one pipeline
//! (at most `performance.batchSize` requests, optionally gathered for `batchInterval`), and a
//! few pipelines may be in flight at once so Redis works on one while the next is written.
//! Requests whose caller already gave up are skipped, never sent. While disconnected the task
//! keeps taking requests into the offline queue and writes them first, in order, once a
//! connection is back.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::*;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesOrdered, StreamExt};
use redis::aio::MultiplexedConnection;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::{mpsc, watch};

use super::connect::{is_connection_error, Attempt, Opened, Reconnect};
use super::locate::Locator;
use super::refusal::{refused_error, refused_reply};
use super::requests::{PubRequest, CANCELLED, PENDING, SENT};
use super::{LinkState, Shared};
use crate::error::{Error, ErrorKind};
use crate::state::{Link, StateEvent};

/// How serving one connection ended.
enum Exit {
    Shutdown,
    Dead(String),
}

/// Answer every request with `err()`, giving back the offline-queue slots they hold.
fn fail_all(
    reqs: impl IntoIterator<Item = PubRequest>,
    links: &LinkState,
    err: impl Fn() -> Error,
) {
    for r in reqs {
        if r.state()
            .compare_exchange(PENDING, CANCELLED, AcqRel, Acquire)
            .is_ok()
            && r.offline().swap(false, AcqRel)
        {
            links.offline.fetch_sub(1, AcqRel);
        }
        r.answer(Err(err()));
    }
}

/// Shutdown: stop taking requests and fail everything still waiting (the offline queue and
/// what is left in the channel) as closed, giving back the slots.
fn fail_on_shutdown(
    rx: &mut mpsc::Receiver<PubRequest>,
    offline_q: &mut VecDeque<PubRequest>,
    links: &LinkState,
) {
    rx.close();
    let mut rest: Vec<PubRequest> = offline_q.drain(..).collect();
    while let Ok(r) = rx.try_recv() {
        rest.push(r);
    }
    fail_all(rest, links, Error::closed);
}

/// Drop the queued requests whose caller gave up (their slots were given back already).
fn purge_cancelled(q: &mut VecDeque<PubRequest>) {
    q.retain(|r| r.state().load(Acquire) == PENDING);
}

/// The publisher link's supervisor: serve the connection until it dies, then reconnect
/// (holding publishes in the offline queue meanwhile), until shutdown.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    locator: Arc<Locator>,
    opened: Opened,
    mut rx: mpsc::Receiver<PubRequest>,
    mut dead: mpsc::UnboundedReceiver<(u64, String)>,
    shared: Arc<Shared>,
    links: Arc<LinkState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut conn, mut push, mut direct) = opened;
    let mut offline_q: VecDeque<PubRequest> = VecDeque::new();
    let mut batch: Vec<PubRequest> = Vec::with_capacity(shared.settings.batch_size);
    let mut reconnected = false;
    loop {
        links.pub_up.store(true, Release);
        *links.pub_conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
        *links.pub_direct.lock().unwrap_or_else(|p| p.into_inner()) = direct.take();
        if reconnected {
            shared.stats.reconnects.fetch_add(1, Relaxed);
            shared.stats.total_connections.fetch_add(1, Relaxed);
            shared.logger.info("Redis publisher reconnected", &[]);
            shared.emitter.emit(StateEvent::Connected {
                connection: Link::Publisher,
                reconnect: true,
            });
        }
        let exit = serve_publisher(
            &mut conn,
            &mut push,
            &mut rx,
            &mut dead,
            &mut offline_q,
            &mut batch,
            &shared,
            &links,
            &mut shutdown,
        )
        .await;
        // Taken from the queue but not yet written: they go first once a connection is back
        // (or fail as closed on shutdown, with the rest of the offline queue).
        for r in batch.drain(..).rev() {
            offline_q.push_front(r);
        }
        links.pub_up.store(false, Release);
        links
            .pub_conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        links
            .pub_direct
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match exit {
            Exit::Shutdown => return fail_on_shutdown(&mut rx, &mut offline_q, &links),
            Exit::Dead(reason) => {
                shared.logger.warn(
                    "Redis publisher connection lost",
                    &[("reason", reason.clone())],
                );
                shared.emitter.emit(StateEvent::Disconnected {
                    connection: Link::Publisher,
                    reason,
                });
            }
        }
        // Reconnect forever, holding publishes in the offline queue meanwhile.
        let mut retry = Reconnect::new(Link::Publisher);
        loop {
            let mut due = retry.announce(&shared);
            loop {
                tokio::select! {
                    _ = &mut due => break,
                    r = rx.recv() => match r {
                        Some(req) => {
                            // Sent while the link still looked up: it now waits offline, so it
                            // takes an offline-queue slot like any other, or fails at once.
                            if !req.offline().load(Acquire) {
                                let cap = shared.settings.offline_queue_size;
                                if links.offline.fetch_add(1, AcqRel) >= cap {
                                    links.offline.fetch_sub(1, AcqRel);
                                    if req.state().compare_exchange(PENDING, CANCELLED, AcqRel, Acquire).is_ok() {
                                        req.answer(Err(Error::new(
                                            ErrorKind::QueueFull,
                                            format!("Redis is unavailable and the offline queue is full ({cap} publishes waiting); publish not sent"),
                                        )));
                                    }
                                    continue;
                                }
                                req.offline().store(true, Release);
                                if req.state().load(Acquire) != PENDING {
                                    // The caller gave up meanwhile; release the slot unless
                                    // it already did.
                                    if req.offline().swap(false, AcqRel) {
                                        links.offline.fetch_sub(1, AcqRel);
                                    }
                                    continue;
                                }
                            }
                            offline_q.push_back(req);
                            if offline_q.len().is_multiple_of(256) {
                                purge_cancelled(&mut offline_q);
                            }
                        }
                        None => return,
                    },
                    _ = shutdown.changed() => return fail_on_shutdown(&mut rx, &mut offline_q, &links),
                }
            }
            purge_cancelled(&mut offline_q);
            match retry.connect(&locator, &shared, &mut shutdown).await {
                Attempt::Up((c, p, d)) => {
                    conn = c;
                    push = p;
                    direct = d;
                    break;
                }
                Attempt::Failed => {}
                Attempt::Shutdown => return fail_on_shutdown(&mut rx, &mut offline_q, &links),
            }
        }
        reconnected = true;
    }
}

/// The connection died: wait for the other pipelines in flight to be answered (they fail fast
/// on a dead connection, at worst after the publish timeout) before reconnecting.
async fn drain_dead(mut in_flight: FuturesOrdered<InFlight>, reason: String) -> Exit {
    while in_flight.next().await.is_some() {}
    Exit::Dead(reason)
}

/// Serve one live connection: the offline queue first, then new requests as pipelines, with
/// a PING heartbeat when the link is otherwise idle. Returns why it stopped.
#[allow(clippy::too_many_arguments)]
async fn serve_publisher(
    conn: &mut MultiplexedConnection,
    push: &mut mpsc::UnboundedReceiver<PushInfo>,
    rx: &mut mpsc::Receiver<PubRequest>,
    dead: &mut mpsc::UnboundedReceiver<(u64, String)>,
    offline_q: &mut VecDeque<PubRequest>,
    batch: &mut Vec<PubRequest>,
    shared: &Shared,
    links: &LinkState,
    shutdown: &mut watch::Receiver<bool>,
) -> Exit {
    let s = &shared.settings;
    // Publishes held while disconnected go first, in order.
    while !offline_q.is_empty() || !batch.is_empty() {
        if batch.is_empty() {
            let n = offline_q.len().min(s.batch_size);
            batch.extend(offline_q.drain(..n));
        }
        if let Some((f, _)) = start_batch(conn, batch, shared, links).await {
            if let (Err(reason), _) = f.await {
                return Exit::Dead(reason);
            }
        }
    }
    let exit = serve_live(conn, push, rx, dead, batch, shared, links, shutdown).await;
    links.direct_ok.store(false, Release);
    exit
}

/// The live part of [`serve_publisher`], once the offline queue is written: callers may write
/// a PUBLISH themselves while nothing else is queued (see `LinkState::direct_ok`).
#[allow(clippy::too_many_arguments)]
async fn serve_live(
    conn: &mut MultiplexedConnection,
    push: &mut mpsc::UnboundedReceiver<PushInfo>,
    rx: &mut mpsc::Receiver<PubRequest>,
    dead: &mut mpsc::UnboundedReceiver<(u64, String)>,
    batch: &mut Vec<PubRequest>,
    shared: &Shared,
    links: &LinkState,
    shutdown: &mut watch::Receiver<bool>,
) -> Exit {
    let s = &shared.settings;
    let mut in_flight: FuturesOrdered<InFlight> = FuturesOrdered::new();
    let mut in_flight_bytes = 0usize;
    let hb = s.heartbeat_interval.unwrap_or(Duration::from_secs(3600));
    let mut ticker = tokio::time::interval(hb);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut last_io = Instant::now();
    let mut switch = links.switch.subscribe();
    // Reports about earlier connections are stale.
    while dead.try_recv().is_ok() {}
    let gen = links.conn_gen.fetch_add(1, AcqRel) + 1;
    links.direct_ok.store(true, Release);
    loop {
        // Too far ahead of the process's own subscribers: no new pipeline until they read.
        let ahead = links.backlog.ahead();
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                links.direct_ok.store(false, Release);
                // Pipelines already written get their replies (bounded by the publish timeout).
                while in_flight.next().await.is_some() {}
                return Exit::Shutdown;
            }
            // The server stopped being the master: what is in flight gets its replies (or ends
            // outcome unknown), what follows waits offline for the new master.
            _ = switch.changed() => {
                links.direct_ok.store(false, Release);
                return drain_dead(in_flight, "the sentinels switched the master".into()).await
            }
            Some((g, reason)) = dead.recv() => {
                if g == gen {
                    links.direct_ok.store(false, Release);
                    return drain_dead(in_flight, reason).await;
                }
            }
            p = push.recv() => match p {
                None => {
                    links.direct_ok.store(false, Release);
                    return drain_dead(in_flight, "connection closed".into()).await
                }
                Some(pi) if pi.kind == PushKind::Disconnection => {
                    links.direct_ok.store(false, Release);
                    return drain_dead(
                        in_flight,
                        "connection closed by the server or the network".into(),
                    )
                    .await
                }
                Some(_) => {}
            },
            Some((r, bytes)) = in_flight.next(), if !in_flight.is_empty() => {
                in_flight_bytes -= bytes;
                if let Err(reason) = r {
                    links.direct_ok.store(false, Release);
                    return drain_dead(in_flight, reason).await;
                }
                last_io = Instant::now();
            }
            // The rest of a batch too large for one pipeline goes before anything newer.
            _ = std::future::ready(()),
                if !batch.is_empty()
                    && !ahead
                    && (in_flight.is_empty()
                        || (in_flight.len() < MAX_IN_FLIGHT && in_flight_bytes < MAX_IN_FLIGHT_BYTES)) =>
            {
                if let Some((f, bytes)) = start_batch(conn, batch, shared, links).await {
                    in_flight_bytes += bytes;
                    in_flight.push_back(f);
                }
            }
            n = rx.recv_many(batch, s.batch_size),
                if batch.is_empty()
                    && !ahead
                    && (in_flight.is_empty()
                        || (in_flight.len() < MAX_IN_FLIGHT && in_flight_bytes < MAX_IN_FLIGHT_BYTES)) =>
            {
                if n == 0 {
                    while in_flight.next().await.is_some() {}
                    return Exit::Shutdown;
                }
                if !s.batch_interval.is_zero() && batch.len() < s.batch_size {
                    tokio::time::sleep(s.batch_interval).await;
                    while batch.len() < s.batch_size {
                        match rx.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                }
                if let Some((f, bytes)) = start_batch(conn, batch, shared, links).await {
                    in_flight_bytes += bytes;
                    in_flight.push_back(f);
                }
            }
            _ = links.backlog.wait(), if ahead => {}
            _ = ticker.tick(), if s.heartbeat_interval.is_some() => {
                if last_io.elapsed() >= hb {
                    let ping = tokio::time::timeout(
                        hb.min(Duration::from_secs(5)),
                        redis::cmd("PING").query_async::<String>(conn),
                    ).await;
                    match ping {
                        Ok(Ok(_)) => last_io = Instant::now(),
                        Ok(Err(e)) => return Exit::Dead(format!("heartbeat PING failed: {e}")),
                        Err(_) => return Exit::Dead("heartbeat PING timed out".into()),
                    }
                }
            }
        }
    }
}

/// Pipelines written but not yet answered. Several may be in flight at once so Redis works on
/// one while the next is encoded and written; the connection keeps them in order.
const MAX_IN_FLIGHT: usize = 4;

/// A further pipeline starts only while less than this many payload bytes await replies: Redis
/// copies every message into each subscriber's output buffer, and several multi-megabyte
/// pipelines at once can push a subscriber that reads a little late past Redis's pub/sub
/// output limit (32 MB by default), which disconnects it and loses what it had not read.
const MAX_IN_FLIGHT_BYTES: usize = 1 << 20;

/// One pipeline carries at most about this many payload bytes (always at least one event), so
/// large events are written in several pipelines that overlap like small ones do: Redis works
/// on one while the next is built and written.
const MAX_PIPELINE_BYTES: usize = MAX_IN_FLIGHT_BYTES / MAX_IN_FLIGHT;

/// A pipeline in flight; resolves to its outcome and the payload bytes it carried.
type InFlight = Pin<Box<dyn Future<Output = (std::result::Result<(), String>, usize)> + Send>>;

/// Turn the first queued requests, up to `MAX_PIPELINE_BYTES`, into one pipeline of PUBLISH
/// commands, skipping those whose caller already timed out (they are never sent); the rest stay
/// in `batch`. `None` when nothing was taken that is still to be sent.
fn prepare_batch(
    batch: &mut Vec<PubRequest>,
    links: &LinkState,
) -> Option<(redis::Pipeline, Vec<PubRequest>, usize)> {
    let mut take = 0;
    let mut sum = 0;
    while take < batch.len() && sum < MAX_PIPELINE_BYTES {
        sum += batch[take].payload.len();
        take += 1;
    }
    let mut pipe = redis::Pipeline::with_capacity(take);
    let mut live: Vec<PubRequest> = Vec::with_capacity(take);
    let mut bytes = 0;
    for r in batch.drain(..take) {
        if r.state()
            .compare_exchange(PENDING, SENT, AcqRel, Acquire)
            .is_ok()
        {
            if r.offline().swap(false, AcqRel) {
                links.offline.fetch_sub(1, AcqRel);
            }
            links.backlog.published(&r.channel, r.payload.len());
            // Sized up front: the command buffer is written once, never regrown.
            let mut cmd = redis::Cmd::with_capacity(3, 7 + r.channel.len() + r.payload.len());
            cmd.arg("PUBLISH").arg(&r.channel).arg(&r.payload);
            pipe.add_command(cmd);
            bytes += r.payload.len();
            live.push(r);
        }
    }
    (!live.is_empty()).then_some((pipe, live, bytes))
}

/// The outcome of one PUBLISH sent on its own (from its caller's task), as [`answer_batch`]
/// reports each of a pipeline's: Redis's receiver count, the server's refusal, or *outcome
/// unknown* when the connection died or Redis did not reply in time after it was sent. With
/// the outcome, why the connection is dead, if it is.
pub(super) fn direct_outcome(
    channel: &str,
    res: std::result::Result<redis::RedisResult<Value>, tokio::time::error::Elapsed>,
) -> (crate::error::Result<u64>, Option<String>) {
    match res {
        Ok(Ok(Value::Int(k))) => (Ok(k.max(0) as u64), None),
        Ok(Ok(v)) => (Err(refused_reply("PUBLISH", channel, &v)), None),
        Ok(Err(e)) if !is_connection_error(&e) => {
            (Err(refused_error("PUBLISH", channel, &e)), None)
        }
        Ok(Err(e)) => (
            Err(Error::new(
                ErrorKind::OutcomeUnknown,
                format!("Connection lost after the publish was sent; it may or may not have been delivered ({e})"),
            )),
            Some(format!("publish failed: {e}")),
        ),
        Err(_) => (
            Err(Error::new(
                ErrorKind::OutcomeUnknown,
                "No reply from Redis within the publish timeout after the publish was sent; it may or may not have been delivered",
            )),
            Some("no reply to PUBLISH within the publish timeout".into()),
        ),
    }
}

/// Write one pipeline and answer every caller when Redis replies. `Err` means the connection
/// is dead (every request in the pipeline was answered with *outcome unknown*).
async fn answer_batch(
    mut conn: MultiplexedConnection,
    pipe: redis::Pipeline,
    live: Vec<PubRequest>,
    timeout: Duration,
) -> std::result::Result<(), String> {
    let n = live.len();
    let res = tokio::time::timeout(timeout, conn.send_packed_commands(&pipe, 0, n)).await;
    drop(pipe);
    match res {
        Ok(Ok(values)) => {
            let mut values = values.into_iter();
            for r in live {
                let v = values.next();
                let out = match v {
                    Some(Value::Int(k)) => Ok(k.max(0) as u64),
                    Some(v) => Err(refused_reply("PUBLISH", &r.channel, &v)),
                    None => Err(Error::new(
                        ErrorKind::Protocol,
                        "Redis sent fewer replies than the pipeline had PUBLISH commands",
                    )),
                };
                r.answer(out);
            }
            Ok(())
        }
        Ok(Err(e)) if !is_connection_error(&e) => {
            for r in live {
                let err = refused_error("PUBLISH", &r.channel, &e);
                r.answer(Err(err));
            }
            Ok(())
        }
        Ok(Err(e)) => {
            let msg = e.to_string();
            for r in live {
                r.answer(Err(Error::new(
                    ErrorKind::OutcomeUnknown,
                    format!("Connection lost after the publish was sent; it may or may not have been delivered ({msg})"),
                )));
            }
            Err(format!("publish failed: {msg}"))
        }
        Err(_) => {
            for r in live {
                r.answer(Err(Error::new(
                    ErrorKind::OutcomeUnknown,
                    "No reply from Redis within the publish timeout after the publish was sent; it may or may not have been delivered",
                )));
            }
            Err("no reply to PUBLISH within the publish timeout".into())
        }
    }
}

/// Start writing one pipeline: the request is handed to the connection before this returns, so
/// pipelines reach Redis in the order they were started. The returned future answers the
/// callers; `None` when every request in the batch had already been given up on.
async fn start_batch(
    conn: &MultiplexedConnection,
    batch: &mut Vec<PubRequest>,
    shared: &Shared,
    links: &LinkState,
) -> Option<(InFlight, usize)> {
    let (pipe, live, bytes) = prepare_batch(batch, links)?;
    let (conn, timeout) = (conn.clone(), shared.settings.publish_timeout);
    let mut fut: InFlight = Box::pin(tokio::task::unconstrained(async move {
        (answer_batch(conn, pipe, live, timeout).await, bytes)
    }));
    // One poll queues the packed pipeline on the connection (its request channel holds far
    // more than MAX_IN_FLIGHT pipelines), fixing the write order before the next one starts.
    // Unconstrained, so an exhausted cooperative budget cannot turn that poll into a Pending
    // that leaves the pipeline unqueued.
    let first = std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
        Poll::Ready(r) => Poll::Ready(Some(r)),
        Poll::Pending => Poll::Ready(None),
    })
    .await;
    match first {
        Some(r) => Some((Box::pin(std::future::ready(r)), bytes)),
        None => Some((fut, bytes)),
    }
}
