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

/// Worker threads of the runtime: `EVENT_BUS_WORKER_THREADS` when set to a positive number,
/// else 2: one worker leaves more of a small machine to a busy Node or Python thread, but
/// falls behind on in-process fan-out to many clients (docs/semantics.md, "Threads").
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
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(worker_threads())
        .thread_name("event-bus")
        .enable_all();
    #[cfg(feature = "jemalloc")]
    builder.on_thread_park(crate::alloc::on_park);
    let rt = Arc::new(
        builder
            .build()
            .expect("failed to start the event-bus tokio runtime"),
    );
    *guard = Some((rt.clone(), pid));
    rt
}

/// Record that events flowed. Once they pause (no activity for a quarter second), freed heap
/// memory is handed back to the OS with `malloc_trim`: glibc keeps each thread's arena's free
/// pages resident, and the runtime's worker threads each have one, so a burst otherwise leaves
/// the process several MB larger for good. Cheap on
/// the hot path: one relaxed load per call while traffic flows.
pub(crate) fn note_activity() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    trim::note();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod trim {
    use std::sync::atomic::{AtomicBool, Ordering::*};
    use std::time::Duration;

    static ACTIVE: AtomicBool = AtomicBool::new(false);
    static RUNNING: AtomicBool = AtomicBool::new(false);
    const QUIET: Duration = Duration::from_millis(250);

    extern "C" {
        fn malloc_trim(pad: usize) -> i32;
    }

    pub(super) fn note() {
        if !ACTIVE.load(Relaxed) {
            ACTIVE.store(true, Relaxed);
        }
        if !RUNNING.load(Relaxed) && !RUNNING.swap(true, AcqRel) {
            super::spawn(async {
                loop {
                    tokio::time::sleep(QUIET).await;
                    if ACTIVE.swap(false, AcqRel) {
                        continue; // still busy
                    }
                    // SAFETY: malloc_trim only releases free memory; callable from any thread.
                    unsafe { malloc_trim(0) };
                    RUNNING.store(false, Release);
                    // Activity that arrived while stopping would otherwise never be trimmed.
                    if !ACTIVE.load(Acquire) || RUNNING.swap(true, AcqRel) {
                        return;
                    }
                }
            });
        }
    }
}

/// Called by a face's own thread that runs core work (the Python blocking client's dispatcher
/// thread) when it is about to wait idle: with the `jemalloc` feature, its thread cache goes back
/// to the arena, as each runtime worker's does when it parks (`alloc::on_park`); events are freed
/// on another thread than the one that allocated them, so an idle thread would otherwise keep
/// the blocks it cached. Two
/// loads when the thread did no work since its last call; a no-op without `jemalloc`.
pub fn thread_idle() {
    #[cfg(feature = "jemalloc")]
    crate::alloc::on_park();
}

/// A handle to the shared runtime.
pub fn handle() -> Handle {
    runtime().handle().clone()
}

/// `tokio::time::timeout_at` whose timer belongs to the shared runtime, so the future can be
/// awaited on any thread or executor (a host's event loop, another runtime, none at all): the
/// core's methods that callers await directly use this instead of creating a timer in the
/// caller's context, where there may be no tokio runtime.
pub(crate) fn timeout_at<F: Future>(
    deadline: tokio::time::Instant,
    fut: F,
) -> tokio::time::Timeout<F> {
    let _in_runtime = runtime().handle().enter();
    tokio::time::timeout_at(deadline, fut)
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
