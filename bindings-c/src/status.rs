//! Status codes and failures: the `eb_status` enum, the one mapping from the core's error kinds
//! to it, the per-thread last-error message, and [`guard`], the one wrapper every `extern "C"`
//! body runs in (it turns errors into a status plus a message and keeps panics from unwinding
//! into C).

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use event_bus::{Error, ErrorKind};

use crate::strings::to_c;

/// Result codes: `EB_OK` (0) or a negative error. `eb_strerror` names them; `eb_last_error`
/// gives the message of the last failure on the calling thread.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum eb_status {
    /// Success.
    EB_OK = 0,
    /// A NULL pointer, invalid UTF-8, invalid JSON, a handle that is not live, or a call that
    /// is not allowed where it was made (for example eb_disconnect inside a handler).
    EB_ERR_INVALID_ARGUMENT = -1,
    /// The configuration is incomplete or malformed (`serviceName is required ...`).
    EB_ERR_CONFIG = -2,
    /// An event, pattern or option broke a validation rule.
    EB_ERR_VALIDATION = -3,
    /// The call needs eb_connect first (`Not connected to Event Bus`).
    EB_ERR_NOT_CONNECTED = -4,
    /// Redis could not be reached or a connection failed.
    EB_ERR_CONNECTION = -5,
    /// A deadline passed before the operation was sent.
    EB_ERR_TIMEOUT = -6,
    /// The offline publish queue is full: the publish was not sent.
    EB_ERR_QUEUE_FULL = -7,
    /// The publish was written but the connection died before Redis answered: it may or may
    /// not have been delivered. Never resent automatically.
    EB_ERR_OUTCOME_UNKNOWN = -8,
    /// Redis answered something unexpected.
    EB_ERR_PROTOCOL = -9,
    /// The client was disconnected while the call was pending.
    EB_ERR_CLOSED = -10,
    /// A handler failed or timed out.
    EB_ERR_HANDLER = -11,
    /// Not available in this build or configuration.
    EB_ERR_UNSUPPORTED = -12,
    /// An invariant of the library did not hold (a bug).
    EB_ERR_INTERNAL = -13,
    /// The library panicked; the call did not complete (a bug). No unwinding crossed into C.
    EB_ERR_PANIC = -14,
    /// No such subscription or state listener.
    EB_ERR_NOT_FOUND = -15,
    /// Redis refused the command for this client's ACL user (NOPERM); the message names the
    /// command and channel. Fixing the ACL heals the client without a restart.
    EB_ERR_PERMISSION_DENIED = -16,
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Remember `msg` as this thread's last error.
pub(crate) fn set_last_error(msg: &str) {
    let c = to_c(msg);
    LAST_ERROR.with(|l| *l.borrow_mut() = c);
}

/// Pointer to this thread's last error message (valid until the next failure on this thread).
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|l| l.borrow().as_ptr())
}

/// The status code of an error kind: the one place kinds map to C codes.
pub(crate) fn status_of(kind: ErrorKind) -> eb_status {
    match kind {
        ErrorKind::Config => eb_status::EB_ERR_CONFIG,
        ErrorKind::Validation => eb_status::EB_ERR_VALIDATION,
        ErrorKind::NotConnected => eb_status::EB_ERR_NOT_CONNECTED,
        ErrorKind::Connection => eb_status::EB_ERR_CONNECTION,
        ErrorKind::Timeout => eb_status::EB_ERR_TIMEOUT,
        ErrorKind::QueueFull => eb_status::EB_ERR_QUEUE_FULL,
        ErrorKind::OutcomeUnknown => eb_status::EB_ERR_OUTCOME_UNKNOWN,
        ErrorKind::Protocol => eb_status::EB_ERR_PROTOCOL,
        ErrorKind::PermissionDenied => eb_status::EB_ERR_PERMISSION_DENIED,
        ErrorKind::Closed => eb_status::EB_ERR_CLOSED,
        ErrorKind::Handler => eb_status::EB_ERR_HANDLER,
        ErrorKind::InvalidArgument => eb_status::EB_ERR_INVALID_ARGUMENT,
        ErrorKind::Unsupported => eb_status::EB_ERR_UNSUPPORTED,
        ErrorKind::Internal => eb_status::EB_ERR_INTERNAL,
        _ => eb_status::EB_ERR_INTERNAL,
    }
}

/// What an `extern "C"` function returns when its body failed or panicked.
pub(crate) trait FfiReturn {
    fn from_error(e: &Error) -> Self;
    fn panicked() -> Self;
}

impl FfiReturn for eb_status {
    fn from_error(e: &Error) -> Self {
        status_of(e.kind())
    }
    fn panicked() -> Self {
        eb_status::EB_ERR_PANIC
    }
}

impl FfiReturn for *const c_char {
    fn from_error(_: &Error) -> Self {
        std::ptr::null()
    }
    fn panicked() -> Self {
        std::ptr::null()
    }
}

impl FfiReturn for () {
    fn from_error(_: &Error) -> Self {}
    fn panicked() -> Self {}
}

/// Every `extern "C"` body runs in here: a failure becomes its status code plus this thread's
/// last-error message, and a panic is caught (never unwinds into C) and reported as
/// `EB_ERR_PANIC`. A plain function rather than a macro so that cbindgen reads the signatures.
pub(crate) fn guard<T: FfiReturn>(body: impl FnOnce() -> Result<T, Error>) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            set_last_error(&e.full_message());
            T::from_error(&e)
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("internal panic: {what}"));
            T::panicked()
        }
    }
}

/// `EB_ERR_INVALID_ARGUMENT` with `msg`.
pub(crate) fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidArgument, msg)
}

// ---------------------------------------------------------------------------------------------
// The exported functions

/// The name and meaning of a status code, e.g. `EB_ERR_NOT_CONNECTED: not connected`.
/// Returns a static string (never NULL, never freed); unknown codes give `unknown status`.
#[no_mangle]
pub extern "C" fn eb_strerror(code: c_int) -> *const c_char {
    guard(|| {
        let s: &'static std::ffi::CStr = match code {
            0 => c"EB_OK: success",
            -1 => c"EB_ERR_INVALID_ARGUMENT: invalid argument",
            -2 => c"EB_ERR_CONFIG: invalid configuration",
            -3 => c"EB_ERR_VALIDATION: validation failed",
            -4 => c"EB_ERR_NOT_CONNECTED: not connected",
            -5 => c"EB_ERR_CONNECTION: connection error",
            -6 => c"EB_ERR_TIMEOUT: timed out",
            -7 => c"EB_ERR_QUEUE_FULL: offline queue full",
            -8 => c"EB_ERR_OUTCOME_UNKNOWN: publish outcome unknown",
            -9 => c"EB_ERR_PROTOCOL: protocol error",
            -10 => c"EB_ERR_CLOSED: client closed",
            -11 => c"EB_ERR_HANDLER: handler failed",
            -12 => c"EB_ERR_UNSUPPORTED: not supported",
            -13 => c"EB_ERR_INTERNAL: internal error",
            -14 => c"EB_ERR_PANIC: internal panic",
            -15 => c"EB_ERR_NOT_FOUND: not found",
            -16 => c"EB_ERR_PERMISSION_DENIED: permission denied",
            _ => c"unknown status",
        };
        Ok(s.as_ptr())
    })
}

/// The message of the last failed call on the calling thread ("" if none yet). Successful calls
/// leave it unchanged. Borrowed: valid until the next failing call on this thread; never NULL.
#[no_mangle]
pub extern "C" fn eb_last_error() -> *const c_char {
    guard(|| Ok(last_error_ptr()))
}
