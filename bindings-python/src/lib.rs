//! `event_bus._native`: the PyO3 face of the event bus core.
//!
//! - [`client`]: `NativeClient`, blocking methods plus `*_async` variants that resolve asyncio
//!   futures; the Python package (`bindings-python/python/event_bus/`) wraps it into
//!   `event_bus.EventBusClient` and `event_bus.asyncio.EventBusClient`; [`args`] converts
//!   their arguments and results, [`run`] waits or resolves the futures.
//! - [`handler`]: what a Python handler is to the core, and the jobs that cross into Python in
//!   batches; they run on the blocking client's [`dispatcher`] thread or on an asyncio loop
//!   ([`loop_bridge`], with [`aio_batch`] for in-order batches of coroutine handlers).
//! - [`types`]: `Event`, `PublishResult`, `Subscription`.
//! - [`errors`]: the exception hierarchy and the single core-error mapping.
//! - [`convert`]: Python objects <-> JSON.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use event_bus::logging::{set_sink, LogRecord};
use event_bus::LogLevel;
use pyo3::prelude::*;

mod aio_batch;
mod args;
mod client;
mod convert;
mod dispatcher;
mod errors;
mod handler;
mod loop_bridge;
mod run;
mod types;

/// `logging.getLogger("event_bus")`.
pub(crate) static LOGGER: OnceLock<Py<PyAny>> = OnceLock::new();

/// Redis glob match, byte for byte as Redis 7 (`photo.*` matches `photo.processing.started`).
#[pyfunction]
fn matches_pattern(pattern: &str, channel: &str) -> bool {
    event_bus::matches_pattern(pattern, channel)
}

static EXITING: AtomicBool = AtomicBool::new(false);
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// Run `f` attached to the interpreter from a runtime thread, unless the interpreter is
/// shutting down. Python 3.11 ends a thread that takes the GIL during finalization with
/// `pthread_exit`, which aborts the process when it unwinds through Rust frames; so after
/// `atexit` no runtime thread enters Python, and `atexit` waits for those inside to leave.
pub(crate) fn host_call<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Option<R> {
    ACTIVE.fetch_add(1, Ordering::SeqCst);
    let r = if EXITING.load(Ordering::SeqCst) {
        None
    } else {
        Python::try_attach(f)
    };
    ACTIVE.fetch_sub(1, Ordering::SeqCst);
    r
}

/// True once the interpreter is exiting (see [`host_call`]).
pub(crate) fn exiting() -> bool {
    EXITING.load(Ordering::SeqCst)
}

/// Registered with `atexit`: stop forwarding logs and events into Python and wait (up to 1 s)
/// until no runtime thread is inside Python.
#[pyfunction]
fn _shutdown_logging(py: Python<'_>) {
    EXITING.store(true, Ordering::SeqCst);
    set_sink(None);
    py.detach(|| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while ACTIVE.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    });
}

fn install_log_sink(py: Python<'_>) -> PyResult<()> {
    let logger = py
        .import("logging")?
        .call_method1("getLogger", ("event_bus",))?
        .unbind();
    let _ = LOGGER.set(logger);
    set_sink(Some(Arc::new(|r: &LogRecord<'_>| {
        let level: u8 = match r.level {
            LogLevel::Debug => 10,
            LogLevel::Info => 20,
            LogLevel::Warn => 30,
            LogLevel::Error => 40,
        };
        // Hold the GIL only to hand the record over.
        host_call(|py| {
            let Some(lg) = LOGGER.get() else { return };
            let lg = lg.bind(py);
            let on = lg
                .call_method1("isEnabledFor", (level,))
                .and_then(|b| b.is_truthy())
                .unwrap_or(false);
            if !on {
                return;
            }
            let mut msg = format!("[{}] {}", r.service, r.message);
            for (k, v) in r.fields {
                msg.push(' ');
                msg.push_str(k);
                msg.push('=');
                msg.push_str(v);
            }
            if let Err(e) = lg.call_method1("log", (level, msg)) {
                e.write_unraisable(py, None);
            }
        });
    })));
    Ok(())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<client::NativeClient>()?;
    m.add_class::<loop_bridge::LoopBridge>()?;
    m.add_class::<types::Event>()?;
    m.add_class::<types::PublishResult>()?;
    m.add_class::<types::Subscription>()?;
    m.add_function(wrap_pyfunction!(matches_pattern, m)?)?;
    m.add_function(wrap_pyfunction!(_shutdown_logging, m)?)?;
    m.add("__version__", event_bus::VERSION)?;
    install_log_sink(m.py())?;
    Ok(())
}
