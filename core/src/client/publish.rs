//! Publishing: `publish` and its family, `publish_batch`, and `queue_batch` with the client's
//! hand-over task.
//!
//! One path for all of them: [`prepare`](EventBusClient::prepare) validates and encodes an
//! event (no I/O; a failure is the event's outcome and it is never sent), [`hand_over`] gives
//! the encoded events to the transport in order, and [`outcomes`](EventBusClient::outcomes)
//! turns the transport's answers into one outcome per event (counted, logged). A single
//! `publish` is that path for one event; a batch goes a chunk of [`HAND_OVER_CHUNK`] events
//! at a time, each item keeping a slot for its outcome so the failures of invalid items stay
//! in order with the outcomes of the sent ones.

use std::sync::atomic::{AtomicU8, Ordering::*};
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;

use super::outcome::{BatchItem, IntoBatchItem, PublishFailure, PublishOutcome, PublishReceipt};
use super::EventBusClient;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{encode, OutgoingEvent, PublishOptions};
use crate::transport::{Queued, Transport};

/// A publish that failed before its event was built: a fresh id and the time now, as the TS
/// package reports it.
fn failure(error: Error) -> PublishFailure {
    PublishFailure {
        error,
        event_id: crate::event::new_id(),
        published_at: crate::event::now_iso(),
    }
}

impl EventBusClient {
    /// Build, validate and encode one event (no I/O).
    fn prepare(
        &self,
        event_type: &str,
        data: &RawValue,
        opts: &PublishOptions,
    ) -> std::result::Result<OutgoingEvent, PublishFailure> {
        let s = &self.inner.settings;
        opts.check().map_err(failure)?;
        self.inner
            .validator
            .validate_publish(&s.service_name, event_type, data.get(), opts)
            .map_err(failure)?;
        self.warn_unknown_keys("publish option", &opts.unknown_keys);
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
        let deadline = tokio::time::Instant::now() + self.inner.settings.publish_timeout;
        let mut ev = ev;
        if opts.is_persistent() {
            if let Err(e) = self.append_to_stream(&mut ev, opts).await {
                let f = PublishFailure {
                    error: e,
                    event_id: ev.id,
                    published_at: ev.timestamp,
                };
                self.count_failure(&f);
                return Err(f);
            }
        }
        let mut evs = vec![ev];
        let queued = hand_over(self.transport().as_deref(), &mut evs, deadline).await;
        crate::runtime::note_activity();
        self.outcomes(evs, queued)
            .await
            .pop()
            .expect("one outcome per event")
    }

    /// Persistent items of a batch chunk: append each to its stream before the chunk is
    /// handed over; one that cannot be appended fails (its slot gets the failure) and is not
    /// published.
    async fn append_persistent(
        &self,
        chunk: &[BatchItem],
        slots: &mut [Option<PublishOutcome>],
        evs: &mut Vec<OutgoingEvent>,
    ) {
        if !chunk.iter().any(|it| it.options.is_persistent()) {
            return;
        }
        let mut kept = Vec::with_capacity(evs.len());
        let mut sent = std::mem::take(evs).into_iter();
        for (it, slot) in chunk.iter().zip(slots.iter_mut()) {
            if slot.is_some() {
                continue; // failed validation: no event
            }
            let Some(mut ev) = sent.next() else { break };
            if it.options.is_persistent() {
                if let Err(e) = self.append_to_stream(&mut ev, &it.options).await {
                    let f = PublishFailure {
                        error: e,
                        event_id: ev.id,
                        published_at: ev.timestamp,
                    };
                    self.count_failure(&f);
                    *slot = Some(Err(f));
                    continue;
                }
            }
            kept.push(ev);
        }
        *evs = kept;
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
            let (mut slots, mut evs) = self.prepare_all(chunk);
            self.append_persistent(chunk, &mut slots, &mut evs).await;
            let queued = hand_over(t.as_deref(), &mut evs, deadline).await;
            parts.push(Part { slots, evs, queued });
        }
        parts
    }

    /// Validate and encode every item: the events to send, and one slot per item (already
    /// holding the failure of an item that is not valid).
    fn prepare_all(
        &self,
        items: &[BatchItem],
    ) -> (Vec<Option<PublishOutcome>>, Vec<OutgoingEvent>) {
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

    /// Count and log a publish that failed.
    /// A publish the host refused before it could reach the core (its data or options cannot
    /// become JSON): counted in `eventsFailed` and logged like every other failed publish, and
    /// answered with a fresh event id, so stats and logs are the same whichever side refused.
    pub fn refused_publish(&self, error: Error) -> PublishFailure {
        let f = failure(error);
        self.count_failure(&f);
        f
    }

    pub(super) fn count_failure(&self, f: &PublishFailure) {
        self.inner.stats.publish_failed.fetch_add(1, Relaxed);
        self.inner.logger.error(
            "Failed to publish event",
            &[
                ("code", f.error.kind().code().to_string()),
                ("error", f.error.to_string()),
            ],
        );
    }

    /// `publish_batch` for hosts whose calls return before the work is done (the Node face:
    /// the publishes of one tick are one call; Python asyncio): the items go to the client's
    /// hand-over task at once, which validates, encodes and hands them to the publisher after
    /// those of earlier calls, so events queued by successive calls reach Redis in call
    /// order, whichever thread awaits the returned future (which answers each item). The
    /// host's thread only moves the items; the encoding runs on the runtime. A call of one
    /// item while the task holds nothing (a lone awaited publish) is the exception: it is
    /// checked, encoded and, when the publisher connection is idle, written on the calling
    /// thread ([`write_lone`](Self::write_lone)), which wakes one thread fewer. When
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
        let (lone, parts) = match self.write_lone(items, deadline) {
            Lone::Written(l) => (Some(l), Err(Unsent::RuntimeGone)), // `parts` unused
            Lone::HandOver(item) => (None, self.queue_for_hand_over(vec![item], deadline, &taken)),
            Lone::Many(items) => (None, self.queue_for_hand_over(items, deadline, &taken)),
        };
        let this = self.clone();
        async move {
            if let Some(l) = lone {
                crate::runtime::note_activity();
                return vec![match l {
                    Ok((ev, queued)) => this.outcomes(vec![ev], Some(queued)).await.remove(0),
                    Err(f) => Err(f),
                }];
            }
            let gone = || Unsent::RuntimeGone;
            let why = match parts {
                Ok(Some(mut rx)) => {
                    // The task takes the job by the deadline unless it is stuck (or gone, as
                    // in a forked child); a job not taken by then is called off, so it is
                    // never sent after this reports it failed.
                    let answered = match crate::runtime::timeout_at(deadline, &mut rx).await {
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

    /// Room for `items` among the events waiting for the hand-over task, and the items given
    /// to it; `Err` when no room was made by `deadline`.
    fn queue_for_hand_over<I: IntoBatchItem>(
        &self,
        items: Vec<I>,
        deadline: tokio::time::Instant,
        taken: &Arc<AtomicU8>,
    ) -> std::result::Result<Option<HandedOverRx>, Unsent> {
        if self.room_to_hand_over(items.len(), deadline) {
            Ok(self.send_to_hand_over(items, deadline, taken.clone()))
        } else {
            Err(Unsent::TimedOut)
        }
    }

    /// A `queue_batch` call of one item while the hand-over task holds nothing (no earlier
    /// call's events can be waiting to go before it): the item is checked and encoded on the
    /// calling thread and, when the publisher connection is idle, written from here
    /// ([`Transport::write_directly`]), so a lone awaited publish wakes neither the hand-over
    /// task nor the publisher task. Anything else is for the hand-over task, as before: more
    /// than one item, a persistent event (its `XADD` goes first), not connected, or a busy
    /// publisher.
    fn write_lone<I: IntoBatchItem>(
        &self,
        mut items: Vec<I>,
        deadline: tokio::time::Instant,
    ) -> Lone<I> {
        if items.len() != 1 || self.inner.waiting_hand_over.load(Acquire) != 0 {
            return Lone::Many(items);
        }
        // Not connected, or a publisher with work of its own: encoding here would be wasted.
        let Some(t) = self.transport().filter(|t| t.idle_for_direct_write()) else {
            return Lone::Many(items);
        };
        let item = match items.pop().expect("one item").into_batch_item() {
            Ok(item) => item,
            Err(e) => {
                let f = failure(e);
                self.count_failure(&f);
                return Lone::Written(Err(f));
            }
        };
        if item.options.is_persistent() {
            return Lone::HandOver(item);
        }
        let mut ev = match self.prepare(&item.event_type, &item.data, &item.options) {
            Ok(ev) => ev,
            Err(f) => {
                self.count_failure(&f);
                return Lone::Written(Err(f));
            }
        };
        match t.write_directly(&ev.channel, &ev.payload, deadline) {
            Some(queued) => {
                ev.payload = String::new(); // written: not needed any more
                Lone::Written(Ok((ev, queued)))
            }
            None => Lone::HandOver(item), // busy since the check above: re-encoded there
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
    ) -> Option<HandedOverRx> {
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
            out.extend(fill(slots, self.outcomes(evs, queued).await));
        }
        out
    }

    /// One outcome per event handed over, in order, once the transport has answered
    /// (`queued` is `None` when there was no transport: not connected).
    async fn outcomes(
        &self,
        evs: Vec<OutgoingEvent>,
        queued: Option<Queued>,
    ) -> Vec<PublishOutcome> {
        match queued {
            Some(q) => self.settle(evs, q.answers().await),
            None => self.not_sent(evs),
        }
    }

    /// Outcomes for events that could not be sent: not connected.
    fn not_sent(&self, evs: Vec<OutgoingEvent>) -> Vec<PublishOutcome> {
        let errs = evs.iter().map(|_| Err(Error::not_connected())).collect();
        self.settle(evs, errs)
    }

    /// One outcome per event from the transport's answers (counted, and logged at debug).
    fn settle(&self, evs: Vec<OutgoingEvent>, results: Vec<Result<u64>>) -> Vec<PublishOutcome> {
        let now = std::time::Instant::now();
        self.inner.stats.publish_rtt.record_all(
            evs.iter()
                .zip(&results)
                .filter(|(_, r)| r.is_ok())
                .map(|(ev, _)| now.saturating_duration_since(ev.encoded_at).as_micros() as u64),
        );
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
                Err(error) if ev.stored => {
                    // In the stream already: durable readers get it; only the live copy
                    // failed.
                    self.inner.stats.published.fetch_add(1, Relaxed);
                    self.inner.stats.persistent_publish_only.fetch_add(1, Relaxed);
                    self.inner.logger.warn(
                        "Persistent event stored in its stream, but PUBLISH failed: live subscribers missed it",
                        &[("eventId", ev.id.clone()), ("error", error.to_string())],
                    );
                    Ok(PublishReceipt {
                        event_id: ev.id,
                        published_at: ev.timestamp,
                        delivered_to: 0,
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
}

/// A batch is validated, encoded and handed to the publisher this many events at a time.
const HAND_OVER_CHUNK: usize = 64;

/// Most events waiting for a client's hand-over task ([`EventBusClient::queue_batch`]) before
/// the calling thread waits for room (as many as the publisher's own queue holds).
pub const MAX_WAITING_HAND_OVER: usize = 65_536;

/// One `queue_batch` call for the hand-over task. It holds the client (the task itself does
/// not, so the task ends when the last client handle is dropped). Dropped, handed over or
/// not, it gives back its room in [`MAX_WAITING_HAND_OVER`].
pub(super) struct HandOverJob {
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

/// What [`EventBusClient::write_lone`] made of a `queue_batch` call.
enum Lone<I> {
    /// Written (the event, and what the transport answers it with), or failed its checks.
    Written(std::result::Result<(OutgoingEvent, Queued), PublishFailure>),
    /// One item, checked already, for the hand-over task.
    HandOver(BatchItem),
    /// The call's items, for the hand-over task.
    Many(Vec<I>),
}

type HandedOverRx = tokio::sync::oneshot::Receiver<HandedOver>;

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
    evs: Vec<OutgoingEvent>,
    queued: Option<Queued>,
}

/// Hand `evs` to the transport `t` for sending, in order, moving their payloads out (they are
/// not needed after the write); waiting for room ends at `deadline`. `None` without a
/// transport (not connected).
async fn hand_over(
    t: Option<&Transport>,
    evs: &mut [OutgoingEvent],
    deadline: tokio::time::Instant,
) -> Option<Queued> {
    let t = t?;
    let items = evs
        .iter_mut()
        .map(|e| (e.channel.clone(), std::mem::take(&mut e.payload)))
        .collect();
    Some(t.hand_over(items, deadline).await)
}

/// Put the outcomes of the events sent into the empty slots, in order.
fn fill(slots: Vec<Option<PublishOutcome>>, sent: Vec<PublishOutcome>) -> Vec<PublishOutcome> {
    let mut sent = sent.into_iter();
    slots
        .into_iter()
        .map(|s| s.or_else(|| sent.next()).expect("one outcome per item"))
        .collect()
}
