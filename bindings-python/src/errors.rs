//! The one place where core errors become Python exceptions.
//!
//! Hierarchy (all made here, exported from `event_bus`):
//! `EventBusError` > `ValidationError`, `NotConnectedError`, `ConnectionError`, `TimeoutError`,
//! `PublishError` > (`QueueFullError`, `OutcomeUnknownError`).

use event_bus::{Error, ErrorKind};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError};
use pyo3::prelude::*;

create_exception!(
    event_bus,
    EventBusError,
    PyException,
    "Base class of every event bus error."
);
create_exception!(
    event_bus,
    ValidationError,
    EventBusError,
    "An event, pattern, option or config broke a validation rule."
);
create_exception!(
    event_bus,
    NotConnectedError,
    EventBusError,
    "The call needs connect() first, or the client was disconnected."
);
create_exception!(
    event_bus,
    ConnectionError,
    EventBusError,
    "Redis or the Socket.IO hub could not be reached, or a connection failed."
);
create_exception!(
    event_bus,
    TimeoutError,
    EventBusError,
    "A deadline passed: before the operation was sent, or (room calls) before the hub acknowledged it."
);
create_exception!(event_bus, PublishError, EventBusError, "A publish failed.");
create_exception!(
    event_bus,
    QueueFullError,
    PublishError,
    "The offline publish queue is full: the event was not sent."
);
create_exception!(event_bus, OutcomeUnknownError, PublishError, "The event was written but the connection died before Redis answered: it may or may not have been delivered. Never resent automatically.");

/// A core error on its way to Python, optionally with the event id of a failed publish.
pub struct BusError {
    pub error: Error,
    pub event_id: Option<String>,
}

impl From<Error> for BusError {
    fn from(error: Error) -> Self {
        BusError {
            error,
            event_id: None,
        }
    }
}

impl From<BusError> for PyErr {
    fn from(b: BusError) -> PyErr {
        to_py(b, PublishError::new_err)
    }
}

/// `protocol` builds the exception of a PROTOCOL_ERROR: Redis refusing a publish is a
/// `PublishError`, the Socket.IO hub refusing a room call is not (see [`map_room`]).
fn to_py(b: BusError, protocol: fn(String) -> PyErr) -> PyErr {
    let e = &b.error;
    let msg = e.message().to_string();
    let err = match e.kind() {
        ErrorKind::Validation | ErrorKind::Config | ErrorKind::InvalidArgument => {
            ValidationError::new_err(msg)
        }
        ErrorKind::NotConnected | ErrorKind::Closed => NotConnectedError::new_err(msg),
        ErrorKind::Connection => ConnectionError::new_err(msg),
        ErrorKind::Timeout => TimeoutError::new_err(msg),
        ErrorKind::QueueFull => QueueFullError::new_err(msg),
        ErrorKind::OutcomeUnknown => OutcomeUnknownError::new_err(msg),
        ErrorKind::Protocol => protocol(msg),
        _ => EventBusError::new_err(msg),
    };
    Python::attach(|py| {
        let v = err.value(py);
        let _ = v.setattr("code", e.kind().code());
        let _ = v.setattr("event_id", b.event_id.as_deref());
        if let Some(src) = std::error::Error::source(e) {
            err.set_cause(py, Some(PyRuntimeError::new_err(e.full_message_of(src))));
        }
    });
    err
}

trait CauseText {
    fn full_message_of(&self, src: &(dyn std::error::Error + 'static)) -> String;
}

impl CauseText for Error {
    fn full_message_of(&self, src: &(dyn std::error::Error + 'static)) -> String {
        let mut out = src.to_string();
        let mut cur = src.source();
        while let Some(c) = cur {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cur = c.source();
        }
        out
    }
}

/// Convert a core result.
pub fn map<T>(r: event_bus::Result<T>) -> PyResult<T> {
    r.map_err(|e| PyErr::from(BusError::from(e)))
}

/// Convert the result of a room call (`join_room`, `leave_room`, `get_room_members`): as
/// [`map`], except that the hub refusing the call or answering nonsense (PROTOCOL_ERROR)
/// raises the base `EventBusError`, not `PublishError`. No hub connection is
/// `ConnectionError` (`Socket.IO not connected`), an empty room name `ValidationError`.
pub fn map_room<T>(r: event_bus::Result<T>) -> PyResult<T> {
    r.map_err(|e| to_py(BusError::from(e), EventBusError::new_err))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("EventBusError", py.get_type::<EventBusError>())?;
    m.add("ValidationError", py.get_type::<ValidationError>())?;
    m.add("NotConnectedError", py.get_type::<NotConnectedError>())?;
    m.add("ConnectionError", py.get_type::<ConnectionError>())?;
    m.add("TimeoutError", py.get_type::<TimeoutError>())?;
    m.add("PublishError", py.get_type::<PublishError>())?;
    m.add("QueueFullError", py.get_type::<QueueFullError>())?;
    m.add("OutcomeUnknownError", py.get_type::<OutcomeUnknownError>())?;
    Ok(())
}
