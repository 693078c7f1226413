//! The one process-wide tokio runtime, started lazily and shared by every client.
//!
//! The bindings never run their own runtime for the bus: they hop onto this one for anything
//! that creates connections or long-lived tasks (the redis crate spawns its driver tasks on
//! whatever runtime is current). `shutdown()` exists for the C face (valgrind-clean exits) and
//! for Python after `fork()`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering::*};
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

/// The I/O thread: a current-thread runtime of its own, which runs the redis crate's driver
/// task of each publisher connection (the task that writes and reads its socket; the
/// publisher's supervisor task, which builds the pipelines, stays on the shared runtime). A
/// publish written from a host's thread then wakes this one thread, which writes, reads the
/// reply and answers the caller, instead of a worker of the shared runtime, whose scheduler wakes a second worker
/// each time a parked one finds work (about two context switches more per awaited publish,
/// bench/README.md). Created on first use, like the shared runtime, and again in a forked
/// child.
struct IoThread {
    handle: Handle,
    pid: u32,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

static IO: Mutex<Option<IoThread>> = Mutex::new(None);

thread_local! {
    /// Set on the I/O thread. (Not `thread::current()`: on a host's thread that allocates a
    /// handle that is never freed, which valgrind reports for C programs.)
    static ON_IO_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A handle to the I/O thread's runtime (see [`IoThread`]).
pub(crate) fn io_handle() -> Handle {
    let mut guard = IO.lock().unwrap_or_else(|p| p.into_inner());
    let pid = std::process::id();
    if let Some(io) = guard.as_ref() {
        if io.pid == pid {
            return io.handle.clone();
        }
        // Inherited from the parent by a forked child, without its thread.
        std::mem::forget(guard.take());
    }
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    #[cfg(feature = "jemalloc")]
    builder.on_thread_park(crate::alloc::on_park);
    let rt = builder
        .build()
        .expect("failed to start the event-bus I/O runtime");
    let handle = rt.handle().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("event-bus-io".into())
        .spawn(move || {
            ON_IO_THREAD.with(|on| on.set(true));
            rt.block_on(async {
                let _ = stopped.await;
            });
            rt.shutdown_timeout(Duration::from_secs(2));
        })
        .expect("failed to start the event-bus I/O thread");
    *guard = Some(IoThread {
        handle: handle.clone(),
        pid,
        stop: Some(stop),
        thread: Some(thread),
    });
    handle
}

/// Run `fut` on the I/O thread and wait for it (from any task); `None` when the I/O runtime
/// stopped first.
pub(crate) async fn on_io<F>(fut: F) -> Option<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    io_handle().spawn(fut).await.ok()
}

/// Stop the I/O thread (its tasks are dropped), from [`shutdown`].
fn stop_io(timeout: Duration) {
    let taken = IO.lock().unwrap_or_else(|p| p.into_inner()).take();
    let Some(mut io) = taken else { return };
    if io.pid != std::process::id() {
        std::mem::forget(io);
        return;
    }
    if let Some(stop) = io.stop.take() {
        let _ = stop.send(());
    }
    let Some(thread) = io.thread.take() else {
        return;
    };
    if ON_IO_THREAD.with(|on| on.get()) {
        return; // called on the I/O thread itself: it ends when this returns
    }
    // Joined when it ends in time; otherwise it winds down on its own.
    let deadline = std::time::Instant::now() + timeout;
    while !thread.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    if thread.is_finished() {
        let _ = thread.join();
    }
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

/// Start `fut` on the calling thread (a host's thread: Node's JS thread, Python's event loop)
/// and run the rest of it as a task of the shared runtime only once it is woken.
///
/// `spawn` from a thread outside the runtime wakes a worker at once, only for the task to
/// poll a future that has nothing to do yet (a publish waiting for Redis's reply). Here the
/// first poll runs inline, and the task is spawned by the first wake-up, which comes from a
/// worker already running (the one that read the reply, or the timer), so no worker is woken
/// for it: a lone awaited publish from Node measured about one context switch fewer per
/// publish (bench/README.md). A future woken during its first poll, or never put to sleep,
/// is spawned (or finished) right away. `fut` must be cheap to poll once: it runs on the
/// host's thread.
pub fn start_from_host<F>(fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let started = Arc::new(Started {
        state: AtomicU8::new(POLLING),
        fut: Mutex::new(None),
    });
    let waker = std::task::Waker::from(started.clone());
    let mut fut: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(fut);
    let ready = {
        let rt = runtime();
        let _in_runtime = rt.handle().enter();
        fut.as_mut()
            .poll(&mut std::task::Context::from_waker(&waker))
            .is_ready()
    };
    if ready {
        started.state.store(SPAWNED, Release);
        return;
    }
    *started.fut.lock().unwrap_or_else(|p| p.into_inner()) = Some(fut);
    if started
        .state
        .compare_exchange(POLLING, ASLEEP, AcqRel, Acquire)
        .is_err()
    {
        // Woken while it was polled: nothing else will spawn it.
        started.state.store(SPAWNED, Release);
        started.spawn();
    }
}

/// A future started by [`start_from_host`]: polled once there, then waiting for its first
/// wake-up to become a task.
struct Started {
    state: AtomicU8,
    fut: Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send>>>>,
}

const POLLING: u8 = 0;
const WOKEN_WHILE_POLLING: u8 = 1;
const ASLEEP: u8 = 2;
const SPAWNED: u8 = 3;

impl Started {
    /// A task of the runtime whose thread woke it (no other thread is woken for it), or of
    /// the shared runtime when woken from elsewhere.
    fn spawn(&self) {
        let fut = self.fut.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(fut) = fut {
            match Handle::try_current() {
                Ok(h) => drop(h.spawn(fut)),
                Err(_) => drop(spawn(fut)),
            }
        }
    }
}

impl std::task::Wake for Started {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut s = self.state.load(Acquire);
        loop {
            let next = match s {
                POLLING => WOKEN_WHILE_POLLING,
                ASLEEP => SPAWNED,
                _ => return, // woken before, or a task already (its own waker counts now)
            };
            match self.state.compare_exchange(s, next, AcqRel, Acquire) {
                Ok(_) if next == SPAWNED => return self.spawn(),
                Ok(_) => return,
                Err(now) => s = now,
            }
        }
    }
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
    stop_io(timeout);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Poll;

    /// Waits for `n` on `rx`, up to 10 s.
    fn recv(rx: &std::sync::mpsc::Receiver<u32>) -> u32 {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the future ran to its end")
    }

    #[test]
    fn a_future_ready_at_its_first_poll_ends_on_the_calling_thread() {
        let (tx, rx) = std::sync::mpsc::channel();
        let here = std::thread::current().id();
        start_from_host(async move {
            tx.send(u32::from(std::thread::current().id() == here))
                .unwrap();
        });
        assert_eq!(recv(&rx), 1);
    }

    #[test]
    fn a_future_woken_later_is_finished_by_the_runtime() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (wake_tx, wake_rx) = tokio::sync::oneshot::channel::<u32>();
        start_from_host(async move {
            tx.send(wake_rx.await.unwrap()).unwrap();
        });
        // Woken from a thread outside every runtime: the shared runtime finishes it.
        std::thread::spawn(move || wake_tx.send(7).unwrap())
            .join()
            .unwrap();
        assert_eq!(recv(&rx), 7);
        // And by a timer of the shared runtime.
        let (tx, rx) = std::sync::mpsc::channel();
        start_from_host(async move {
            timeout_at(
                tokio::time::Instant::now() + Duration::from_millis(20),
                std::future::pending::<()>(),
            )
            .await
            .unwrap_err();
            tx.send(8).unwrap();
        });
        assert_eq!(recv(&rx), 8);
    }

    #[test]
    fn a_future_started_here_and_woken_by_the_io_thread_ends_there() {
        // What a publish written from a host's thread does: woken by the reply, which the I/O
        // thread reads, it becomes a task of that thread (no worker of the shared runtime is
        // woken for it).
        let (tx, rx) = std::sync::mpsc::channel();
        let (wake_tx, wake_rx) = tokio::sync::oneshot::channel::<u32>();
        start_from_host(async move {
            let v = wake_rx.await.unwrap();
            let on_io = std::thread::current().name() == Some("event-bus-io");
            tx.send(v + u32::from(on_io)).unwrap();
        });
        runtime().block_on(on_io(async move { wake_tx.send(10).unwrap() }));
        assert_eq!(recv(&rx), 11, "finished on the I/O thread");
    }

    #[test]
    fn a_future_that_wakes_itself_during_its_first_poll_is_not_lost() {
        let (tx, rx) = std::sync::mpsc::channel();
        let polls = Arc::new(AtomicUsize::new(0));
        let p = polls.clone();
        start_from_host(async move {
            std::future::poll_fn(|cx| {
                if p.fetch_add(1, Relaxed) == 0 {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
            tx.send(9).unwrap();
        });
        assert_eq!(recv(&rx), 9);
        assert_eq!(polls.load(Relaxed), 2);
    }
}
