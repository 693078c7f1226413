//! The one place where errors become Python exceptions.
//!
//! Every exception this package raises is an instance of one of the classes made here (exported
//! from `event_bus`), chosen from the core's [`ErrorKind`] by [`class_of`] and nowhere else.
//! Errors the face itself finds (a handler that is not callable, a value JSON cannot carry) are
//! core [`Error`]s too, so they take the same road: every instance has `.code` (the kind's
//! code) and `.event_id` (the id of a failed publish, else `None`), and `__cause__` when the
//! core error has a cause.
//!
//! Hierarchy: `EventBusError(Exception)` >
//! `ValidationError(ValueError)`, `ConfigError(ValueError)`, `InvalidArgumentError(TypeError)`,
//! `NotConnectedError`, `ConnectionError(builtins.ConnectionError)`,
//! `TimeoutError(builtins.TimeoutError)`, `PublishError` > (`QueueFullError`,
//! `OutcomeUnknownError`), `ClosedError`, `ProtocolError`,
//! `PermissionDeniedError(builtins.PermissionError)`,
//! `NotSupportedError(NotImplementedError)`, `InternalError`. The second bases make the
//! classes catchable the way Python code already catches such failures (`except ValueError`,
//! `except TimeoutError`, `except OSError`).
//!
//! A Rust panic must not reach Python as pyo3's `PanicException` (a `BaseException`, which
//! `except Exception` does not catch): [`guard`] turns one into `InternalError`.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use event_bus::{Error, ErrorKind};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

/// One exception class: its name, code (`None` for the base), parent (an index into
/// [`SPECS`]; `None` for the base, which derives from `Exception`), the built-in exception it
/// also derives from, and its docstring.
struct Spec {
    name: &'static str,
    code: Option<&'static str>,
    parent: Option<usize>,
    builtin: Option<&'static str>,
    doc: &'static str,
}

const BASE: usize = 0;
const VALIDATION: usize = 1;
const CONFIG: usize = 2;
const INVALID_ARGUMENT: usize = 3;
const NOT_CONNECTED: usize = 4;
const CONNECTION: usize = 5;
const TIMEOUT: usize = 6;
const PUBLISH: usize = 7;
const QUEUE_FULL: usize = 8;
const OUTCOME_UNKNOWN: usize = 9;
const CLOSED: usize = 10;
const PROTOCOL: usize = 11;
const NOT_SUPPORTED: usize = 12;
const INTERNAL: usize = 13;
const PERMISSION_DENIED: usize = 14;

const SPECS: [Spec; 15] = [
    Spec {
        name: "EventBusError",
        code: None,
        parent: None,
        builtin: Some("Exception"),
        doc: "Base class of every event bus error. `code` names the kind of failure \
              (`VALIDATION_ERROR`, `TIMEOUT`, ...); `event_id` is the id of the event a failed \
              publish would have sent, else None.",
    },
    Spec {
        name: "ValidationError",
        code: Some("VALIDATION_ERROR"),
        parent: Some(BASE),
        builtin: Some("ValueError"),
        doc: "An event, pattern or publish/subscribe option broke a validation rule.",
    },
    Spec {
        name: "ConfigError",
        code: Some("CONFIG_ERROR"),
        parent: Some(BASE),
        builtin: Some("ValueError"),
        doc: "The client configuration is incomplete or malformed.",
    },
    Spec {
        name: "InvalidArgumentError",
        code: Some("INVALID_ARGUMENT"),
        parent: Some(BASE),
        builtin: Some("TypeError"),
        doc: "An argument is of a kind the call cannot take: a handler that is not callable, \
              a value JSON cannot carry, bytes that are not UTF-8 text.",
    },
    Spec {
        name: "NotConnectedError",
        code: Some("NOT_CONNECTED"),
        parent: Some(BASE),
        builtin: None,
        doc: "The call needs connect() first, or the client was disconnected.",
    },
    Spec {
        name: "ConnectionError",
        code: Some("CONNECTION_ERROR"),
        parent: Some(BASE),
        builtin: Some("ConnectionError"),
        doc: "Redis or the Socket.IO hub could not be reached, or a connection failed.",
    },
    Spec {
        name: "TimeoutError",
        code: Some("TIMEOUT"),
        parent: Some(BASE),
        builtin: Some("TimeoutError"),
        doc: "A deadline passed: before the operation was sent, or (room calls) before the \
              hub acknowledged it.",
    },
    Spec {
        name: "PublishError",
        code: None,
        parent: Some(BASE),
        builtin: None,
        doc: "A publish failed.",
    },
    Spec {
        name: "QueueFullError",
        code: Some("QUEUE_FULL"),
        parent: Some(PUBLISH),
        builtin: None,
        doc: "The offline publish queue is full: the event was not sent.",
    },
    Spec {
        name: "OutcomeUnknownError",
        code: Some("OUTCOME_UNKNOWN"),
        parent: Some(PUBLISH),
        builtin: None,
        doc: "The event was written but the connection died before Redis answered: it may or \
              may not have been delivered. Never resent automatically.",
    },
    Spec {
        name: "ClosedError",
        code: Some("CLOSED"),
        parent: Some(BASE),
        builtin: None,
        doc: "The client was disconnected while the call was pending.",
    },
    Spec {
        name: "ProtocolError",
        code: Some("PROTOCOL_ERROR"),
        parent: Some(BASE),
        builtin: None,
        doc: "Redis or the Socket.IO hub refused the call or answered something unexpected.",
    },
    Spec {
        name: "NotSupportedError",
        code: Some("NOT_SUPPORTED"),
        parent: Some(BASE),
        builtin: Some("NotImplementedError"),
        doc: "The feature is not available in this build or configuration.",
    },
    Spec {
        name: "InternalError",
        code: Some("INTERNAL_ERROR"),
        parent: Some(BASE),
        builtin: None,
        doc: "A bug in the event bus: a Rust panic or a broken invariant.",
    },
    Spec {
        name: "PermissionDeniedError",
        code: Some("PERMISSION_DENIED"),
        parent: Some(BASE),
        builtin: Some("PermissionError"),
        doc: "Redis refused the command for this client's ACL user (NOPERM): it may not run \
              the command or use the channel or key named in the message. Fixing the ACL \
              heals the client without a restart.",
    },
];

/// The class of each kind: the one mapping from the core's error kinds to Python.
fn class_of(kind: ErrorKind) -> usize {
    match kind {
        ErrorKind::Validation => VALIDATION,
        ErrorKind::Config => CONFIG,
        ErrorKind::InvalidArgument => INVALID_ARGUMENT,
        ErrorKind::NotConnected => NOT_CONNECTED,
        ErrorKind::Connection => CONNECTION,
        ErrorKind::Timeout => TIMEOUT,
        ErrorKind::QueueFull => QUEUE_FULL,
        ErrorKind::OutcomeUnknown => OUTCOME_UNKNOWN,
        ErrorKind::Closed => CLOSED,
        ErrorKind::Protocol => PROTOCOL,
        ErrorKind::PermissionDenied => PERMISSION_DENIED,
        ErrorKind::Unsupported => NOT_SUPPORTED,
        ErrorKind::Internal => INTERNAL,
        // A handler failure is reported to the core, never raised; a kind added to the core
        // later is still an EventBusError with its code.
        _ => BASE,
    }
}

static CLASSES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

fn make_classes(py: Python<'_>) -> PyResult<Vec<Py<PyType>>> {
    let builtins = py.import("builtins")?;
    let type_ = builtins.getattr("type")?;
    let mut made: Vec<Py<PyType>> = Vec::with_capacity(SPECS.len());
    for s in &SPECS {
        let mut bases: Vec<Bound<'_, PyAny>> = Vec::with_capacity(2);
        if let Some(p) = s.parent {
            bases.push(made[p].bind(py).clone().into_any());
        }
        if let Some(b) = s.builtin {
            bases.push(builtins.getattr(b)?);
        }
        let ns = PyDict::new(py);
        ns.set_item("__module__", "event_bus")?;
        ns.set_item("__doc__", s.doc)?;
        if s.parent.is_none() {
            ns.set_item("event_id", py.None())?;
        }
        if let Some(code) = s.code {
            ns.set_item("code", code)?;
        }
        let cls = type_.call1((s.name, PyTuple::new(py, bases)?, ns))?;
        made.push(cls.cast_into::<PyType>()?.unbind());
    }
    Ok(made)
}

fn class(py: Python<'_>, i: usize) -> PyResult<Bound<'_, PyType>> {
    let all = CLASSES.get_or_try_init(py, || make_classes(py))?;
    Ok(all[i].bind(py).clone())
}

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
        Python::attach(|py| to_py(py, b))
    }
}

fn to_py(py: Python<'_>, b: BusError) -> PyErr {
    match build(py, &b) {
        Ok(e) => e,
        // Making the exception itself failed (out of memory, say): that failure is the error.
        Err(e) => e,
    }
}

fn build(py: Python<'_>, b: &BusError) -> PyResult<PyErr> {
    let e = &b.error;
    let cls = class(py, class_of(e.kind()))?;
    let v = cls.call1((e.message(),))?;
    v.setattr("code", e.kind().code())?;
    v.setattr("event_id", b.event_id.as_deref())?;
    let err = PyErr::from_value(v);
    if let Some(src) = std::error::Error::source(e) {
        err.set_cause(py, Some(cause(src)));
    }
    Ok(err)
}

/// The cause of a core error as Python: the matching `OSError` subclass when the chain holds
/// an I/O error (`ConnectionRefusedError`, ...), else an `Exception`; its message is the whole
/// chain, `a: b: c` (a part already contained in the text before it is left out).
fn cause(src: &(dyn std::error::Error + 'static)) -> PyErr {
    let mut text = String::new();
    let mut io_kind = None;
    let mut cur = Some(src);
    while let Some(c) = cur {
        let part = c.to_string();
        if !part.is_empty() && !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        if io_kind.is_none() {
            io_kind = io_error(c).map(|io| io.kind());
        }
        cur = c.source();
    }
    match io_kind {
        Some(kind) => PyErr::from(std::io::Error::new(kind, text)),
        None => pyo3::exceptions::PyException::new_err(text),
    }
}

/// `e` as an I/O error: itself, or one shared behind an `Arc` (how the redis crate keeps it).
fn io_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    e.downcast_ref::<std::io::Error>().or_else(|| {
        e.downcast_ref::<Shared>()
            .and_then(|a| (**a).downcast_ref::<std::io::Error>())
    })
}

/// Convert a core result.
pub fn map<T>(r: event_bus::Result<T>) -> PyResult<T> {
    r.map_err(|e| PyErr::from(BusError::from(e)))
}

/// An `InvalidArgumentError`: a host value the call cannot take.
pub fn invalid_argument(message: impl Into<String>) -> PyErr {
    PyErr::from(BusError::from(Error::new(
        ErrorKind::InvalidArgument,
        message,
    )))
}

/// A `ValidationError` found while converting a host value (NaN, nesting too deep).
pub fn validation(message: impl Into<String>) -> PyErr {
    PyErr::from(BusError::from(Error::new(ErrorKind::Validation, message)))
}

/// An `InternalError`: a broken invariant of this package.
pub fn internal(message: impl Into<String>) -> PyErr {
    PyErr::from(BusError::from(Error::new(ErrorKind::Internal, message)))
}

/// The text of a panic payload.
fn panic_text(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// The `InternalError` of a caught panic.
pub fn from_panic(p: Box<dyn Any + Send>) -> PyErr {
    internal(format!(
        "event bus internal error (Rust panic): {}",
        panic_text(&*p)
    ))
}

/// Run `f`; a panic inside it becomes `InternalError` instead of pyo3's `PanicException`.
/// Every method Python calls runs its body in here.
pub fn guard<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(from_panic(p)),
    }
}

/// Run `f`, which returns nothing to Python (a callback on the event loop, a dispatcher job);
/// a panic inside it is reported as an unraisable `InternalError` (printed by
/// `sys.unraisablehook`) rather than ending the caller.
pub fn guard_unraisable(py: Python<'_>, f: impl FnOnce()) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
        from_panic(p).write_unraisable(py, None);
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    for (i, s) in SPECS.iter().enumerate() {
        m.add(s.name, class(py, i)?)?;
    }
    Ok(())
}
