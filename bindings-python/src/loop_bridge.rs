//! The asyncio client's runner: a [`LoopBridge`] ties a client to one event loop. Jobs
//! (handler calls, results of awaited operations) queue up in Rust from any thread; the first
//! job after a drain schedules one `loop.call_soon_threadsafe(drain)`, and that drain runs
//! every queued job (up to [`BATCH`], then it yields to the loop and continues) on the event
//! loop thread.
//!
//! A handler that returns a coroutine becomes a task on that loop, named for the client; the
//! core's handler future completes when the task does ([`Completer`]), so timeouts and retries
//! apply to coroutines. An in-order batch runs in one drain, and when one of its handlers
//! returns an awaitable the rest continues in one task ([`crate::aio_batch`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use event_bus::HandlerError;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::aio_batch::{AioBatch, Flusher};
use crate::errors;
use crate::handler::{
    describe, failure, log_traceback, run_call, Job, Reply, Runner, TaskSlot, BATCH,
};

/// What a [`LoopBridge`] shares with the handlers and operations that queue jobs on it.
pub struct BridgeInner {
    pub(crate) event_loop: Py<PyAny>,
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

impl Runner for BridgeInner {
    const LOST: &'static str = "event loop closed before the handler ran";

    /// Always queued: when the loop is closed, the queue is dropped (which fails the job).
    fn send(self: &Arc<Self>, job: Job) -> bool {
        self.push(job);
        true
    }
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
        if cancelled && reply.is_closed() {
            return; // cancelled because the core stopped waiting: not a late completion
        }
        let outcome = if cancelled {
            Err(HandlerError::new("handler task was cancelled"))
        } else {
            match task.call_method0("exception") {
                Ok(e) if e.is_none() => Ok(()),
                Ok(e) => Err(failure(py, &PyErr::from_value(e))),
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
        let ok = crate::host::host_call(|py| {
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

    pub(crate) fn is_awaitable(&self, py: Python<'_>, v: &Bound<'_, PyAny>) -> bool {
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
                let flusher = match Py::new(py, Flusher::new(outcomes)) {
                    Ok(f) => f,
                    Err(e) => {
                        log_traceback(py, &e); // the reporter is dropped: every event fails
                        return;
                    }
                };
                let batch = AioBatch::new(handler, self.clone(), flusher, events);
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
            Job::Cancel { task } => {
                let _ = task.bind(py).call_method0("cancel");
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
                let Some(r) = run_call(py, &handler, event, &reply) else {
                    return;
                };
                match r {
                    Err(e) => {
                        let _ = reply.send(Err(failure(py, &e)));
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
                            let mut slot = reply.task.lock().unwrap_or_else(|p| p.into_inner());
                            if matches!(*slot, TaskSlot::GivenUp) {
                                t.call_method0("cancel")?; // timed out before it started
                            } else {
                                *slot = TaskSlot::Running(t.unbind());
                            }
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
