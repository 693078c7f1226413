//! How a `NativeClient` method waits for the core: the blocking methods run the operation on
//! the core runtime and [`wait`] with the GIL released; the `*_async` methods return at once
//! and [`resolve_later`] resolves their asyncio future on the loop thread (through the
//! client's [`LoopBridge`]) when the operation ends. Either way an operation whose task ends
//! without an answer (a panic) raises `InternalError` instead of hanging.

use std::future::Future;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;

use crate::errors;
use crate::handler::Job;
use crate::loop_bridge::{BridgeInner, LoopBridge};

/// The message of an operation whose task ended without an answer: it panicked (tokio keeps
/// the panic inside the task), which is a bug.
const TASK_LOST: &str = "event bus internal error: the operation's task ended without an answer";

/// Run `fut` on the core runtime and wait for it with the GIL released, checking for signals
/// every 100 ms so Ctrl-C interrupts the wait (the operation itself goes on in the background).
pub fn wait<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel(1);
    event_bus::runtime::spawn(async move {
        let _ = tx.send(fut.await);
    });
    let mut rx = rx;
    loop {
        let (r, back) = py.detach(move || (rx.recv_timeout(Duration::from_millis(100)), rx));
        rx = back;
        match r {
            Ok(v) => return Ok(v),
            Err(RecvTimeoutError::Timeout) => py.check_signals()?,
            Err(RecvTimeoutError::Disconnected) => return Err(errors::internal(TASK_LOST)),
        }
    }
}

/// An asyncio future that a runtime task must resolve: if the task ends without doing so (it
/// panicked), dropping this resolves the future with `InternalError`, so `await` never hangs.
struct Unresolved {
    bridge: Arc<BridgeInner>,
    future: Option<Py<PyAny>>,
}

impl Drop for Unresolved {
    fn drop(&mut self) {
        if let Some(future) = self.future.take() {
            self.bridge.push(Job::Resolve {
                future,
                make: Box::new(|_py| Err(errors::internal(TASK_LOST))),
            });
        }
    }
}

/// Run `fut` on the core runtime; when done, resolve the asyncio `future` on the bridge's loop
/// with `conv(result)`.
pub fn resolve_later<T, F, C>(bridge: &LoopBridge, future: Py<PyAny>, fut: F, conv: C)
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
    C: for<'py> FnOnce(Python<'py>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let mut pending = Unresolved {
        bridge: bridge.inner.clone(),
        future: Some(future),
    };
    event_bus::runtime::spawn(async move {
        let v = fut.await;
        if let Some(future) = pending.future.take() {
            pending.bridge.push(Job::Resolve {
                future,
                make: Box::new(move |py| conv(py, v)),
            });
        }
    });
}
