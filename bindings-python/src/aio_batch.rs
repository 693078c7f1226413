//! An in-order batch of the asyncio client whose handlers return awaitables. The loop's drain
//! calls the batch's handlers one after another; when one returns an awaitable, the rest of
//! the batch continues in one task (`event_bus/_batch.py` drives an [`AioBatch`]: await,
//! report, step to the next awaitable). Outcomes go to the core's reporter, which a
//! [`Flusher`] wakes once the task yields to the loop, not once per event.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use event_bus::{Delivery, HandlerError, OutcomeReporter};
use pyo3::prelude::*;

use crate::errors;
use crate::handler::{call_handler, failure};
use crate::loop_bridge::BridgeInner;

struct BatchState {
    items: VecDeque<(usize, Delivery)>,
    /// The index of the event whose awaitable is being awaited in `event_bus._batch`.
    current: Option<usize>,
}

/// Wakes the core with the outcomes a batch recorded; scheduled with `loop.call_soon` when a
/// handler's awaitable is handed to the batch's task, so it runs once that task yields to the
/// loop (or finishes), not once per event.
#[pyclass(frozen, module = "event_bus._native")]
pub struct Flusher {
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

impl Flusher {
    pub fn new(outcomes: OutcomeReporter) -> Self {
        Flusher {
            outcomes: Arc::new(outcomes),
            scheduled: AtomicBool::new(false),
        }
    }
}

impl AioBatch {
    /// The batch of `events` (in order) for `handler`, reporting through `flusher`.
    pub fn new(
        handler: Arc<Py<PyAny>>,
        bridge: Arc<BridgeInner>,
        flusher: Py<Flusher>,
        events: Vec<Delivery>,
    ) -> Self {
        AioBatch {
            handler,
            bridge,
            flusher,
            state: Mutex::new(BatchState {
                items: events.into_iter().enumerate().collect(),
                current: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BatchState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn outcomes(&self) -> &OutcomeReporter {
        &self.flusher.get().outcomes
    }

    /// Run the next events synchronously until a handler returns an awaitable (returned, its
    /// index kept as `current`) or the batch is done (`None`).
    pub fn step_inner<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
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
