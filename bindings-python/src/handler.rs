//! What a subscription handler becomes on the Python side, shared by both clients: the
//! [`Job`]s that cross from the Rust runtime into Python, the one [`PyHandler`] that queues
//! them (on the blocking client's dispatcher thread or on an asyncio loop, see [`Runner`]),
//! and how a Python exception becomes the core's [`HandlerError`].
//!
//! Crossing into Python goes in batches: taking the GIL costs far more than running a short
//! handler, so each acquisition runs as many queued jobs as are waiting (at most [`BATCH`]).
//! The two runners live in their own files: [`crate::dispatcher`] (blocking client) and
//! [`crate::loop_bridge`] with [`crate::aio_batch`] (asyncio client). Tokio workers never hold
//! the GIL for longer than pushing a wake-up.
//!
//! In-order subscriptions (concurrency 1) say `batched()`: the core hands over everything
//! queued in one `run_batch`, which is one [`Job::Batch`]. Outcomes go back through the core's
//! [`OutcomeReporter`], which wakes the core once per run of events rather than once per
//! event. Each event is claimed before it runs and the run ends at the first the core gave up
//! (after a timeout the core calls the unclaimed ones on their own), so each event runs once.
//!
//! Handler outcomes reach the core only through the core's own calls (the reply of
//! [`Handler::call`] and [`OutcomeReporter::report`]); the core keeps the stats. One count
//! starts here: a [`Reply`] sent after the core stopped waiting for it (the handler's timeout
//! passed) is a late completion ([`event_bus::LateCompletions`]). When the core stops waiting
//! for an asyncio handler's task, the task is cancelled ([`Job::Cancel`]); the blocking client
//! cannot stop a running callable, its handler runs to its end. Each job runs under [`crate::errors::guard_unraisable`], so a Rust panic
//! in one is reported (as `InternalError`) without losing the rest of the queue; a job dropped
//! that way fails its events in the core, as a dropped reply or reporter does.

use std::sync::{Arc, Mutex};

use event_bus::{Delivery, Handler, HandlerError, HandlerFuture, LateCompletions, OutcomeReporter};
use pyo3::prelude::*;
use tokio::sync::oneshot;

use crate::types::Event;

/// Where a handler's outcome goes back to the core; an outcome the core no longer waits for
/// counts as a late completion.
pub struct Reply {
    tx: oneshot::Sender<Result<(), HandlerError>>,
    late: LateCompletions,
    /// The asyncio task running the handler, for [`Job::Cancel`].
    pub task: Arc<Mutex<TaskSlot>>,
}

impl Reply {
    /// Send the outcome; `Err` (and a late completion counted) when the core stopped waiting.
    pub fn send(self, outcome: Result<(), HandlerError>) -> Result<(), ()> {
        self.tx.send(outcome).map_err(|_| self.late.record())
    }

    /// The core stopped waiting (the call timed out while queued).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The asyncio task of a handler call, as far as the core's giving up is concerned.
#[derive(Default)]
pub enum TaskSlot {
    /// No task yet (queued, or a plain callable).
    #[default]
    None,
    /// The task running the handler's coroutine.
    Running(Py<PyAny>),
    /// The core stopped waiting: cancel the task when it is made.
    GivenUp,
}

/// Cancels the call's task when the core drops the call's future before its outcome arrived
/// (its timeout passed, or the client stopped waiting at disconnect).
struct CancelOnDrop<R: Runner> {
    runner: Arc<R>,
    task: Arc<Mutex<TaskSlot>>,
    armed: bool,
}

impl<R: Runner> Drop for CancelOnDrop<R> {
    fn drop(&mut self) {
        // Only past the timeout: a disconnect that stops waiting (perhaps called by this very
        // handler) leaves the task running.
        if !self.armed || !event_bus::dropping_on_timeout() {
            return;
        }
        let mut slot = self.task.lock().unwrap_or_else(|p| p.into_inner());
        match std::mem::replace(&mut *slot, TaskSlot::GivenUp) {
            TaskSlot::Running(task) => {
                drop(slot);
                self.runner.send(Job::Cancel { task });
            }
            TaskSlot::None | TaskSlot::GivenUp => {}
        }
    }
}
/// Builds the value (or exception) an asyncio future is resolved with, on the loop thread.
pub type Resolver = Box<dyn for<'py> FnOnce(Python<'py>) -> PyResult<Py<PyAny>> + Send>;

/// At most this many jobs run per GIL acquisition (or per drain of the loop's queue).
pub const BATCH: usize = 1024;

/// Work for the Python side.
pub enum Job {
    /// Run a handler for one event and report the outcome.
    Call {
        handler: Arc<Py<PyAny>>,
        event: Delivery,
        reply: Reply,
    },
    /// Run a handler for several events of an in-order subscription, one after another.
    Batch {
        handler: Arc<Py<PyAny>>,
        events: Vec<Delivery>,
        outcomes: OutcomeReporter,
    },
    /// Resolve an asyncio future with the result of an operation.
    Resolve { future: Py<PyAny>, make: Resolver },
    /// Cancel the task of a handler call the core stopped waiting for (asyncio only).
    Cancel { task: Py<PyAny> },
}

/// A queue of [`Job`]s that some Python thread runs.
pub trait Runner: Send + Sync + 'static {
    /// Why a handler call got no outcome: the job could not be queued, or was dropped before
    /// it ran.
    const LOST: &'static str;

    /// Queue `job`; false when it can never run (the job is dropped).
    fn send(self: &Arc<Self>, job: Job) -> bool;
}

/// A Python callable as the core's [`Handler`]: each call, and each in-order batch, is one
/// [`Job`] for the runner `R`.
pub struct PyHandler<R: Runner> {
    pub handler: Arc<Py<PyAny>>,
    pub runner: Arc<R>,
    pub late: LateCompletions,
}

impl<R: Runner> Handler for PyHandler<R> {
    fn call(&self, event: Delivery) -> HandlerFuture {
        let (tx, rx) = oneshot::channel();
        let task = Arc::new(Mutex::new(TaskSlot::None));
        let sent = self.runner.send(Job::Call {
            handler: self.handler.clone(),
            event,
            reply: Reply {
                tx,
                late: self.late.clone(),
                task: task.clone(),
            },
        });
        let guard = CancelOnDrop {
            runner: self.runner.clone(),
            task,
            armed: sent,
        };
        Box::pin(async move {
            // Moved in whole, so it lives as long as the future.
            let mut guard = guard;
            if !sent {
                return Err(HandlerError::new(R::LOST));
            }
            let out = rx.await.unwrap_or_else(|_| Err(HandlerError::new(R::LOST)));
            guard.armed = false;
            out
        })
    }

    fn batched(&self) -> bool {
        true
    }

    /// The whole batch is one job: one GIL acquisition on the dispatcher thread, at most one
    /// `call_soon_threadsafe` for the loop.
    fn run_batch(&self, events: Vec<Delivery>, outcomes: OutcomeReporter) {
        // When it cannot be queued the job (and its reporter) is dropped: every event fails.
        self.runner.send(Job::Batch {
            handler: self.handler.clone(),
            events,
            outcomes,
        });
    }
}

/// Run `handler` for one event, synchronously: what it returned (maybe an awaitable).
pub fn call_handler<'py>(
    py: Python<'py>,
    handler: &Py<PyAny>,
    event: Delivery,
) -> PyResult<Bound<'py, PyAny>> {
    let ev = Py::new(py, Event::new(event))?;
    handler.bind(py).call1((ev,))
}

/// Run the handler of a [`Job::Call`]: what it returned, or `None` without running it when
/// the call timed out while queued (the core no longer waits for its `reply`).
pub fn run_call<'py>(
    py: Python<'py>,
    handler: &Py<PyAny>,
    event: Delivery,
    reply: &Reply,
) -> Option<PyResult<Bound<'py, PyAny>>> {
    if reply.is_closed() {
        return None;
    }
    Some(call_handler(py, handler, event))
}

/// A handler's exception as the core's failure, its traceback logged at DEBUG.
pub fn failure(py: Python<'_>, e: &PyErr) -> HandlerError {
    log_traceback(py, e);
    HandlerError::new(describe(py, e))
}

/// `TypeName: message` of a Python exception.
pub fn describe(py: Python<'_>, e: &PyErr) -> String {
    let v = e.value(py);
    let name = v
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".into());
    match v.str() {
        Ok(s) if !s.to_string_lossy().is_empty() => format!("{name}: {}", s.to_string_lossy()),
        _ => name,
    }
}

/// The core logs a handler failure (rate-limited); the traceback goes to DEBUG for whoever
/// wants it.
pub fn log_traceback(py: Python<'_>, e: &PyErr) {
    if let Some(lg) = crate::host::LOGGER.get() {
        let lg = lg.bind(py);
        if lg
            .call_method1("isEnabledFor", (10,))
            .and_then(|b| b.is_truthy())
            .unwrap_or(false)
        {
            let kw = pyo3::types::PyDict::new(py);
            let _ = kw.set_item("exc_info", e.value(py));
            let _ = lg.call_method("debug", ("event handler raised",), Some(&kw));
        }
    }
}
