//! Outcomes of one [`Handler::run_batch`](super::Handler::run_batch), reported
//! by the host without waking the core once per event.
//!
//! A face that runs a batch of in-order events on its own thread could answer each event's
//! future through a oneshot channel, but the subscription worker waits on those futures one
//! after another and catches up after every event: each answer then wakes a parked tokio worker
//! (a futex call on the host thread, and a context switch that a 2-core machine feels). Here
//! the host records outcomes in shared slots and wakes the core only when it [`flushes`]: at the
//! end of a run of events, before it waits on anything, on a failure, after a handler that ran
//! for 100 µs or more (the wake is small next to it), or once a millisecond has passed since
//! the last wake. So with fast handlers a success waits at most a millisecond, and the
//! maxPending count (an event stops counting when the core reaches it) stays close to the
//! truth. One case holds a success longer: a fast handler followed by one that blocks its
//! thread (a plain callable, or a coroutine that blocks the loop without awaiting) keeps the
//! first one's outcome until the second returns. The core then reaches the second event late,
//! so its timeout counts from later; a timeout never blames the wrong event, because a timer
//! that fires reads the outcome recorded before it.
//!
//! [`flushes`]: OutcomeReporter::flush

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::*};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;

use super::HandlerError;

/// An event's state in [`SharedStates`]: no outcome yet.
pub const STATE_PENDING: u8 = 0;
/// An event's state in [`SharedStates`]: its handler succeeded.
pub const STATE_OK: u8 = 1;
const PENDING: u8 = STATE_PENDING;
const OK: u8 = STATE_OK;
const FAILED: u8 = 2;
/// The core gave the event up (unsubscribed, or after a timeout earlier in the batch it calls
/// the event on its own): the host must not run it.
pub const STATE_ABANDONED: u8 = 3;
const ABANDONED: u8 = STATE_ABANDONED;
/// The host claimed the event ([`OutcomeReporter::claim`]) and runs it: the core no longer
/// gives it up, it waits for its outcome.
pub const STATE_RUNNING: u8 = 4;
const RUNNING: u8 = STATE_RUNNING;
/// The host claimed the event and runs it, but the core stopped waiting for it (its timeout
/// passed): the host's outcome comes late. The host reports it
/// as usual ([`OutcomeReporter::report`]; a host writing [`SharedStates`] itself reports a
/// success it could not store over this state), and the run counts as a late completion.
pub const STATE_GIVEN_UP: u8 = 5;
const GIVEN_UP: u8 = STATE_GIVEN_UP;
/// A given-up event whose late outcome arrived (and was counted).
const LATE: u8 = 6;

/// Longest a success waits for a wake while the host keeps running handlers.
const FLUSH_EVERY: Duration = Duration::from_millis(1);

/// A handler that ran this long gets its outcome flushed at once.
const SLOW_HANDLER: Duration = Duration::from_micros(100);

struct Shared {
    states: Box<[AtomicU8]>,
    errors: Mutex<Vec<(usize, HandlerError)>>,
    waker: AtomicWaker,
    /// The reporter is gone: events without an outcome fail with `gone`.
    closed: AtomicBool,
    gone: &'static str,
    /// Where a late outcome of a given-up event is counted.
    late: Option<crate::stats::LateCompletions>,
    /// What the host asked to be told when the core gives up a running event.
    on_give_up: Mutex<Option<GiveUpHook>>,
}

type GiveUpHook = Box<dyn Fn(usize) + Send + Sync>;

/// The host's end: records each event's outcome by its index in the batch.
pub struct OutcomeReporter {
    shared: Arc<Shared>,
    start: Instant,
    /// Microseconds after `start` of the last wake.
    last_flush: AtomicU64,
    /// Microseconds after `start` of the last outcome recorded.
    last_report: AtomicU64,
    /// Outcomes recorded since the last wake.
    unflushed: AtomicBool,
}

/// Futures for the `n` events of a batch, in order, and the reporter that completes them.
/// Dropping the reporter fails every event it did not report with `gone`.
pub fn batch_outcomes(n: usize, gone: &'static str) -> (OutcomeReporter, Vec<BatchOutcome>) {
    batch_outcomes_counted(n, gone, None)
}

/// [`batch_outcomes`], counting the late outcomes of given-up events in `late`.
pub(crate) fn batch_outcomes_counted(
    n: usize,
    gone: &'static str,
    late: Option<crate::stats::LateCompletions>,
) -> (OutcomeReporter, Vec<BatchOutcome>) {
    let shared = Arc::new(Shared {
        states: (0..n).map(|_| AtomicU8::new(PENDING)).collect(),
        errors: Mutex::new(Vec::new()),
        waker: AtomicWaker::new(),
        closed: AtomicBool::new(false),
        gone,
        late,
        on_give_up: Mutex::new(None),
    });
    let futs = (0..n)
        .map(|i| BatchOutcome {
            shared: shared.clone(),
            i,
            done: false,
        })
        .collect();
    let reporter = OutcomeReporter {
        shared,
        start: Instant::now(),
        last_flush: AtomicU64::new(0),
        last_report: AtomicU64::new(0),
        unflushed: AtomicBool::new(false),
    };
    (reporter, futs)
}

impl OutcomeReporter {
    /// Number of events in the batch.
    pub fn len(&self) -> usize {
        self.shared.states.len()
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.shared.states.is_empty()
    }

    /// Claim event `i` before running it: false when the core gave it up, and with it every
    /// later event of the batch (the host must then end the run; the core runs those on their
    /// own, or not at all after an unsubscribe). One
    /// compare-and-swap decides between the host starting an event and the core giving it up
    /// ([`BatchOutcome::abandon`]), so an event never runs both ways.
    pub fn claim(&self, i: usize) -> bool {
        self.shared.states.get(i).is_some_and(|s| {
            s.compare_exchange(PENDING, RUNNING, AcqRel, Acquire)
                .is_ok()
        })
    }

    /// Record event `i`'s outcome. A failure wakes the core at once (it may retry), as does
    /// the success of a handler that ran 100 µs or more (measured from the previous outcome,
    /// or from the batch's creation for the first); other successes wake it once a millisecond
    /// has passed since the last wake, so call [`flush`] when a run of events ends and before
    /// waiting on anything.
    ///
    /// [`flush`]: OutcomeReporter::flush
    pub fn report(&self, i: usize, outcome: Result<(), HandlerError>) {
        let Some(state) = self.shared.states.get(i) else {
            return;
        };
        let failed = outcome.is_err();
        let new = match outcome {
            Ok(()) => OK,
            Err(e) => {
                self.shared
                    .errors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((i, e));
                FAILED
            }
        };
        let recorded = state
            .compare_exchange(RUNNING, new, AcqRel, Acquire)
            .or_else(|_| state.compare_exchange(PENDING, new, AcqRel, Acquire));
        if recorded.is_err() {
            if failed {
                self.shared
                    .errors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|(k, _)| *k != i);
            }
            // The core stopped waiting for this one: a late completion, counted once.
            if state
                .compare_exchange(GIVEN_UP, LATE, AcqRel, Acquire)
                .is_ok()
            {
                if let Some(late) = &self.shared.late {
                    late.record();
                }
            }
            return; // abandoned, given up, or reported twice
        }
        self.unflushed.store(true, Relaxed);
        let now = self.micros();
        let ran = now.saturating_sub(self.last_report.swap(now, Relaxed));
        let held = now.saturating_sub(self.last_flush.load(Relaxed));
        if failed
            || ran >= SLOW_HANDLER.as_micros() as u64
            || held >= FLUSH_EVERY.as_micros() as u64
        {
            self.flush();
        }
    }

    /// Wake the core if outcomes were recorded since the last wake; cheap when none were.
    pub fn flush(&self) {
        if self.unflushed.swap(false, AcqRel) {
            self.last_flush.store(self.micros(), Relaxed);
            self.shared.waker.wake();
        }
    }

    /// Fail every event not reported yet with the batch's `gone` message, now (dropping the
    /// reporter does the same). For a host object that holds the reporter but may outlive the
    /// batch.
    pub fn close(&self) {
        self.shared.closed.store(true, Release);
        self.shared.waker.wake();
    }

    fn micros(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// The batch's event states as memory a host writes and reads itself, without a call per
    /// event (Node: JS sees them as a `Uint8Array` and uses `Atomics`). Byte `i` is event `i`:
    /// the host claims it as [`claim`](Self::claim) does (a compare-and-swap from
    /// [`STATE_PENDING`] to [`STATE_RUNNING`]; end the run when it fails), stores
    /// [`STATE_OK`] when its handler succeeds, reports failures with [`report`](Self::report)
    /// and calls [`wake`](Self::wake) at the points where it would [`flush`](Self::flush).
    pub fn shared_states(&self) -> SharedStates {
        SharedStates(self.shared.clone())
    }

    /// Call `hook(i)` when the core stops waiting for event `i` after the host claimed it (its
    /// timeout passed): the host may then tell its handler to
    /// stop (Node aborts the handler's `AbortSignal`, asyncio cancels its task). Called on the
    /// core's thread, at most once per event; it must not block.
    pub fn on_give_up(&self, hook: impl Fn(usize) + Send + Sync + 'static) {
        *self
            .shared
            .on_give_up
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Box::new(hook));
    }

    /// Wake the core to read outcomes written through [`SharedStates`].
    pub fn wake(&self) {
        self.last_flush.store(self.micros(), Relaxed);
        self.shared.waker.wake();
    }
}

/// The event states of one batch ([`OutcomeReporter::shared_states`]); the memory stays valid
/// while this value lives, whatever happens to the reporter and the futures.
pub struct SharedStates(Arc<Shared>);

impl SharedStates {
    /// The states, one per event of the batch (the `STATE_*` values). A host may share this
    /// memory with its own thread (Node hands it to JS as an external buffer), as long as
    /// every access is atomic.
    pub fn states(&self) -> &[AtomicU8] {
        &self.0.states
    }

    /// Number of events (bytes).
    pub fn len(&self) -> usize {
        self.0.states.len()
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.0.states.is_empty()
    }
}

impl Drop for OutcomeReporter {
    fn drop(&mut self) {
        self.close();
    }
}

/// One event's future: its outcome as the host reports it. Dropping it before it completes
/// gives the event up unless the host already claimed it.
pub struct BatchOutcome {
    shared: Arc<Shared>,
    i: usize,
    done: bool,
}

impl BatchOutcome {
    /// Give the event up unless the host claimed it: true when the host will not run it (the
    /// caller may run it another way), false when the host runs or ran it (await this future).
    pub fn abandon(&self) -> bool {
        let state = &self.shared.states[self.i];
        match state.compare_exchange(PENDING, ABANDONED, AcqRel, Acquire) {
            Ok(_) => true,
            Err(now) => now == ABANDONED,
        }
    }

    fn check(&self) -> Option<Result<(), HandlerError>> {
        // `closed` first: every outcome reported before the reporter closed is then visible.
        let closed = self.shared.closed.load(Acquire);
        match self.shared.states[self.i].load(Acquire) {
            OK => Some(Ok(())),
            FAILED => {
                let mut errs = self.shared.errors.lock().unwrap_or_else(|p| p.into_inner());
                let at = errs.iter().position(|(k, _)| *k == self.i);
                Some(Err(at
                    .map(|k| errs.swap_remove(k).1)
                    .unwrap_or_else(|| HandlerError::new("handler failed"))))
            }
            _ if closed => Some(Err(HandlerError::new(self.shared.gone))),
            _ => None,
        }
    }
}

impl Future for BatchOutcome {
    type Output = Result<(), HandlerError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let r = match this.check() {
            Some(r) => r,
            None => {
                this.shared.waker.register(cx.waker());
                match this.check() {
                    Some(r) => r,
                    None => return Poll::Pending,
                }
            }
        };
        this.done = true;
        Poll::Ready(r)
    }
}

impl Drop for BatchOutcome {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let state = &self.shared.states[self.i];
        if state
            .compare_exchange(PENDING, ABANDONED, AcqRel, Acquire)
            .is_ok()
        {
            return;
        }
        // Claimed and still running, and its timeout passed: the core stops waiting; tell
        // the host. (Dropped otherwise, by an unsubscribe or a disconnect, it stays running.)
        if super::dropping_on_timeout()
            && state
                .compare_exchange(RUNNING, GIVEN_UP, AcqRel, Acquire)
                .is_ok()
        {
            let hook = self
                .shared
                .on_give_up
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(hook) = hook.as_ref() {
                hook(self.i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn giving_up_a_running_event_tells_the_host_and_counts_its_late_outcome_once() {
        let stats = Arc::new(crate::stats::Stats::default());
        let late = crate::stats::LateCompletions(stats.clone());
        let (rep, futs) = batch_outcomes_counted(3, "gone", Some(late));
        let told = Arc::new(Mutex::new(Vec::new()));
        let t = told.clone();
        rep.on_give_up(move |i| t.lock().unwrap().push(i));
        let mut futs = futs.into_iter();
        let (f0, f1, f2) = (
            futs.next().unwrap(),
            futs.next().unwrap(),
            futs.next().unwrap(),
        );
        assert!(rep.claim(0) && rep.claim(1));
        crate::handler::drop_on_timeout(f0); // timed out while the host runs it
        drop(f2); // never claimed: abandoned, not given up
        assert_eq!(*told.lock().unwrap(), vec![0]);
        assert_eq!(
            rep.shared_states().states()[0].load(Acquire),
            STATE_GIVEN_UP
        );
        assert!(!rep.claim(2));
        rep.report(0, Ok(()));
        rep.report(0, Err(HandlerError::new("again")));
        rep.report(1, Ok(())); // in time
        let snap = stats.snapshot();
        assert_eq!(snap.handlers_late_completed, 1);
        drop(f1);
        assert_eq!(
            *told.lock().unwrap(),
            vec![0],
            "a finished event is not given up"
        );
    }

    #[tokio::test]
    async fn successes_and_failures_arrive_in_order() {
        let (rep, futs) = batch_outcomes(3, "gone");
        let mut futs = futs.into_iter();
        assert!(rep.claim(0));
        rep.report(0, Ok(()));
        rep.report(1, Err(HandlerError::new("boom")));
        rep.flush();
        assert!(futs.next().unwrap().await.is_ok());
        assert_eq!(futs.next().unwrap().await.unwrap_err().message, "boom");
        drop(rep);
        assert_eq!(futs.next().unwrap().await.unwrap_err().message, "gone");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_core_wakes_on_flush() {
        let (rep, futs) = batch_outcomes(1, "gone");
        let mut fut = futs.into_iter().next().unwrap();
        assert!(futures_util::FutureExt::now_or_never(&mut fut).is_none());
        let t = tokio::spawn(fut);
        tokio::task::yield_now().await;
        std::thread::spawn(move || {
            rep.report(0, Ok(()));
            rep.flush();
            std::mem::forget(rep); // only the flush may wake it, not the drop
        });
        let r = tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .expect("woken by flush");
        assert!(r.unwrap().is_ok());
    }

    #[tokio::test]
    async fn close_fails_what_was_not_reported() {
        let (rep, futs) = batch_outcomes(2, "gone");
        let mut futs = futs.into_iter();
        rep.report(0, Ok(()));
        rep.close();
        assert!(futs.next().unwrap().await.is_ok());
        assert_eq!(futs.next().unwrap().await.unwrap_err().message, "gone");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outcomes_written_to_shared_states_complete_the_futures() {
        let (rep, futs) = batch_outcomes(3, "gone");
        let states = rep.shared_states();
        assert_eq!(states.len(), 3);
        let mut futs = futs.into_iter();
        let first = tokio::spawn(futs.next().unwrap());
        let second = futs.next().unwrap();
        drop(futs); // the core gave up the third event
        fn byte(states: &SharedStates, i: usize) -> &AtomicU8 {
            &states.states()[i]
        }
        assert_eq!(byte(&states, 2).load(Acquire), STATE_ABANDONED);
        std::thread::spawn(move || {
            byte(&states, 0)
                .compare_exchange(STATE_PENDING, STATE_RUNNING, AcqRel, Acquire)
                .unwrap();
            byte(&states, 0).store(STATE_OK, Release);
            rep.report(1, Err(HandlerError::new("boom")));
            rep.wake();
            std::mem::forget(rep); // only the wake may complete the first, not the drop
        });
        let r = tokio::time::timeout(Duration::from_secs(10), first).await;
        assert!(r.expect("woken").unwrap().is_ok());
        assert_eq!(second.await.unwrap_err().message, "boom");
    }

    #[tokio::test]
    async fn a_dropped_future_gives_its_event_up() {
        let (rep, futs) = batch_outcomes(2, "gone");
        let mut futs = futs.into_iter();
        let first = futs.next().unwrap();
        drop(futs); // the core stopped (unsubscribed) after the first event
        assert!(rep.claim(0));
        assert!(!rep.claim(1));
        rep.report(0, Ok(()));
        rep.report(1, Ok(())); // ignored
        rep.flush();
        assert!(first.await.is_ok());
    }

    #[tokio::test]
    async fn claim_and_abandon_decide_each_event_once() {
        let (rep, futs) = batch_outcomes(3, "gone");
        let mut futs = futs.into_iter();
        let (a, b, c) = (
            futs.next().unwrap(),
            futs.next().unwrap(),
            futs.next().unwrap(),
        );
        // Claimed first: the core cannot give it up and awaits it.
        assert!(rep.claim(0));
        assert!(!a.abandon());
        // Given up first: the host cannot claim it.
        assert!(b.abandon());
        assert!(
            b.abandon(),
            "giving up twice still says the host will not run it"
        );
        assert!(!rep.claim(1));
        // Reported (succeeded) before the core looked: not given up either.
        assert!(rep.claim(2));
        rep.report(2, Ok(()));
        assert!(!c.abandon());
        rep.report(0, Err(HandlerError::new("late")));
        rep.flush();
        assert_eq!(a.await.unwrap_err().message, "late");
        assert!(c.await.is_ok());
    }
}
