//! Crossing from the Rust runtime into Python, in batches (TOOLCHAIN trap 11).
//!
//! - [`Dispatcher`] (blocking client): one Python thread per client drains a channel of handler
//!   calls, many per GIL acquisition, and runs the plain-callable handlers there.
//! - [`LoopBridge`] (asyncio client): jobs (handler calls, results of awaited operations) queue
//!   up in Rust; the first job after a drain schedules one `loop.call_soon_threadsafe(drain)`,
//!   and that drain runs every queued job on the event loop thread. Coroutine handlers become
//!   tasks on that loop; the core's handler future completes when the task does, so timeouts
//!   and retries apply to coroutines.
//!
//! Tokio workers never hold the GIL for longer than pushing a wake-up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_bus::{Delivery, Handler, HandlerError, HandlerFuture};
use pyo3::prelude::*;
use tokio::sync::oneshot;

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
    /// Resolve an asyncio future with the result of an operation.
    Resolve { future: Py<PyAny>, make: Resolver },
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
                match rx.recv_timeout(Duration::from_millis(100)) {
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
                run_sync(py, job);
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
            let r = match Py::new(py, Event::new(event)) {
                Ok(ev) => handler.bind(py).call1((ev,)).map(|_| ()),
                Err(e) => Err(e),
            };
            let _ = reply.send(r.map_err(|e| {
                log_traceback(py, &e);
                HandlerError::new(describe(py, &e))
            }));
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
}

// ---------------------------------------------------------------- asyncio client

pub struct BridgeInner {
    event_loop: Py<PyAny>,
    queue: Mutex<Vec<Job>>,
    scheduled: AtomicBool,
    drain: Py<PyAny>,
    ensure_future: Py<PyAny>,
    coroutine_type: Py<PyAny>,
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
        if let Some(b) = self.inner.upgrade() {
            b.drain(py);
        }
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
    fn py_new(py: Python<'_>, event_loop: Bound<'_, PyAny>) -> PyResult<Self> {
        let asyncio = py.import("asyncio")?;
        let types = py.import("types")?;
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
            self.run(py, job);
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

    fn run(&self, py: Python<'_>, job: Job) {
        match job {
            Job::Resolve { future, make } => {
                let fut = future.bind(py);
                if fut
                    .call_method0("done")
                    .and_then(|b| b.is_truthy())
                    .unwrap_or(true)
                {
                    return; // cancelled by the caller
                }
                let _ = match make(py) {
                    Ok(v) => fut.call_method1("set_result", (v,)),
                    Err(e) => fut.call_method1("set_exception", (e.into_value(py),)),
                };
            }
            Job::Call {
                handler,
                event,
                reply,
            } => {
                let r = Py::new(py, Event::new(event)).and_then(|ev| handler.bind(py).call1((ev,)));
                match r {
                    Err(e) => {
                        log_traceback(py, &e);
                        let _ = reply.send(Err(HandlerError::new(describe(py, &e))));
                    }
                    Ok(v) if v.is_none() => {
                        let _ = reply.send(Ok(()));
                    }
                    Ok(v) => {
                        let awaitable =
                            v.is_instance(self.coroutine_type.bind(py)).unwrap_or(false)
                                || v.hasattr("__await__").unwrap_or(false);
                        if !awaitable {
                            let _ = reply.send(Ok(()));
                            return;
                        }
                        let kw = pyo3::types::PyDict::new(py);
                        let _ = kw.set_item("loop", self.event_loop.bind(py));
                        let task =
                            self.ensure_future
                                .bind(py)
                                .call((v,), Some(&kw))
                                .and_then(|t| {
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
}
