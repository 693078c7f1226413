//! `event_bus._native`: the PyO3 face of the event bus core. This file only declares the
//! modules and registers the Python module; the Python package
//! (`bindings-python/python/event_bus/`) wraps what it exports.
//!
//! - [`client`]: `NativeClient`, blocking methods plus `*_async` variants that resolve asyncio
//!   futures, wrapped into `event_bus.EventBusClient` and `event_bus.asyncio.EventBusClient`;
//!   [`args`] converts their arguments and results, [`run`] waits or resolves the futures.
//! - [`handler`]: what a Python handler is to the core, and the jobs that cross into Python in
//!   batches; they run on the blocking client's [`dispatcher`] thread or on an asyncio loop
//!   ([`loop_bridge`], with [`aio_batch`] for in-order batches of coroutine handlers).
//! - [`host`]: entering Python from runtime threads, the interpreter-exit guard, the log sink.
//! - [`types`]: `Event`, `PublishResult`, `Subscription`, `matches_pattern`.
//! - [`errors`]: the exception hierarchy and the single core-error mapping.
//! - [`convert`]: Python objects <-> JSON.

use pyo3::prelude::*;

mod aio_batch;
mod args;
mod client;
mod convert;
mod dispatcher;
mod errors;
mod handler;
mod host;
mod loop_bridge;
mod run;
mod types;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<client::NativeClient>()?;
    m.add_class::<loop_bridge::LoopBridge>()?;
    m.add_class::<types::Event>()?;
    m.add_class::<types::DeliveryInfo>()?;
    m.add_class::<types::PublishResult>()?;
    m.add_class::<types::Subscription>()?;
    m.add_function(wrap_pyfunction!(types::matches_pattern, m)?)?;
    m.add_function(wrap_pyfunction!(host::_shutdown_logging, m)?)?;
    m.add("__version__", event_bus::VERSION)?;
    host::install_log_sink(m.py())?;
    Ok(())
}
