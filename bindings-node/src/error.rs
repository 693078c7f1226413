//! The one mapping from the core's errors to JavaScript errors.
//!
//! Every error thrown or rejected by this addon is a JS `Error` whose `code` is the core's
//! [`event_bus::ErrorKind::code`] (`VALIDATION_ERROR`, `CONFIG_ERROR`, ...) and whose
//! `message` is the core's message verbatim. napi-rs sets `code` from the error's status, so
//! the status here is the code itself ([`Code`]), not one of Node-API's statuses.
//!
//! A Rust panic never aborts Node: synchronous entry points run inside [`guard`] and futures
//! inside [`crate::dispatch::promise`], which turn a panic into an `INTERNAL_ERROR`.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use event_bus::ErrorKind;
use napi::bindgen_prelude::*;

/// The `code` of a JS error: one of the core's error codes.
#[derive(Debug, Clone, Copy)]
pub struct Code(pub &'static str);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.0
    }
}

/// A JS error with the core's code.
pub type CodedError = napi::Error<Code>;

/// What the addon's entry points return.
pub type JsResult<T> = std::result::Result<T, CodedError>;

/// The core's error as a JS error: its code, and its message with the causes.
pub fn js_error(e: &event_bus::Error) -> CodedError {
    napi::Error::new(Code(e.kind().code()), e.full_message())
}

/// An error of `kind` made by this face (an argument the core never saw, a broken invariant).
pub fn face_error(kind: ErrorKind, message: impl Into<String>) -> CodedError {
    napi::Error::new(Code(kind.code()), message.into())
}

/// A failure of Node-API itself (allocating a value, making a promise): an internal error.
pub fn from_napi(e: napi::Error) -> CodedError {
    face_error(ErrorKind::Internal, e.reason.clone())
}

/// The text of a panic's payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    let what = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    format!("internal error in the event-bus addon: {what}")
}

/// Run a synchronous entry point, turning a panic into an `INTERNAL_ERROR` exception.
pub fn guard<T>(f: impl FnOnce() -> JsResult<T>) -> JsResult<T> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|p| Err(face_error(ErrorKind::Internal, panic_message(&*p))))
}

/// `err` as a promise rejection. A promise is settled through napi's own error type, whose
/// status cannot carry the core's code; so the JS error object (with `code`) is made here, on
/// the JS thread, and the promise is rejected with that object as it is.
pub fn rejection(env: &Env, err: CodedError) -> napi::Error {
    let reason = err.reason.clone();
    // SAFETY: `env` is the live environment of the JS thread this runs on.
    let value = unsafe { napi::JsError::from(err).into_value(env.raw()) };
    if value.is_null() {
        // The environment is tearing down: nobody will see the rejection.
        return napi::Error::new(Status::GenericFailure, reason);
    }
    // SAFETY: a value just created in this env.
    napi::Error::from(unsafe { Unknown::from_raw_unchecked(env.raw(), value) })
}
