//! Crossing from the Rust runtime into Python, in batches: taking the GIL costs far more than
//! running a short handler, so each acquisition runs as many queued calls as are waiting.
//!
//! - [`Dispatcher`] (blocking client): one Python thread per client drains a channel of handler
//!   calls, many per GIL acquisition, and runs the plain-callable handlers there.
//! - [`LoopBridge`] (asyncio client): jobs (handler calls, results of awaited operations) queue
//!   up in Rust; the first job after a drain schedules one `loop.call_soon_threadsafe(drain)`,
//!   and that drain runs every queued job on the event loop thread. Coroutine handlers become
//!   tasks on that loop; the core's handler future completes when the task does, so timeouts
//!   and retries apply to coroutines.
//! - In-order subscriptions (concurrency 1) say `batched()`: the core hands over everything
//!   queued in one `run_batch`, which is one [`Job::Batch`]. The dispatcher thread runs it
//!   under one GIL acquisition; the loop runs it in one drain, calling handlers one after
//!   another, and when a handler returns an awaitable the rest of the batch continues in one
//!   task (`event_bus/_batch.py` + [`AioBatch`]). Outcomes go back through the core's
//!   [`OutcomeReporter`], which wakes the core once per run of events rather than once per
//!   event; the loop side flushes it before its task yields to the loop. Each event is claimed
//!   before it runs and the run ends at the first the core gave up (after a timeout the core
//!   calls the unclaimed ones on their own), so each event runs once.
//!
//! Tokio workers never hold the GIL for longer than pushing a wake-up.
//!
//! Handler outcomes reach the core only through the core's own calls (the reply of
//! [`Handler::call`] and [`OutcomeReporter::report`]); this side counts nothing, the core
//! keeps the stats. Each job runs under [`errors::guard_unraisable`], so a Rust panic in one
//! is reported (as `InternalError`) without losing the rest of the queue; a job dropped that
//! way fails its events in the core, as a dropped reply or reporter does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_bus::{Delivery, Handler, HandlerError, HandlerFuture, OutcomeReporter};
use pyo3::prelude::*;
use pyo3::types::PyString;
use tokio::sync::oneshot;

use crate::errors;
use crate::types::Event;

type Reply = oneshot::Sender<Result<(), HandlerError>>;
type Resolver = Box<dyn for<'py> FnOnce(Python<'py>) -> PyResult<Py<PyAny>> + Send>;

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
}

/// Run `handler` for one event, synchronously; `Ok(Some(awaitable))` when it returned one.
fn call_handler<'py>(
    py: Python<'py>,
    handler: &Py<PyAny>,
    event: Delivery,
) -> PyResult<Bound<'py, PyAny>> {
    let ev = Py::new(py, Event::new(event))?;
    handler.bind(py).call1((ev,))
}

fn failure(py: Python<'_>, e: &PyErr) -> HandlerError {
    log_traceback(py, e);
    HandlerError::new(describe(py, e))
}

const BATCH: usize = 1024;

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

fn log_traceback(py: Python<'_>, e: &PyErr) {
    // The core logs the failure (rate-limited); the traceback goes to DEBUG for whoever wants it.
    if let Some(lg) = crate::LOGGER.get() {
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

// ---------------------------------------------------------------- blocking client

/// The queue of handler calls that the blocking client's dispatcher thread runs.
pub struct Dispatcher {
    tx: mpsc::Sender<Job>,
    rx: Mutex<mpsc::Receiver<Job>>,
    stop: AtomicBool,
}

impl Dispatcher {
    pub fn new() -> Arc<Self> {
        let (tx, rx) = mpsc::channel();
        Arc::new(Dispatcher {
            tx,
            rx: Mutex::new(rx),
            stop: AtomicBool::new(false),
        })
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn reset(&self) {
        self.stop.store(false, Ordering::SeqCst);
    }

    /// Body of the dispatcher thread: runs until `request_stop()` and the queue is empty.
    pub fn run(&self, py: Python<'_>) -> PyResult<()> {
        loop {
            let batch: Vec<Job> = py.detach(|| {
                while crate::exiting() {
                    // Interpreter finalizing: re-attaching would end this thread with
                    // pthread_exit through Rust frames (an abort). Park until the process ends.
                    std::thread::sleep(Duration::from_secs(3600));
                }
                let rx = self.rx.lock().unwrap_or_else(|p| p.into_inner());
                let next = match rx.try_recv() {
                    Ok(j) => Ok(j),
                    Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
                    Err(TryRecvError::Empty) => {
                        // Nothing to run: hand this thread's allocator cache back before
                        // waiting, as the runtime's workers do when they park.
                        event_bus::runtime::thread_idle();
                        rx.recv_timeout(Duration::from_millis(100))
                    }
                };
                match next {
                    Ok(j) => {
                        let mut v = Vec::with_capacity(16);
                        v.push(j);
                        while v.len() < BATCH {
                            match rx.try_recv() {
                                Ok(j) => v.push(j),
                                Err(_) => break,
                            }
                        }
                        v
                    }
                    Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                        Vec::new()
                    }
                }
            });
            if batch.is_empty() {
                if self.stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                continue;
            }
            for job in batch {
                errors::guard_unraisable(py, || run_sync(py, job));
            }
        }
    }
}

fn run_sync(py: Python<'_>, job: Job) {
    match job {
        Job::Call {
            handler,
            event,
            reply,
        } => {
            if reply.is_closed() {
                return; // timed out while queued: the core no longer waits for it
            }
            let r = match Py::new(py, Event::new(event)) {
                Ok(ev) => handler.bind(py).call1((ev,)).map(|_| ()),
                Err(e) => Err(e),
            };
            let _ = reply.send(r.map_err(|e| failure(py, &e)));
        }
        Job::Batch {
            handler,
            events,
            outcomes,
        } => {
            for (i, event) in events.into_iter().enumerate() {
                if !outcomes.claim(i) {
                    break; // given up by the core, with the rest (timeout, or unsubscribed)
                }
                let r = call_handler(py, &handler, event).map(|_| ());
                outcomes.report(i, r.map_err(|e| failure(py, &e)));
            }
            outcomes.flush();
        }
        Job::Resolve { .. } => {}
    }
}

/// A plain-callable handler of the blocking client.
pub struct SyncHandler {
    pub handler: Arc<Py<PyAny>>,
    pub dispatcher: Arc<Dispatcher>,
}

impl Handler for SyncHandler {
    fn call(&self, event: Delivery) -> HandlerFuture {
        let (reply, rx) = oneshot::channel();
        let sent = self.dispatcher.tx.send(Job::Call {
            handler: self.handler.clone(),
            event,
            reply,
        });
        Box::pin(async move {
            if sent.is_err() {
                return Err(HandlerError::new("dispatcher stopped"));
            }
            rx.await
                .unwrap_or_else(|_| Err(HandlerError::new("dispatcher stopped")))
        })
    }

    fn batched(&self) -> bool {
        true
    }

    /// The whole batch is one job: the dispatcher thread runs it under one GIL acquisition.
    fn run_batch(&self, events: Vec<Delivery>, outcomes: OutcomeReporter) {
        // On a send failure the job (and its reporter) is dropped: every event fails.
        let _ = self.dispatcher.tx.send(Job::Batch {
            handler: self.handler.clone(),
            events,
            outcomes,
        });
    }
}

// ---------------------------------------------------------------- asyncio client

pub struct BridgeInner {
    event_loop: Py<PyAny>,
    queue: Mutex<Vec<Job>>,
    scheduled: AtomicBool,
    drain: Py<PyAny>,
    ensure_future: Py<PyAny>,
    coroutine_type: Py<PyAny>,
    /// The name of the tasks that run this client's coroutine handlers, so `disconnect()` can
    /// tell when a handler calls it.
    task_name: Py<PyAny>,
    /// `event_bus._batch.start(loop, batch, awaitable)`.
    start_batch: Py<PyAny>,
}

/// Ties a client to one asyncio event loop.
#[pyclass(frozen, module = "event_bus._native")]
pub struct LoopBridge {
    pub inner: Arc<BridgeInner>,
}

#[pyclass(frozen, module = "event_bus._native")]
struct Drain {
    inner: std::sync::Weak<BridgeInner>,
}

#[pymethods]
impl Drain {
    fn __call__(&self, py: Python<'_>) {
        errors::guard_unraisable(py, || {
            if let Some(b) = self.inner.upgrade() {
                b.drain(py);
            }
        });
    }
}

/// Completes a coroutine handler's reply when its task finishes.
#[pyclass(frozen, module = "event_bus._native")]
struct Completer {
    reply: Mutex<Option<Reply>>,
}

#[pymethods]
impl Completer {
    fn __call__(&self, py: Python<'_>, task: Bound<'_, PyAny>) {
        errors::guard_unraisable(py, || self.complete(py, task));
    }
}

impl Completer {
    fn complete(&self, py: Python<'_>, task: Bound<'_, PyAny>) {
        let Some(reply) = self.reply.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        let cancelled = task
            .call_method0("cancelled")
            .and_then(|b| b.is_truthy())
            .unwrap_or(false);
        let outcome = if cancelled {
            Err(HandlerError::new("handler task was cancelled"))
        } else {
            match task.call_method0("exception") {
                Ok(e) if e.is_none() => Ok(()),
                Ok(e) => {
                    let err = PyErr::from_value(e);
                    log_traceback(py, &err);
                    Err(HandlerError::new(describe(py, &err)))
                }
                Err(e) => Err(HandlerError::new(describe(py, &e))),
            }
        };
        let _ = reply.send(outcome);
    }
}

#[pymethods]
impl LoopBridge {
    #[new]
    fn py_new(
        py: Python<'_>,
        event_loop: Bound<'_, PyAny>,
        task_name: Bound<'_, PyString>,
    ) -> PyResult<Self> {
        let asyncio = py.import("asyncio")?;
        let types = py.import("types")?;
        let start_batch = py.import("event_bus._batch")?.getattr("start")?.unbind();
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<BridgeInner>| {
            let drain = Py::new(
                py,
                Drain {
                    inner: weak.clone(),
                },
            )
            .map(|d| d.into_any())
            .unwrap_or_else(|_| py.None());
            BridgeInner {
                event_loop: event_loop.clone().unbind(),
                queue: Mutex::new(Vec::new()),
                scheduled: AtomicBool::new(false),
                drain,
                ensure_future: asyncio
                    .getattr("ensure_future")
                    .map(|f| f.unbind())
                    .unwrap_or_else(|_| py.None()),
                coroutine_type: types
                    .getattr("CoroutineType")
                    .map(|f| f.unbind())
                    .unwrap_or_else(|_| py.None()),
                start_batch,
                task_name: task_name.clone().into_any().unbind(),
            }
        });
        Ok(LoopBridge { inner })
    }

    /// The loop this bridge runs jobs on.
    #[getter]
    fn event_loop(&self, py: Python<'_>) -> Py<PyAny> {
        self.inner.event_loop.clone_ref(py)
    }
}

impl BridgeInner {
    /// Queue a job; wakes the loop when the queue was idle. Callable from any thread.
    pub fn push(self: &Arc<Self>, job: Job) {
        let wake = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.push(job);
            !self.scheduled.swap(true, Ordering::AcqRel)
        };
        if wake {
            self.wake();
        }
    }

    fn wake(self: &Arc<Self>) {
        let ok = crate::host_call(|py| {
            let r = self
                .event_loop
                .bind(py)
                .call_method1("call_soon_threadsafe", (self.drain.bind(py),));
            if r.is_err() {
                // Loop closed: fail everything queued (dropping the replies fails the handlers).
                let jobs =
                    std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()));
                self.scheduled.store(false, Ordering::Release);
                drop(jobs);
            }
        });
        if ok.is_none() {
            self.scheduled.store(false, Ordering::Release);
        }
    }

    fn drain(self: &Arc<Self>, py: Python<'_>) {
        let jobs: Vec<Job> = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            let n = q.len().min(BATCH);
            let rest = q.split_off(n);
            let jobs = std::mem::replace(&mut *q, rest);
            if q.is_empty() {
                self.scheduled.store(false, Ordering::Release);
            }
            jobs
        };
        for job in jobs {
            errors::guard_unraisable(py, || self.run(py, job));
        }
        // More arrived than one batch: let the loop breathe, then continue.
        let more = !self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
            && self.scheduled.load(Ordering::Acquire);
        if more {
            let _ = self
                .event_loop
                .bind(py)
                .call_method1("call_soon", (self.drain.bind(py),));
        }
    }

    fn is_awaitable(&self, py: Python<'_>, v: &Bound<'_, PyAny>) -> bool {
        !v.is_none()
            && (v.is_instance(self.coroutine_type.bind(py)).unwrap_or(false)
                || v.hasattr("__await__").unwrap_or(false))
    }

    fn run(self: &Arc<Self>, py: Python<'_>, job: Job) {
        match job {
            Job::Batch {
                handler,
                events,
                outcomes,
            } => {
                let flusher = match Py::new(
                    py,
                    Flusher {
                        outcomes: Arc::new(outcomes),
                        scheduled: AtomicBool::new(false),
                    },
                ) {
                    Ok(f) => f,
                    Err(e) => {
                        log_traceback(py, &e); // the reporter is dropped: every event fails
                        return;
                    }
                };
                let batch = AioBatch {
                    handler,
                    bridge: self.clone(),
                    flusher,
                    state: Mutex::new(BatchState {
                        items: events.into_iter().enumerate().collect(),
                        current: None,
                    }),
                };
                let Some(first) = batch.step_inner(py) else {
                    return; // all ran synchronously
                };
                let started = Py::new(py, batch).and_then(|b| {
                    self.start_batch.bind(py).call1((
                        self.event_loop.bind(py),
                        b,
                        first,
                        self.task_name.bind(py),
                    ))
                });
                if let Err(e) = started {
                    // Could not schedule the task: dropping the batch fails what is left.
                    log_traceback(py, &e);
                }
            }
            Job::Resolve { future, make } => {
                let fut = future.bind(py);
                if fut
                    .call_method0("done")
                    .and_then(|b| b.is_truthy())
                    .unwrap_or(true)
                {
                    return; // cancelled by the caller
                }
                let _ = match errors::guard(|| make(py)) {
                    Ok(v) => fut.call_method1("set_result", (v,)),
                    Err(e) => fut.call_method1("set_exception", (e.into_value(py),)),
                };
            }
            Job::Call {
                handler,
                event,
                reply,
            } => {
                if reply.is_closed() {
                    return; // timed out while queued: the core no longer waits for it
                }
                let r = Py::new(py, Event::new(event)).and_then(|ev| handler.bind(py).call1((ev,)));
                match r {
                    Err(e) => {
                        log_traceback(py, &e);
                        let _ = reply.send(Err(HandlerError::new(describe(py, &e))));
                    }
                    Ok(v) => {
                        if !self.is_awaitable(py, &v) {
                            let _ = reply.send(Ok(()));
                            return;
                        }
                        // A coroutine becomes a task named for this client (see `task_name`);
                        // any other awaitable goes through ensure_future.
                        let task = if v.is_instance(self.coroutine_type.bind(py)).unwrap_or(false) {
                            let kw = pyo3::types::PyDict::new(py);
                            let _ = kw.set_item("name", self.task_name.bind(py));
                            self.event_loop
                                .bind(py)
                                .call_method("create_task", (v,), Some(&kw))
                        } else {
                            let kw = pyo3::types::PyDict::new(py);
                            let _ = kw.set_item("loop", self.event_loop.bind(py));
                            self.ensure_future.bind(py).call((v,), Some(&kw))
                        };
                        let task = task.and_then(|t| {
                            let c = Py::new(
                                py,
                                Completer {
                                    reply: Mutex::new(None),
                                },
                            )?;
                            t.call_method1("add_done_callback", (c.clone_ref(py),))?;
                            Ok(c)
                        });
                        match task {
                            Ok(c) => {
                                *c.get().reply.lock().unwrap_or_else(|p| p.into_inner()) =
                                    Some(reply);
                            }
                            Err(e) => {
                                let _ = reply.send(Err(HandlerError::new(describe(py, &e))));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A handler of the asyncio client: runs on the bridge's loop.
pub struct AioHandler {
    pub handler: Arc<Py<PyAny>>,
    pub bridge: Arc<BridgeInner>,
}

impl Handler for AioHandler {
    fn call(&self, event: Delivery) -> HandlerFuture {
        let (reply, rx) = oneshot::channel();
        self.bridge.push(Job::Call {
            handler: self.handler.clone(),
            event,
            reply,
        });
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(HandlerError::new(
                    "event loop closed before the handler ran",
                ))
            })
        })
    }

    fn batched(&self) -> bool {
        true
    }

    /// One job, so one `call_soon_threadsafe` (at most) for the whole batch.
    fn run_batch(&self, events: Vec<Delivery>, outcomes: OutcomeReporter) {
        self.bridge.push(Job::Batch {
            handler: self.handler.clone(),
            events,
            outcomes,
        });
    }
}

struct BatchState {
    items: std::collections::VecDeque<(usize, Delivery)>,
    /// The index of the event whose awaitable is being awaited in `event_bus._batch`.
    current: Option<usize>,
}

/// Wakes the core with the outcomes a batch recorded; scheduled with `loop.call_soon` when a
/// handler's awaitable is handed to the batch's task, so it runs once that task yields to the
/// loop (or finishes), not once per event.
#[pyclass(frozen, module = "event_bus._native")]
struct Flusher {
    outcomes: Arc<OutcomeReporter>,
    scheduled: AtomicBool,
}

#[pymethods]
impl Flusher {
    fn __call__(&self, py: Python<'_>) {
        errors::guard_unraisable(py, || {
            self.scheduled.store(false, Ordering::Release);
            self.outcomes.flush();
        });
    }
}

/// The rest of an in-order batch whose handlers are coroutines (see `event_bus/_batch.py`).
/// Dropping it with events left fails them ("event loop closed before the handler ran").
#[pyclass(frozen, module = "event_bus._native")]
pub struct AioBatch {
    handler: Arc<Py<PyAny>>,
    bridge: Arc<BridgeInner>,
    flusher: Py<Flusher>,
    state: Mutex<BatchState>,
}

impl AioBatch {
    fn lock(&self) -> std::sync::MutexGuard<'_, BatchState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn outcomes(&self) -> &OutcomeReporter {
        &self.flusher.get().outcomes
    }

    /// Run the next events synchronously until a handler returns an awaitable (returned, its
    /// index kept as `current`) or the batch is done (`None`).
    fn step_inner<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        let outcomes = self.outcomes();
        loop {
            let Some((i, event)) = self.lock().items.pop_front() else {
                outcomes.flush();
                return None;
            };
            if !outcomes.claim(i) {
                // Given up by the core, with the rest (timeout, or unsubscribed).
                self.lock().items.clear();
                continue;
            }
            match call_handler(py, &self.handler, event) {
                Err(e) => outcomes.report(i, Err(failure(py, &e))),
                Ok(v) if self.bridge.is_awaitable(py, &v) => {
                    self.lock().current = Some(i);
                    self.schedule_flush(py);
                    return Some(v);
                }
                Ok(_) => outcomes.report(i, Ok(())),
            }
        }
    }

    /// Flush what this batch recorded once its task yields to the loop.
    fn schedule_flush(&self, py: Python<'_>) {
        let f = self.flusher.get();
        if !f.scheduled.swap(true, Ordering::AcqRel) {
            let r = self
                .bridge
                .event_loop
                .bind(py)
                .call_method1("call_soon", (self.flusher.bind(py),));
            if r.is_err() {
                f.scheduled.store(false, Ordering::Release);
                f.outcomes.flush();
            }
        }
    }
}

impl Drop for AioBatch {
    /// Events left fail now, even while a scheduled [`Flusher`] (sitting in a loop that will
    /// never run it) still holds the reporter.
    fn drop(&mut self) {
        self.outcomes().close();
    }
}

#[pymethods]
impl AioBatch {
    /// Run the following events until the next awaitable; `None` when the batch is done.
    fn step<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        errors::guard(|| Ok(self.step_inner(py)))
    }

    /// The awaited handler finished.
    fn ok(&self) -> PyResult<()> {
        errors::guard(|| {
            if let Some(i) = self.lock().current.take() {
                self.outcomes().report(i, Ok(()));
            }
            Ok(())
        })
    }

    /// The awaited handler raised `exc`.
    fn fail(&self, py: Python<'_>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        errors::guard(|| {
            self.fail_inner(py, exc);
            Ok(())
        })
    }
}

impl AioBatch {
    fn fail_inner(&self, py: Python<'_>, exc: Bound<'_, PyAny>) {
        if let Some(i) = self.lock().current.take() {
            let cancelled = py
                .import("asyncio")
                .and_then(|a| a.getattr("CancelledError"))
                .and_then(|c| exc.is_instance(&c))
                .unwrap_or(false);
            let err = if cancelled {
                HandlerError::new("handler task was cancelled")
            } else {
                failure(py, &PyErr::from_value(exc))
            };
            self.outcomes().report(i, Err(err));
        }
    }
}
