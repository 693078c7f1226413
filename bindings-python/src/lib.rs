//! `event_bus._native`: the PyO3 face of the event bus core.
//!
//! - [`client`]: `NativeClient`, blocking methods plus `*_async` variants that resolve asyncio
//!   futures; the Python package (`bindings-python/python/event_bus/`) wraps it into
//!   `event_bus.EventBusClient` and `event_bus.asyncio.EventBusClient`.
//! - [`bridge`]: how events and results cross into Python in batches (dispatcher thread for
//!   plain callables, one `call_soon_threadsafe` per batch for the asyncio loop).
//! - [`types`]: `Event`, `PublishResult`, `Subscription`.
//! - [`errors`]: the exception hierarchy and the single core-error mapping.
//! - [`convert`]: Python objects <-> JSON.

use std::sync::{Arc, OnceLock};

use event_bus::logging::{set_sink, LogRecord};
use event_bus::LogLevel;
use pyo3::prelude::*;

mod bridge;
mod client;
mod convert;
mod errors;
mod types;

/// `logging.getLogger("event_bus")`.
pub(crate) static LOGGER: OnceLock<Py<PyAny>> = OnceLock::new();

/// Redis glob match, byte for byte as Redis 7 (`photo.*` matches `photo.processing.started`).
#[pyfunction]
fn matches_pattern(pattern: &str, channel: &str) -> bool {
    event_bus::matches_pattern(pattern, channel)
}

/// Stop forwarding core logs to Python (registered with `atexit`).
#[pyfunction]
fn _shutdown_logging() {
    set_sink(None);
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
        Python::try_attach(|py| {
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
    m.add_class::<bridge::LoopBridge>()?;
    m.add_class::<types::Event>()?;
    m.add_class::<types::PublishResult>()?;
    m.add_class::<types::Subscription>()?;
    m.add_function(wrap_pyfunction!(matches_pattern, m)?)?;
    m.add_function(wrap_pyfunction!(_shutdown_logging, m)?)?;
    m.add("__version__", event_bus::VERSION)?;
    install_log_sink(m.py())?;
    Ok(())
}
