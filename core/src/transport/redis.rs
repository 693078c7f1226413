//! Redis pub/sub: one publisher and one subscriber connection, each owned by a supervisor task
//! that reconnects forever (exponential backoff with jitter, capped).
//!
//! Publisher: callers hand requests to the task over a channel; the task writes whatever has
//! queued up as one pipeline (automatic pipelining, bounded by `performance.batchSize`) and
//! answers each caller with Redis's receiver count. Every request has a state (pending / sent /
//! cancelled) that the caller's timeout and the task race on, so a publish is never sent after
//! its caller was told it failed, and a publish that was written when the connection died is
//! reported as *outcome unknown* and never resent. The requests of one call share one
//! [`Answers`] (states, slots and the caller's waker): one allocation per call, not two per
//! publish.
//!
//! Subscriber: a RESP3 connection whose push messages are dispatched to the registry. The
//! registry is the source of truth: after any reconnect the task subscribes exactly the
//! registry's keys and checks every reply; a PING heartbeat catches half-open links.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesOrdered, StreamExt};
use futures_util::task::AtomicWaker;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushInfo, PushKind, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::{LinkStatus, Shared};
use crate::error::{Error, ErrorKind, Result};
use crate::state::{Link, StateEvent};
use crate::subscription::Key;

const PENDING: u8 = 0;
const SENT: u8 = 1;
const CANCELLED: u8 = 2;

/// Requests queued between callers and the publisher task (backpressure beyond this).
const PUBLISH_CHANNEL: usize = 65_536;

/// One publish on its way to Redis. Dropped unanswered (the task closed or died), it tells the
/// caller so.
struct PubRequest {
    channel: String,
    payload: String,
    answers: Arc<Answers>,
    i: usize,
}

impl PubRequest {
    /// PENDING, SENT or CANCELLED: the task and the caller's timeout race on it.
    fn state(&self) -> &AtomicU8 {
        &self.answers.states[self.i]
    }

    /// Holds one slot of the offline queue until sent or cancelled. Whoever swaps it from true
    /// to false (the task when sending or failing it, the caller when it times out) gives the
    /// slot back, so it is released exactly once.
    fn offline(&self) -> &AtomicBool {
        &self.answers.offline[self.i]
    }

    /// Answer the caller.
    fn answer(self, r: Result<u64>) {
        // Empty once the caller has read the answers (it gave up at the deadline).
        if let Some(slot) = self
            .answers
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(self.i)
        {
            *slot = Slot::Answered(r);
        }
        // Drop counts it done.
    }
}

impl Drop for PubRequest {
    fn drop(&mut self) {
        let a = &self.answers;
        {
            let mut slots = a.slots.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(slot @ Slot::Waiting) = slots.get_mut(self.i) {
                *slot = Slot::Dropped;
            }
        }
        if a.left.fetch_sub(1, AcqRel) == 1 {
            a.waker.wake();
        }
    }
}

/// What became of one request.
enum Slot {
    Waiting,
    Answered(Result<u64>),
    /// The task dropped it unanswered: closed while queued, or died mid-send.
    Dropped,
}

/// The requests of one call, and their answers.
struct Answers {
    states: Box<[AtomicU8]>,
    offline: Box<[AtomicBool]>,
    slots: Mutex<Vec<Slot>>,
    /// Requests not yet answered or dropped; the caller is woken when it reaches 0.
    left: AtomicUsize,
    waker: AtomicWaker,
}

impl Answers {
    fn new(n: usize) -> Arc<Answers> {
        Arc::new(Answers {
            states: (0..n).map(|_| AtomicU8::new(PENDING)).collect(),
            offline: (0..n).map(|_| AtomicBool::new(false)).collect(),
            slots: Mutex::new((0..n).map(|_| Slot::Waiting).collect()),
            left: AtomicUsize::new(n),
            waker: AtomicWaker::new(),
        })
    }

    /// Resolves once every request was answered or dropped.
    async fn all_done(&self) {
        std::future::poll_fn(|cx| {
            if self.left.load(Acquire) == 0 {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if self.left.load(Acquire) == 0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

enum SubCtl {
    Sync(oneshot::Sender<Result<()>>),
}

struct LinkState {
    pub_up: AtomicBool,
    sub_up: AtomicBool,
    offline: AtomicUsize,
    pub_conn: Mutex<Option<MultiplexedConnection>>,
}

/// Publishes handed to the publisher task, and what answering them needs.
pub(crate) struct Replies {
    answers: Arc<Answers>,
    deadline: tokio::time::Instant,
    links: Arc<LinkState>,
    timeout: Duration,
}

impl Replies {
    /// Wait for Redis's answers, up to the deadline; one per request, in order.
    pub(crate) async fn answers(self) -> Vec<Result<u64>> {
        let Replies {
            answers,
            deadline,
            links,
            timeout,
        } = self;
        let _ = tokio::time::timeout_at(deadline, answers.all_done()).await;
        let slots = std::mem::take(&mut *answers.slots.lock().unwrap_or_else(|p| p.into_inner()));
        slots
            .into_iter()
            .enumerate()
            .map(|(i, slot)| match slot {
                Slot::Answered(r) => r,
                Slot::Dropped => {
                    if answers.states[i].load(Acquire) == SENT {
                        Err(Error::new(
                            ErrorKind::OutcomeUnknown,
                            "Connection closed after the publish was sent; it may or may not have been delivered",
                        ))
                    } else {
                        Err(Error::closed())
                    }
                }
                Slot::Waiting => {
                    // Past the deadline.
                    if answers.states[i]
                        .compare_exchange(PENDING, CANCELLED, AcqRel, Acquire)
                        .is_ok()
                    {
                        if answers.offline[i].swap(false, AcqRel) {
                            links.offline.fetch_sub(1, AcqRel);
                        }
                        Err(Error::new(
                            ErrorKind::Timeout,
                            format!(
                                "Publish timed out after {} ms before it was sent (Redis unavailable)",
                                timeout.as_millis()
                            ),
                        ))
                    } else {
                        Err(Error::new(
                            ErrorKind::OutcomeUnknown,
                            format!(
                                "No reply from Redis within {} ms after the publish was sent; it may or may not have been delivered",
                                timeout.as_millis()
                            ),
                        ))
                    }
                }
            })
            .collect()
    }
}

pub(crate) struct RedisTransport {
    pub_tx: mpsc::Sender<PubRequest>,
    sub_ctl: mpsc::UnboundedSender<SubCtl>,
    links: Arc<LinkState>,
    shutdown: watch::Sender<bool>,
    tasks: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
    shared: Arc<Shared>,
}

fn conn_name(service: &str, suffix: &str) -> String {
    // CLIENT SETNAME refuses spaces and newlines.
    let clean: String = service
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    format!("{clean}:{suffix}")
}

fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() || e.is_timeout()
}

async fn open_conn(
    client: &redis::Client,
    shared: &Shared,
    link: Link,
) -> Result<(MultiplexedConnection, mpsc::UnboundedReceiver<PushInfo>)> {
    let s = &shared.settings;
    let (tx, rx) = mpsc::unbounded_channel();
    let cfg = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(s.connect_timeout))
        .set_response_timeout(None)
        .set_push_sender(tx);
    let connect_err = |e: redis::RedisError| {
        Error::new(
            ErrorKind::Connection,
            format!("Failed to connect to Redis at {}", s.display_addr),
        )
        .with_source(e)
    };
    let mut conn = tokio::time::timeout(
        s.connect_timeout + Duration::from_millis(100),
        client.get_multiplexed_async_connection_with_config(&cfg),
    )
    .await
    .map_err(|_| {
        Error::new(
            ErrorKind::Connection,
            format!(
                "Failed to connect to Redis at {}: timed out after {} ms",
                s.display_addr,
                s.connect_timeout.as_millis()
            ),
        )
    })?
    .map_err(connect_err)?;
    let suffix = match link {
        Link::Publisher => "pub",
        _ => "sub",
    };
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(conn_name(&s.service_name, suffix))
        .query_async::<()>(&mut conn)
        .await
        .map_err(connect_err)?;
    Ok((conn, rx))
}

fn backoff(settings: &crate::config::Settings, attempt: u64) -> Duration {
    crate::state::reconnect_delay(
        settings.reconnect_delay,
        settings.reconnect_delay_max,
        attempt,
    )
}

/// How often a reconnect that keeps failing for the same reason is reported again.
const REPEAT_FAILURE_REPORT: Duration = Duration::from_secs(60);

/// The failed reconnect attempts of one outage of one link. Each failure is logged, at warn
/// for the first one, when the reason changes and at most once a minute otherwise (debug in
/// between), and those are also emitted as `error` state events: an outage that lasts says why
/// (a rotated password, a certificate no longer trusted) without flooding the log.
struct ReconnectFailures {
    link: Link,
    last: Option<(Instant, String)>,
}

impl ReconnectFailures {
    fn new(link: Link) -> Self {
        ReconnectFailures { link, last: None }
    }

    fn failed(&mut self, shared: &Shared, attempt: u64, e: Error) {
        let message = explain_untrusted_certificate(e).to_string();
        let what = match self.link {
            Link::Publisher => "Redis publisher reconnect failed",
            _ => "Redis subscriber reconnect failed",
        };
        let fields = [("attempt", attempt.to_string()), ("error", message.clone())];
        let report = match &self.last {
            None => true,
            Some((at, said)) => *said != message || at.elapsed() >= REPEAT_FAILURE_REPORT,
        };
        if !report {
            return shared.logger.debug(what, &fields);
        }
        shared.logger.warn(what, &fields);
        shared.emitter.emit(StateEvent::Error {
            connection: self.link,
            message: format!("{what} (attempt {attempt}): {message}"),
        });
        self.last = Some((Instant::now(), message));
    }
}

/// A connection error when the server's TLS certificate failed verification (on `connect()`
/// and in the reconnect reports), said in plain words with what to do (rustls alone says
/// `invalid peer certificate: UnknownIssuer`); the redis error stays the cause. Other errors
/// pass through.
fn explain_untrusted_certificate(e: Error) -> Error {
    let cause = std::error::Error::source(&e)
        .and_then(|s| s.downcast_ref::<redis::RedisError>())
        .cloned();
    let Some(cause) = cause.filter(|c| c.to_string().contains("invalid peer certificate")) else {
        return e;
    };
    let text = cause.to_string();
    let why = if text.contains("UnknownIssuer") || text.contains("BadSignature") {
        " (no CA this client trusts signed it: set redis.tls.ca to the PEM of the CA that did)"
    } else if text.contains("NotValidForName") || text.contains("not valid for name") {
        " (it is not issued for this host name)"
    } else if text.contains("Expired") || text.contains("expired") {
        " (it has expired)"
    } else {
        ""
    };
    Error::new(
        e.kind(),
        format!(
            "{}: the server's TLS certificate is not trusted{why}",
            e.message()
        ),
    )
    .with_source(cause)
}

impl RedisTransport {
    pub(crate) async fn connect(
        info: redis::ConnectionInfo,
        shared: Arc<Shared>,
    ) -> Result<RedisTransport> {
        let rs = info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        let info = info.set_redis_settings(rs);
        let client = redis::Client::open(info).map_err(|e| {
            Error::new(ErrorKind::Config, "invalid Redis connection settings").with_source(e)
        })?;
        let (pconn, ppush) = open_conn(&client, &shared, Link::Publisher)
            .await
            .map_err(explain_untrusted_certificate)?;
        let (sconn, spush) = open_conn(&client, &shared, Link::Subscriber)
            .await
            .map_err(explain_untrusted_certificate)?;
        let links = Arc::new(LinkState {
            pub_up: AtomicBool::new(true),
            sub_up: AtomicBool::new(true),
            offline: AtomicUsize::new(0),
            pub_conn: Mutex::new(Some(pconn.clone())),
        });
        let (pub_tx, pub_rx) = mpsc::channel(PUBLISH_CHANNEL);
        let (sub_ctl, sub_rx) = mpsc::unbounded_channel();
        let (shutdown, shut_rx) = watch::channel(false);
        shared.stats.total_connections.fetch_add(2, Relaxed);
        let p = crate::runtime::spawn(publisher_loop(
            client.clone(),
            pconn,
            ppush,
            pub_rx,
            shared.clone(),
            links.clone(),
            shut_rx.clone(),
        ));
        let s = crate::runtime::spawn(subscriber_loop(
            client,
            sconn,
            spush,
            sub_rx,
            shared.clone(),
            links.clone(),
            shut_rx,
        ));
        Ok(RedisTransport {
            pub_tx,
            sub_ctl,
            links,
            shutdown,
            tasks: tokio::sync::Mutex::new(vec![p, s]),
            shared,
        })
    }

    pub(crate) fn links(&self) -> LinkStatus {
        LinkStatus {
            publisher_up: self.links.pub_up.load(Relaxed),
            subscriber_up: self.links.sub_up.load(Relaxed),
        }
    }

    /// Hand every request to the publisher task, in order, awaiting room when the queue is
    /// full. All items share `deadline`, for room and for their answers.
    pub(crate) async fn hand_over_many(
        &self,
        items: Vec<(String, String)>,
        deadline: tokio::time::Instant,
    ) -> Replies {
        let answers = Answers::new(items.len());
        for (i, (channel, payload)) in items.into_iter().enumerate() {
            if let Some(req) = self.request(&answers, i, channel, payload) {
                let sent = self.hand_over(req, deadline).await;
                self.handed_over(sent);
            }
        }
        self.replies(answers, deadline)
    }

    fn replies(&self, answers: Arc<Answers>, deadline: tokio::time::Instant) -> Replies {
        Replies {
            answers,
            deadline,
            links: self.links.clone(),
            timeout: self.shared.settings.publish_timeout,
        }
    }

    /// Request `i` of `answers` for the publisher task, holding an offline-queue slot while
    /// the link is down; `None` when it was answered at once (the offline queue is full).
    fn request(
        &self,
        answers: &Arc<Answers>,
        i: usize,
        channel: String,
        payload: String,
    ) -> Option<PubRequest> {
        let req = PubRequest {
            channel,
            payload,
            answers: answers.clone(),
            i,
        };
        if !self.links.pub_up.load(Acquire) {
            // Publisher down: take a slot in the bounded offline queue or fail at once.
            let cap = self.shared.settings.offline_queue_size;
            let prev = self.links.offline.fetch_add(1, AcqRel);
            if prev >= cap {
                self.links.offline.fetch_sub(1, AcqRel);
                req.answer(Err(Error::new(
                    ErrorKind::QueueFull,
                    format!(
                        "Redis is unavailable and the offline queue is full ({cap} publishes waiting); publish not sent"
                    ),
                )));
                return None;
            }
            req.offline().store(true, Release);
        }
        Some(req)
    }

    /// Queue a request, waiting (up to the deadline) only when the queue is full.
    async fn hand_over(
        &self,
        req: PubRequest,
        deadline: tokio::time::Instant,
    ) -> std::result::Result<(), (PubRequest, bool)> {
        match self.pub_tx.try_send(req) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(req)) => Err((req, false)),
            Err(mpsc::error::TrySendError::Full(req)) => {
                let reserved = tokio::time::timeout_at(deadline, self.pub_tx.reserve()).await;
                match reserved {
                    Ok(Ok(permit)) => {
                        permit.send(req);
                        Ok(())
                    }
                    Ok(Err(_)) => Err((req, false)),
                    Err(_) => Err((req, true)),
                }
            }
        }
    }

    /// The request is queued (`Ok`), or is answered with why not: the task is gone
    /// (`false`) or the queue stayed full until the deadline (`true`).
    fn handed_over(&self, sent: std::result::Result<(), (PubRequest, bool)>) {
        let Err((req, timed_out)) = sent else {
            return;
        };
        if req.offline().swap(false, AcqRel) {
            self.links.offline.fetch_sub(1, AcqRel);
        }
        if !timed_out {
            return req.answer(Err(Error::closed()));
        }
        req.answer(Err(Error::unsent_timeout(
            self.shared.settings.publish_timeout,
        )));
    }

    pub(crate) async fn sync(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.sub_ctl
            .send(SubCtl::Sync(tx))
            .map_err(|_| Error::closed())?;
        rx.await.map_err(|_| Error::closed())?
    }

    pub(crate) async fn ping(&self) -> Result<Duration> {
        let conn = self
            .links
            .pub_conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(mut conn) = conn else {
            return Err(Error::new(
                ErrorKind::Connection,
                "Redis publisher connection is down; reconnecting",
            ));
        };
        let start = Instant::now();
        match tokio::time::timeout(
            Duration::from_secs(2),
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await
        {
            Ok(Ok(_)) => Ok(start.elapsed()),
            Ok(Err(e)) => {
                Err(Error::new(ErrorKind::Connection, "Redis PING failed").with_source(e))
            }
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                "Redis PING timed out after 2000 ms",
            )),
        }
    }

    pub(crate) async fn close(&self) {
        let _ = self.shutdown.send(true);
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.tasks.lock().await);
        for mut t in tasks {
            if tokio::time::timeout(Duration::from_secs(2), &mut t)
                .await
                .is_err()
            {
                t.abort();
            }
        }
        self.links.pub_up.store(false, Release);
        self.links.sub_up.store(false, Release);
        self.links
            .pub_conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }
}

enum Exit {
    Shutdown,
    Dead(String),
}

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

fn purge_cancelled(q: &mut VecDeque<PubRequest>) {
    q.retain(|r| r.state().load(Acquire) == PENDING);
}

#[allow(clippy::too_many_arguments)]
async fn publisher_loop(
    client: redis::Client,
    mut conn: MultiplexedConnection,
    mut push: mpsc::UnboundedReceiver<PushInfo>,
    mut rx: mpsc::Receiver<PubRequest>,
    shared: Arc<Shared>,
    links: Arc<LinkState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut offline_q: VecDeque<PubRequest> = VecDeque::new();
    let mut batch: Vec<PubRequest> = Vec::with_capacity(shared.settings.batch_size);
    let mut reconnected = false;
    loop {
        links.pub_up.store(true, Release);
        *links.pub_conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
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
        match exit {
            Exit::Shutdown => {
                rx.close();
                let mut rest: Vec<PubRequest> = offline_q.drain(..).collect();
                while let Ok(r) = rx.try_recv() {
                    rest.push(r);
                }
                fail_all(rest, &links, Error::closed);
                return;
            }
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
        let mut attempt = 0u64;
        let mut failures = ReconnectFailures::new(Link::Publisher);
        loop {
            attempt += 1;
            let delay = backoff(&shared.settings, attempt);
            shared.emitter.emit(StateEvent::Reconnecting {
                connection: Link::Publisher,
                attempt,
                delay: delay.as_millis() as u64,
            });
            let until = tokio::time::Instant::now() + delay;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => break,
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
                    _ = shutdown.changed() => {
                        rx.close();
                        let mut rest: Vec<PubRequest> = offline_q.drain(..).collect();
                        while let Ok(r) = rx.try_recv() { rest.push(r); }
                        fail_all(rest, &links, Error::closed);
                        return;
                    }
                }
            }
            purge_cancelled(&mut offline_q);
            let attempt_conn = tokio::select! {
                r = open_conn(&client, &shared, Link::Publisher) => r,
                _ = shutdown.changed() => {
                    rx.close();
                    let mut rest: Vec<PubRequest> = offline_q.drain(..).collect();
                    while let Ok(r) = rx.try_recv() { rest.push(r); }
                    fail_all(rest, &links, Error::closed);
                    return;
                }
            };
            match attempt_conn {
                Ok((c, p)) => {
                    conn = c;
                    push = p;
                    break;
                }
                Err(e) => failures.failed(&shared, attempt, e),
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

#[allow(clippy::too_many_arguments)]
async fn serve_publisher(
    conn: &mut MultiplexedConnection,
    push: &mut mpsc::UnboundedReceiver<PushInfo>,
    rx: &mut mpsc::Receiver<PubRequest>,
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
    let mut in_flight: FuturesOrdered<InFlight> = FuturesOrdered::new();
    let mut in_flight_bytes = 0usize;
    let hb = s.heartbeat_interval.unwrap_or(Duration::from_secs(3600));
    let mut ticker = tokio::time::interval(hb);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut last_io = Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                // Pipelines already written get their replies (bounded by the publish timeout).
                while in_flight.next().await.is_some() {}
                return Exit::Shutdown;
            }
            p = push.recv() => match p {
                None => return drain_dead(in_flight, "connection closed".into()).await,
                Some(pi) if pi.kind == PushKind::Disconnection => {
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
                    return drain_dead(in_flight, reason).await;
                }
                last_io = Instant::now();
            }
            // The rest of a batch too large for one pipeline goes before anything newer.
            _ = std::future::ready(()),
                if !batch.is_empty()
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
/// copies every message into each subscriber's output buffer, and several 8 MB pipelines at
/// once (512 events of 16 KB) pushed a subscriber that reads a little late past Redis's pub/sub
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
                    Some(Value::ServerError(e)) => Err(Error::new(
                        ErrorKind::Protocol,
                        format!("Redis refused PUBLISH: {e:?}"),
                    )),
                    other => Err(Error::new(
                        ErrorKind::Protocol,
                        format!("unexpected reply to PUBLISH: {other:?}"),
                    )),
                };
                r.answer(out);
            }
            Ok(())
        }
        Ok(Err(e)) if !is_connection_error(&e) => {
            let msg = e.to_string();
            for r in live {
                r.answer(Err(Error::new(
                    ErrorKind::Protocol,
                    format!("Redis refused PUBLISH: {msg}"),
                )));
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
    let mut fut: InFlight =
        Box::pin(async move { (answer_batch(conn, pipe, live, timeout).await, bytes) });
    // One poll queues the packed pipeline on the connection (its request channel holds far
    // more than MAX_IN_FLIGHT pipelines), fixing the write order before the next one starts.
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

/// Subscribe/unsubscribe so the connection's set equals the registry's keys.
async fn reconcile(
    conn: &mut MultiplexedConnection,
    shared: &Shared,
    current: &mut HashSet<Key>,
) -> std::result::Result<(), redis::RedisError> {
    let desired: HashSet<Key> = shared.registry.keys().into_iter().collect();
    let add: Vec<Key> = desired.difference(current).cloned().collect();
    let remove: Vec<Key> = current.difference(&desired).cloned().collect();
    let chans: Vec<&str> = add
        .iter()
        .filter_map(|k| match k {
            Key::Channel(c) => Some(c.as_str()),
            _ => None,
        })
        .collect();
    let pats: Vec<&str> = add
        .iter()
        .filter_map(|k| match k {
            Key::Pattern(p) => Some(p.as_str()),
            _ => None,
        })
        .collect();
    if !chans.is_empty() {
        conn.subscribe(&chans).await?;
    }
    if !pats.is_empty() {
        conn.psubscribe(&pats).await?;
    }
    current.extend(add);
    let rchans: Vec<&str> = remove
        .iter()
        .filter_map(|k| match k {
            Key::Channel(c) => Some(c.as_str()),
            _ => None,
        })
        .collect();
    let rpats: Vec<&str> = remove
        .iter()
        .filter_map(|k| match k {
            Key::Pattern(p) => Some(p.as_str()),
            _ => None,
        })
        .collect();
    if !rchans.is_empty() {
        conn.unsubscribe(&rchans).await?;
    }
    if !rpats.is_empty() {
        conn.punsubscribe(&rpats).await?;
    }
    for k in remove {
        current.remove(&k);
    }
    Ok(())
}

fn bulk(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b.as_slice()),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// A bulk string taken out of its reply (the message text is kept, not copied).
fn into_bulk(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

fn handle_push(shared: &Shared, pi: PushInfo) -> Option<String> {
    let mut data = pi.data;
    match pi.kind {
        PushKind::Message => {
            if let [ch, payload, ..] = &mut data[..] {
                let payload = into_bulk(std::mem::replace(payload, Value::Nil));
                if let (Some(ch), Some(payload)) = (bulk(ch), payload) {
                    let ch = String::from_utf8_lossy(ch);
                    shared.registry.dispatch(&ch, None, payload);
                }
            }
            None
        }
        PushKind::PMessage => {
            if let [pat, ch, payload, ..] = &mut data[..] {
                let payload = into_bulk(std::mem::replace(payload, Value::Nil));
                if let (Some(pat), Some(ch), Some(payload)) = (bulk(pat), bulk(ch), payload) {
                    let pat = String::from_utf8_lossy(pat);
                    let ch = String::from_utf8_lossy(ch);
                    shared.registry.dispatch(&ch, Some(&pat), payload);
                }
            }
            None
        }
        PushKind::Disconnection => Some(
            "connection closed by Redis (server down, CLIENT KILL, or evicted for exceeding client-output-buffer-limit pubsub)"
                .into(),
        ),
        _ => None,
    }
}

async fn reconcile_timed(
    conn: &mut MultiplexedConnection,
    shared: &Shared,
    current: &mut HashSet<Key>,
) -> std::result::Result<(), (bool, String)> {
    match tokio::time::timeout(
        shared.settings.connect_timeout,
        reconcile(conn, shared, current),
    )
    .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err((is_connection_error(&e), e.to_string())),
        Err(_) => Err((
            true,
            "no reply to SUBSCRIBE within the connect timeout".into(),
        )),
    }
}

#[allow(clippy::too_many_arguments)]
async fn subscriber_loop(
    client: redis::Client,
    mut conn: MultiplexedConnection,
    mut push: mpsc::UnboundedReceiver<PushInfo>,
    mut ctl: mpsc::UnboundedReceiver<SubCtl>,
    shared: Arc<Shared>,
    links: Arc<LinkState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut lost: Option<(Instant, String)> = None;
    let s = &shared.settings;
    let hb = s.heartbeat_interval.unwrap_or(Duration::from_secs(3600));
    'outer: loop {
        // ---- connected: (re)subscribe exactly the registry's keys ----
        let mut current: HashSet<Key> = HashSet::new();
        let mut reason = match reconcile_timed(&mut conn, &shared, &mut current).await {
            Ok(()) => None,
            Err((_, msg)) => {
                let message = format!("Resubscribe failed: {msg}");
                shared.logger.error(&message, &[]);
                shared.emitter.emit(StateEvent::Error {
                    connection: Link::Subscriber,
                    message,
                });
                Some(format!("resubscribe failed: {msg}"))
            }
        };
        if reason.is_none() {
            links.sub_up.store(true, Release);
            if let Some((at, from)) = lost.take() {
                shared.stats.reconnects.fetch_add(1, Relaxed);
                shared.stats.total_connections.fetch_add(1, Relaxed);
                shared.logger.info(
                    "Redis subscriber reconnected and resubscribed",
                    &[("subscriptions", current.len().to_string())],
                );
                shared.emitter.emit(StateEvent::Connected {
                    connection: Link::Subscriber,
                    reconnect: true,
                });
                shared.emitter.emit(StateEvent::Gap {
                    from,
                    to: crate::event::now_iso(),
                    duration: at.elapsed().as_millis() as u64,
                });
            }
            let mut ticker = tokio::time::interval(hb);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            // Whether anything arrived since the last tick (a flag, not a clock read per
            // message): a tick that finds none PINGs.
            let mut heard = false;
            reason = Some(loop {
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => break 'outer,
                    p = push.recv() => match p {
                        None => break "connection closed".to_string(),
                        Some(pi) => {
                            heard = true;
                            if let Some(r) = handle_push(&shared, pi) {
                                break r;
                            }
                        }
                    },
                    c = ctl.recv() => match c {
                        None => break 'outer,
                        Some(SubCtl::Sync(w)) => {
                            let mut waiters = vec![w];
                            while let Ok(SubCtl::Sync(w)) = ctl.try_recv() {
                                waiters.push(w);
                            }
                            match reconcile_timed(&mut conn, &shared, &mut current).await {
                                Ok(()) => for w in waiters { let _ = w.send(Ok(())); },
                                Err((dead, msg)) => {
                                    let kind = if dead { ErrorKind::Connection } else { ErrorKind::Protocol };
                                    for w in waiters {
                                        let _ = w.send(Err(Error::new(kind, format!("Redis refused the subscription: {msg}"))));
                                    }
                                    if dead {
                                        break format!("subscribe failed: {msg}");
                                    }
                                    // Refused (ACL, ...): drop what the registry no longer has
                                    // and go on; the caller has been told.
                                }
                            }
                        }
                    },
                    _ = ticker.tick(), if s.heartbeat_interval.is_some() => {
                        if !std::mem::take(&mut heard) {
                            let ping = tokio::time::timeout(
                                hb.min(Duration::from_secs(5)),
                                redis::cmd("PING").query_async::<Value>(&mut conn),
                            ).await;
                            match ping {
                                Ok(Ok(_)) => {}
                                Ok(Err(e)) => break format!("heartbeat PING failed: {e}"),
                                Err(_) => break "heartbeat PING timed out (half-open connection)".to_string(),
                            }
                        }
                    }
                }
            });
        }
        // ---- disconnected ----
        links.sub_up.store(false, Release);
        let reason = reason.unwrap_or_default();
        if lost.is_none() {
            lost = Some((Instant::now(), crate::event::now_iso()));
        }
        shared.logger.warn(
            "Redis subscriber connection lost",
            &[("reason", reason.clone())],
        );
        shared.emitter.emit(StateEvent::Disconnected {
            connection: Link::Subscriber,
            reason,
        });
        drop(conn);
        let mut attempt = 0u64;
        let mut failures = ReconnectFailures::new(Link::Subscriber);
        loop {
            attempt += 1;
            let delay = backoff(s, attempt);
            shared.emitter.emit(StateEvent::Reconnecting {
                connection: Link::Subscriber,
                attempt,
                delay: delay.as_millis() as u64,
            });
            let until = tokio::time::Instant::now() + delay;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => break,
                    c = ctl.recv() => match c {
                        // Offline: the registry already holds the change; resubscribe applies it.
                        Some(SubCtl::Sync(w)) => { let _ = w.send(Ok(())); }
                        None => break 'outer,
                    },
                    _ = shutdown.changed() => break 'outer,
                }
            }
            let r = tokio::select! {
                r = open_conn(&client, &shared, Link::Subscriber) => r,
                _ = shutdown.changed() => break 'outer,
            };
            match r {
                Ok((c, p)) => {
                    conn = c;
                    push = p;
                    continue 'outer;
                }
                Err(e) => failures.failed(&shared, attempt, e),
            }
        }
    }
    links.sub_up.store(false, Release);
    // Answer anyone still waiting.
    ctl.close();
    while let Ok(SubCtl::Sync(w)) = ctl.try_recv() {
        let _ = w.send(Err(Error::closed()));
    }
}
