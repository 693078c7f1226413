//! The machinery behind the `extern "C"` functions: the one panic guard, the per-thread last
//! error, argument conversion, the registry of live client handles, and the adapters that turn
//! C callbacks into the core's [`Handler`], state listener and log sink.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use event_bus::logging::LogRecord;
use event_bus::{
    Delivery, Error, ErrorKind, EventBusClient, Handler, HandlerError, HandlerFuture, LogLevel,
};

use crate::{eb_client, eb_drop_fn, eb_event, eb_log_level, eb_status};

/// The non-NULL function pointer types behind the header's nullable typedefs.
pub(crate) type HandlerFn = unsafe extern "C" fn(*const eb_event, *mut c_void) -> c_int;
pub(crate) type StateFn = unsafe extern "C" fn(*const c_char, *const c_char, *mut c_void);
pub(crate) type LogFn = unsafe extern "C" fn(eb_log_level, *const c_char, *mut c_void);

// ---------------------------------------------------------------------------------------------
// Errors and the guard

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
    /// Depth of library callbacks (handler, state) running on this thread.
    static IN_CALLBACK: Cell<u32> = const { Cell::new(0) };
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

/// Refuse calls that wait for handlers when made from inside a callback (they would wait for
/// themselves until the disconnect timeout).
pub(crate) fn refuse_in_callback(what: &str) -> Result<(), Error> {
    if IN_CALLBACK.with(|c| c.get()) > 0 {
        return Err(invalid(format!(
            "{what} cannot be called from inside an event-bus callback (it waits for handlers to finish)"
        )));
    }
    Ok(())
}

struct CallbackScope;

impl CallbackScope {
    fn enter() -> Self {
        IN_CALLBACK.with(|c| c.set(c.get() + 1));
        CallbackScope
    }
}

impl Drop for CallbackScope {
    fn drop(&mut self) {
        IN_CALLBACK.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

// ---------------------------------------------------------------------------------------------
// Arguments and results

/// A C string argument as `&str`: NULL and invalid UTF-8 are `EB_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives the call.
pub(crate) unsafe fn arg_str<'a>(p: *const c_char, what: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| invalid(format!("{what} is not valid UTF-8")))
}

/// Like [`arg_str`], NULL allowed.
///
/// # Safety
/// As [`arg_str`].
pub(crate) unsafe fn arg_opt_str<'a>(
    p: *const c_char,
    what: &str,
) -> Result<Option<&'a str>, Error> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { arg_str(p, what) }.map(Some)
    }
}

/// Check that `text` is one JSON value.
pub(crate) fn check_json(text: &str, what: &str) -> Result<(), Error> {
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| invalid(format!("{what} is not valid JSON: {e}")))
}

/// A C string for `s`, cut at an embedded NUL (C cannot see past it anyway).
pub(crate) fn to_c(s: &str) -> CString {
    let cut = s.find('\0').map_or(s, |i| &s[..i]);
    CString::new(cut).expect("no NUL left")
}

/// Hand `s` to C through `out` (caller frees with `eb_string_free`).
///
/// # Safety
/// `out` is a valid, writable `char **`.
pub(crate) unsafe fn give_string(out: *mut *mut c_char, s: &str) {
    // SAFETY: checked non-NULL by the callers.
    unsafe { *out = to_c(s).into_raw() };
}

/// Check a `char **` out-parameter and set it to NULL.
///
/// # Safety
/// `out` is NULL or a valid, writable `char **`.
pub(crate) unsafe fn out_str(out: *mut *mut c_char, what: &str) -> Result<(), Error> {
    if out.is_null() {
        return Err(invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL and writable per contract.
    unsafe { *out = std::ptr::null_mut() };
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Live client handles

/// Live handles, by address. The `eb_client *` is only ever used as a key: the library never
/// reads through it, so a freed or foreign pointer is refused instead of dereferenced.
static CLIENTS: Mutex<BTreeMap<usize, EventBusClient>> = Mutex::new(BTreeMap::new());

fn clients() -> std::sync::MutexGuard<'static, BTreeMap<usize, EventBusClient>> {
    CLIENTS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Register `client` and return its new handle.
pub(crate) fn register(client: EventBusClient) -> *mut eb_client {
    let p = Box::into_raw(Box::new(eb_client { _token: 0 }));
    clients().insert(p as usize, client);
    p
}

/// The client behind a handle, or `EB_ERR_INVALID_ARGUMENT` for NULL or a handle that is not
/// live (freed, or never returned by `eb_client_new`).
pub(crate) fn lookup(p: *const eb_client) -> Result<EventBusClient, Error> {
    if p.is_null() {
        return Err(invalid("client is NULL"));
    }
    clients()
        .get(&(p as usize))
        .cloned()
        .ok_or_else(|| invalid("client is not a live eb_client (already freed?)"))
}

/// Remove a handle from the registry and release its memory; `None` when it was not live.
pub(crate) fn unregister(p: *mut eb_client) -> Option<EventBusClient> {
    let c = clients().remove(&(p as usize))?;
    // SAFETY: the address was in the registry, so it came from `register`'s Box::into_raw and
    // has not been freed (removal from the registry and freeing happen together, here).
    drop(unsafe { Box::from_raw(p) });
    Some(c)
}

/// Every live handle (for `eb_shutdown`).
pub(crate) fn unregister_all() -> Vec<EventBusClient> {
    let all: Vec<(usize, EventBusClient)> = std::mem::take(&mut *clients()).into_iter().collect();
    all.into_iter()
        .map(|(addr, c)| {
            // SAFETY: as in `unregister`.
            drop(unsafe { Box::from_raw(addr as *mut eb_client) });
            c
        })
        .collect()
}

/// Disconnect and forget a client (its subscriptions' `drop` callbacks run during this).
pub(crate) fn close_client(c: EventBusClient) -> Result<(), Error> {
    let c2 = c.clone();
    let r = event_bus::runtime::block_on(async move { c2.disconnect().await });
    c.clear_state_listeners();
    r
}

// ---------------------------------------------------------------------------------------------
// Callbacks

/// A C context pointer plus its optional `drop`, called exactly once when the last reference
/// goes away (after the last call has returned).
pub(crate) struct Ctx {
    ctx: *mut c_void,
    drop: eb_drop_fn,
}

// SAFETY: the C side promises (in the header) that ctx may be used from library threads.
unsafe impl Send for Ctx {}
// SAFETY: as above; the library never touches *ctx itself.
unsafe impl Sync for Ctx {}

impl Ctx {
    pub(crate) fn new(ctx: *mut c_void, drop: eb_drop_fn) -> Self {
        Ctx { ctx, drop }
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        if let Some(d) = self.drop.take() {
            // SAFETY: the caller supplied `d` for exactly this ctx, to be called once.
            unsafe { d(self.ctx) };
        }
    }
}

/// One C subscription handler.
pub(crate) struct CHandlerInner {
    call: HandlerFn,
    ctx: Ctx,
    /// Held around each call when `concurrency` is 1, so a retry after a timeout waits for the
    /// timed-out call to return instead of overlapping it.
    serial: Option<Mutex<()>>,
}

/// Adapts a C handler to the core's [`Handler`]: each event is handed to the C function on the
/// runtime's blocking pool (never on an async worker).
pub(crate) struct CHandler(Arc<CHandlerInner>);

impl CHandler {
    pub(crate) fn new(call: HandlerFn, ctx: Ctx, serial: bool) -> Self {
        CHandler(Arc::new(CHandlerInner {
            call,
            ctx,
            serial: serial.then(|| Mutex::new(())),
        }))
    }
}

impl CHandlerInner {
    fn invoke(&self, d: &Delivery) -> c_int {
        let _order = self
            .serial
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()));
        let id = to_c(d.id());
        let ty = to_c(d.event_type());
        let data = to_c(d.data_json());
        let meta = d.metadata_json();
        let meta = to_c(if meta.is_empty() { "{}" } else { &meta });
        let channel = to_c(d.channel());
        let pattern = d.pattern().map(to_c);
        let json = to_c(&d.to_json_with_channel());
        let ev = eb_event {
            id: id.as_ptr(),
            type_: ty.as_ptr(),
            data_json: data.as_ptr(),
            metadata_json: meta.as_ptr(),
            channel: channel.as_ptr(),
            pattern: pattern.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
            json: json.as_ptr(),
        };
        let _scope = CallbackScope::enter();
        // SAFETY: `call` and `ctx` were given together by the C caller; `ev` and its strings
        // live until after the call returns.
        unsafe { (self.call)(&ev, self.ctx.ctx) }
    }
}

impl Handler for CHandler {
    fn call(&self, event: Delivery) -> HandlerFuture {
        // The blocking task keeps its own reference: when a timeout drops this future the C call
        // still running keeps ctx alive, so drop(ctx) can never run during a call.
        let inner = self.0.clone();
        Box::pin(async move {
            match tokio::task::spawn_blocking(move || inner.invoke(&event)).await {
                Ok(0) => Ok(()),
                Ok(rc) => Err(HandlerError::new(format!("C handler returned {rc}"))),
                Err(e) => Err(HandlerError::new(format!("C handler did not run: {e}"))),
            }
        })
    }
}

/// A state listener around a C callback.
pub(crate) fn state_listener(f: StateFn, ctx: Ctx) -> event_bus::state::StateListener {
    let ctx = Arc::new(ctx);
    Arc::new(move |ev: &event_bus::StateEvent| {
        let name = to_c(ev.name());
        let json = to_c(&ev.to_json());
        let _scope = CallbackScope::enter();
        // SAFETY: callback and ctx given together by the C caller; strings live for the call.
        unsafe { f(name.as_ptr(), json.as_ptr(), ctx.ctx) };
    })
}

/// What the process-wide log sink currently is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LogMode {
    Unset,
    Stderr,
    User,
}

static LOG_MODE: Mutex<LogMode> = Mutex::new(LogMode::Unset);

/// Install the default stderr logger unless a log callback (or the default) is already set.
pub(crate) fn ensure_default_log() {
    let mut m = LOG_MODE.lock().unwrap_or_else(|p| p.into_inner());
    if *m == LogMode::Unset {
        event_bus::logging::install_stderr(false);
        *m = LogMode::Stderr;
    }
}

/// Route the library's log records to `f` (or back to stderr when `None`).
pub(crate) fn set_log(f: Option<LogFn>, ctx: Ctx) {
    let mut m = LOG_MODE.lock().unwrap_or_else(|p| p.into_inner());
    match f {
        None => {
            drop(ctx);
            event_bus::logging::install_stderr(false);
            *m = LogMode::Stderr;
        }
        Some(f) => {
            let ctx = Arc::new(ctx);
            event_bus::logging::set_sink(Some(Arc::new(move |r: &LogRecord<'_>| {
                let level = match r.level {
                    LogLevel::Debug => eb_log_level::EB_LOG_DEBUG,
                    LogLevel::Info => eb_log_level::EB_LOG_INFO,
                    LogLevel::Warn => eb_log_level::EB_LOG_WARN,
                    LogLevel::Error => eb_log_level::EB_LOG_ERROR,
                };
                let line = to_c(&r.to_line());
                // SAFETY: callback and ctx given together by the C caller.
                unsafe { f(level, line.as_ptr(), ctx.ctx) };
            })));
            *m = LogMode::User;
        }
    }
}

/// Remove whatever log sink is installed (releasing a callback's ctx).
pub(crate) fn reset_log() {
    let mut m = LOG_MODE.lock().unwrap_or_else(|p| p.into_inner());
    event_bus::logging::set_sink(None);
    *m = LogMode::Unset;
}
