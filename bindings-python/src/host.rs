//! Entering Python from the Rust runtime's threads, and leaving it safely when the interpreter
//! exits: [`host_call`] is the one way a runtime thread runs Python code (logs, state
//! callbacks, waking an event loop); `_shutdown_logging` (registered with `atexit` by the
//! Python package) closes that door. The core's log sink forwards records to
//! `logging.getLogger("event_bus")` through it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use event_bus::logging::{set_sink, LogRecord};
use event_bus::LogLevel;
use pyo3::prelude::*;

/// `logging.getLogger("event_bus")`.
pub(crate) static LOGGER: OnceLock<Py<PyAny>> = OnceLock::new();

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
pub fn _shutdown_logging(py: Python<'_>) {
    EXITING.store(true, Ordering::SeqCst);
    set_sink(None);
    py.detach(|| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while ACTIVE.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    });
}

/// Forward the core's log records to `logging.getLogger("event_bus")`.
pub fn install_log_sink(py: Python<'_>) -> PyResult<()> {
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
