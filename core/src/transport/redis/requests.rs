//! The caller's side of a publish: what is handed to the publisher task, and how each
//! request is answered.
//!
//! Every request has a state (pending / sent / cancelled) that the caller's timeout and the
//! publisher task race on with one compare-and-swap, so a publish is never sent after its
//! caller was told it failed, and a publish that was written when the connection died is
//! reported as *outcome unknown* and never resent. While the publisher link is down a request
//! holds a slot of the bounded offline queue (`offlineQueueSize`); it is given back exactly
//! once, by whoever sends, fails or times the request out. The requests of one call share one
//! [`Answers`] (states, slots and the caller's waker): one allocation per call, not two per
//! publish.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::sync::mpsc;

use super::{LinkState, RedisTransport};
use crate::error::{Error, ErrorKind, Result};

/// Request state: not yet written; the caller may still call it off.
pub(super) const PENDING: u8 = 0;
/// Request state: written to the connection.
pub(super) const SENT: u8 = 1;
/// Request state: called off (timed out, or failed) before it was written; never sent.
pub(super) const CANCELLED: u8 = 2;

/// Requests queued between callers and the publisher task (backpressure beyond this).
pub(super) const PUBLISH_CHANNEL: usize = 65_536;

/// One publish on its way to Redis. Dropped unanswered (the task closed or died), it tells the
/// caller so.
pub(super) struct PubRequest {
    pub(super) channel: String,
    pub(super) payload: String,
    answers: Arc<Answers>,
    i: usize,
    /// Counted in `LinkState::busy` until dropped.
    links: Arc<LinkState>,
}

impl PubRequest {
    /// PENDING, SENT or CANCELLED: the task and the caller's timeout race on it.
    pub(super) fn state(&self) -> &AtomicU8 {
        &self.answers.states[self.i]
    }

    /// Holds one slot of the offline queue until sent or cancelled. Whoever swaps it from true
    /// to false (the task when sending or failing it, the caller when it times out) gives the
    /// slot back, so it is released exactly once.
    pub(super) fn offline(&self) -> &AtomicBool {
        &self.answers.offline[self.i]
    }

    /// Answer the caller.
    pub(super) fn answer(self, r: Result<u64>) {
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
        self.links.busy.fetch_sub(1, AcqRel);
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

/// One PUBLISH written from its caller's task, answered when it resolves.
type Direct = Pin<Box<dyn Future<Output = Result<u64>> + Send>>;

/// Holds `LinkState::busy` for a publish written from its caller's task until it is answered.
struct DirectGuard(Arc<LinkState>);

impl Drop for DirectGuard {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, AcqRel);
    }
}

/// Publishes handed to the publisher task, and what answering them needs.
pub(crate) struct Replies {
    /// A publish written from the caller's task instead (then `answers` is empty).
    direct: Option<Direct>,
    answers: Arc<Answers>,
    deadline: tokio::time::Instant,
    links: Arc<LinkState>,
    timeout: Duration,
}

impl Replies {
    /// Wait for Redis's answers, up to the deadline; one per request, in order.
    pub(crate) async fn answers(self) -> Vec<Result<u64>> {
        if let Some(d) = self.direct {
            return vec![d.await];
        }
        let Replies {
            direct: _,
            answers,
            deadline,
            links,
            timeout,
        } = self;
        let _ = crate::runtime::timeout_at(deadline, answers.all_done()).await;
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

impl RedisTransport {
    /// Hand every request to the publisher task, in order, awaiting room when the queue is
    /// full. All items share `deadline`, for room and for their answers.
    pub(crate) async fn hand_over_many(
        &self,
        items: Vec<(String, String)>,
        deadline: tokio::time::Instant,
    ) -> Replies {
        if let [(channel, payload)] = items.as_slice() {
            if let Some(r) = self.write_directly(channel, payload, deadline) {
                return r;
            }
        }
        let answers = Answers::new(items.len());
        for (i, (channel, payload)) in items.into_iter().enumerate() {
            if let Some(req) = self.request(&answers, i, channel, payload) {
                let sent = self.hand_over(req, deadline).await;
                self.handed_over(sent);
            }
        }
        self.replies(answers, deadline)
    }

    /// Whether [`write_directly`](Self::write_directly) would write now (it checks again):
    /// lets a caller skip encoding on its own thread an event that would go to the task.
    pub(crate) fn idle(&self) -> bool {
        self.links.direct_ok.load(Acquire)
            && self.links.busy.load(Acquire) == 0
            && !self.links.backlog.ahead()
    }

    /// One publish while the publisher connection is live and idle (nothing queued for the
    /// publisher task, nothing offline, no other publish written this way still unanswered):
    /// the PUBLISH goes from the caller's task straight to the connection, skipping the two
    /// wake-ups of the publisher task. It is queued on the connection before this returns,
    /// so it keeps its place among the caller's publishes; its outcome follows the same rules
    /// as a pipeline's (see `publisher::direct_outcome`). `None`: hand it to the task.
    ///
    /// Not async: the command is queued on the connection by the time this returns, from
    /// whichever thread calls it (a host's thread too: the Node and Python faces' lone
    /// publishes, see `EventBusClient::queue_batch`); the returned `Replies` are awaited
    /// anywhere.
    pub(crate) fn write_directly(
        &self,
        channel: &str,
        payload: &str,
        deadline: tokio::time::Instant,
    ) -> Option<Replies> {
        let links = &self.links;
        // Too far ahead of the process's own subscribers: the publisher task waits for them.
        if !links.direct_ok.load(Acquire)
            || links.backlog.ahead()
            || links.busy.compare_exchange(0, 1, AcqRel, Acquire).is_err()
        {
            return None;
        }
        let guard = DirectGuard(links.clone());
        // Checked again now that `busy` is held: the task clears it before it stops serving.
        if !links.direct_ok.load(Acquire) {
            return None;
        }
        let gen = links.conn_gen.load(Acquire);
        let mut conn = links
            .pub_conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        links.backlog.published(channel, payload.len());
        let mut cmd = redis::Cmd::with_capacity(3, 7 + channel.len() + payload.len());
        cmd.arg("PUBLISH").arg(channel).arg(payload);
        let channel = channel.to_string();
        // On the socket from this thread when the connection has nothing in flight (plain
        // TCP): only the reply wakes the runtime. Otherwise through the redis crate's driver.
        let written = links
            .pub_direct
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .and_then(|d| d.try_publish(&cmd.get_packed_command()));
        // Unconstrained: a caller's task that has used up tokio's cooperative budget (a
        // `join_all` of thousands of publishes) would otherwise see its first poll return
        // Pending before the command reached the connection's queue, and a publish handed to
        // the publisher task after it could then be written first.
        let mut fut: Direct = Box::pin(tokio::task::unconstrained(async move {
            let res = match written {
                Some(reply) => {
                    crate::runtime::timeout_at(deadline, super::direct::reply(reply)).await
                }
                None => crate::runtime::timeout_at(deadline, conn.send_packed_command(&cmd)).await,
            };
            let (out, dead) = super::publisher::direct_outcome(&channel, res);
            if let Some(reason) = dead {
                // Until the task has seen it, nothing more is written from here.
                if guard.0.conn_gen.load(Acquire) == gen {
                    guard.0.direct_ok.store(false, Release);
                }
                let _ = guard.0.direct_dead.send((gen, reason));
            }
            drop(guard);
            out
        }));
        // One poll hands the command to the connection, fixing its place in the write order.
        // A no-op waker is enough: whoever awaits the replies polls the future again with its
        // own waker, and that poll sees an answer or a timeout that came meanwhile.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let direct: Direct = match fut.as_mut().poll(&mut cx) {
            Poll::Ready(r) => Box::pin(std::future::ready(r)),
            Poll::Pending => fut,
        };
        let mut r = self.replies(Answers::new(0), deadline);
        r.direct = Some(direct);
        Some(r)
    }

    fn replies(&self, answers: Arc<Answers>, deadline: tokio::time::Instant) -> Replies {
        Replies {
            direct: None,
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
        self.links.busy.fetch_add(1, AcqRel);
        let req = PubRequest {
            channel,
            payload,
            answers: answers.clone(),
            i,
            links: self.links.clone(),
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
                let reserved = crate::runtime::timeout_at(deadline, self.pub_tx.reserve()).await;
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
}
