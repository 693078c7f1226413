//! The one process-wide tokio runtime, started lazily and shared by every client.
//!
//! The bindings never run their own runtime for the bus: they hop onto this one for anything
//! that creates connections or long-lived tasks (the redis crate spawns its driver tasks on
//! whatever runtime is current). `shutdown()` exists for the C face (valgrind-clean exits) and
//! for Python after `fork()`.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};

static RUNTIME: Mutex<Option<(Arc<Runtime>, u32)>> = Mutex::new(None);

fn worker_threads() -> usize {
    std::env::var("EVENT_BUS_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(2)
}

/// The shared runtime, created on first use (and again after `shutdown()` or a `fork()`).
pub fn runtime() -> Arc<Runtime> {
    let mut guard = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    let pid = std::process::id();
    if let Some((rt, owner)) = guard.as_ref() {
        if *owner == pid {
            return rt.clone();
        }
        // A forked child inherits the parent's runtime without its threads: leak it (dropping
        // would try to join threads that do not exist here) and build a fresh one.
        let (old, _) = guard.take().expect("checked above");
        std::mem::forget(old);
    }
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads())
            .thread_name("event-bus")
            .enable_all()
            .build()
            .expect("failed to start the event-bus tokio runtime"),
    );
    *guard = Some((rt.clone(), pid));
    rt
}

/// A handle to the shared runtime.
pub fn handle() -> Handle {
    runtime().handle().clone()
}

/// Spawn a task on the shared runtime.
pub fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    handle().spawn(fut)
}

/// Run `fut` on the shared runtime and wait for it from synchronous code.
///
/// Safe to call from anywhere, including from inside a handler that runs on one of the
/// runtime's own workers (it then uses `block_in_place` instead of panicking with "Cannot start
/// a runtime from within a runtime").
pub fn block_on<F>(fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let rt = runtime();
    match Handle::try_current() {
        Err(_) => rt.block_on(fut),
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| rt.block_on(fut))
        }
        Ok(_) => {
            // Inside some current-thread runtime: wait on a plain thread instead of blocking
            // that runtime's only worker inside it.
            let jh = rt.spawn(fut);
            std::thread::scope(|s| {
                s.spawn(|| rt.block_on(jh))
                    .join()
                    .expect("event-bus wait thread panicked")
            })
            .expect("event-bus task panicked")
        }
    }
}

/// Stop the shared runtime, waiting up to `timeout` for its tasks. Clients still alive stop
/// working (their calls fail with a closed error); the next client starts a new runtime.
pub fn shutdown(timeout: Duration) {
    let taken = RUNTIME.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some((rt, pid)) = taken {
        if pid != std::process::id() {
            std::mem::forget(rt);
            return;
        }
        match Arc::try_unwrap(rt) {
            Ok(rt) => {
                if Handle::try_current().is_ok() {
                    // Cannot block inside a runtime: let it wind down in the background.
                    rt.shutdown_background();
                } else {
                    rt.shutdown_timeout(timeout);
                }
            }
            Err(shared) => drop(shared), // someone still holds it; it stops with them
        }
    }
}
