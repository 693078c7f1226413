//! Where the library's log lines go: the default stderr logger, or a C callback set with
//! `eb_set_log_callback`.

use std::ffi::{c_char, c_void};
use std::sync::{Arc, Mutex};

use event_bus::logging::LogRecord;
use event_bus::LogLevel;

use crate::callback::{eb_drop_fn, Ctx};
use crate::status::{eb_status, guard};
use crate::strings::to_c;

/// Log levels passed to the log callback.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum eb_log_level {
    /// Per-event traces.
    EB_LOG_DEBUG = 0,
    /// Lifecycle messages.
    EB_LOG_INFO = 1,
    /// Recoverable problems.
    EB_LOG_WARN = 2,
    /// Failures.
    EB_LOG_ERROR = 3,
}

/// A log callback: one formatted line (`[time] [LEVEL] [service] message key=value...`),
/// borrowed for the duration of the call.
pub type eb_log_fn =
    Option<unsafe extern "C" fn(level: eb_log_level, line: *const c_char, ctx: *mut c_void)>;

/// The non-NULL function pointer type behind `eb_log_fn`.
pub(crate) type LogFn = unsafe extern "C" fn(eb_log_level, *const c_char, *mut c_void);

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

// ---------------------------------------------------------------------------------------------
// The exported functions

/// Sends the library's log lines (of every client; levels per each config's `logLevel`) to
/// `callback` instead of the default stderr logger. NULL restores the stderr logger. Replacing
/// or removing a callback calls its drop(ctx) (if not NULL) once; eb_shutdown does too.
///
/// Threads: the callback runs on whichever thread logs (library threads and callers of eb_*
/// functions), possibly on several threads at once: it must be thread-safe and must not call
/// eb_set_log_callback.
#[no_mangle]
pub extern "C" fn eb_set_log_callback(
    callback: eb_log_fn,
    ctx: *mut c_void,
    drop: eb_drop_fn,
) -> eb_status {
    let owned = Ctx::new(ctx, drop);
    guard(move || {
        set_log(callback, owned);
        Ok(eb_status::EB_OK)
    })
}
