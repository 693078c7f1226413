//! The contract between the core and a face's handlers: the [`Handler`] trait each face
//! implements for a subscription, the error a handler run fails with, and (in [`outcomes`])
//! how a host that runs a batch of events reports each one's outcome.
//!
//! Both the subscription workers and the faces build on this module; it depends on nothing of
//! theirs.

pub mod outcomes;

use std::future::Future;
use std::pin::Pin;

use crate::event::Delivery;
use outcomes::OutcomeReporter;

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

    /// True when the face runs several queued events of an in-order subscription in one
    /// crossing, through [`Handler::run_batch`]. Faces whose calls cost a thread hop or a
    /// wake-up (Node, asyncio) say yes; the default is no.
    fn batched(&self) -> bool {
        false
    }

    /// Run `events` in order in the host, each one starting after the previous one finished,
    /// and report each event's outcome through the [`OutcomeReporter`] the core made for the
    /// batch. Only called when [`Handler::batched`] is true and the subscription is in order
    /// (`concurrency` 1), with at most `min(1024, maxPending)` events; each counts as pending
    /// (toward `maxPending`) until the core reaches it, as it would in the queue.
    ///
    /// The host claims each event, in order, before it runs it ([`OutcomeReporter::claim`])
    /// and ends the run at the first it cannot claim (the core gave up that one and every
    /// later one). When a handler of the batch times out, the core gives up the events the
    /// host has not claimed yet (the host would reach them only after the slow handler) and
    /// calls those on their own at once, as outside a batch, while it awaits any the host did
    /// claim: each event runs once either way. Timeouts and retries still apply per event: a
    /// failed event is retried through [`Handler::call`] once the core reaches it, which may
    /// be after later events of the same batch already ran.
    ///
    /// A face that says [`Handler::batched`] must implement this: the default drops the
    /// reporter, which fails every event of the batch.
    fn run_batch(&self, events: Vec<Delivery>, outcomes: OutcomeReporter) {
        drop((events, outcomes));
    }
}

thread_local! {
    static DROPPING_ON_TIMEOUT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// True while the core drops a handler call's future (or a batch event's) because the
/// handler's timeout passed: a face's drop guard reads it to tell its handler to stop (Node
/// aborts the handler's signal, asyncio cancels its task). Other drops (an unsubscribe, a
/// disconnect that stops waiting, possibly from inside that very handler) read false.
pub fn dropping_on_timeout() -> bool {
    DROPPING_ON_TIMEOUT.with(|c| c.get())
}

/// Drop `v` (a timed-out call's future) with [`dropping_on_timeout`] true meanwhile.
pub(crate) fn drop_on_timeout<T>(v: T) {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            DROPPING_ON_TIMEOUT.with(|c| c.set(false));
        }
    }
    DROPPING_ON_TIMEOUT.with(|c| c.set(true));
    let _reset = Reset;
    drop(v);
}

/// Most events handed to one [`Handler::run_batch`].
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
