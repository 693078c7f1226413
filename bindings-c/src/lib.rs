//! C ABI of the event bus: the `eb_*` functions of `include/event_bus.h`.
//!
//! Where things are:
//! - this file: the exported types and `extern "C"` functions (what cbindgen reads to write the
//!   header; the `///` comments become the header's documentation);
//! - [`support`]: the single panic guard, the per-thread last error, argument checks, the
//!   registry of live handles, and the adapters from C callbacks to the core's `Handler`,
//!   state listener and log sink.
//!
//! Every body is `guard(|| ...)`: errors become an [`eb_status`] plus the thread's last-error
//! message, panics are caught. Blocking calls wait on the core's shared runtime with
//! `event_bus::runtime::block_on`, which is safe from C threads and from inside handlers.
#![allow(non_camel_case_types)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::{c_char, c_int, c_void};
use std::time::Duration;

use event_bus::{
    BatchItem, Error, ErrorKind, EventBusClient, OutcomeJson, OutcomeShape, PublishOptions,
    PublishOutcome, SubscriptionOptions,
};
use serde_json::json;
use serde_json::value::RawValue;

mod support;
use support::{
    arg_opt_str, arg_str, check_json, close_client, give_string, guard, invalid, lookup, out_str,
    refuse_in_callback, register, set_last_error, status_of, unregister, unregister_all, CHandler,
    Ctx,
};

/// Size of `eb_publish_result.event_id` (a UUID plus NUL fits with room to spare).
pub const EB_ID_BUFFER_SIZE: usize = 40;
/// Size of `eb_publish_result.published_at` (an ISO-8601 time plus NUL).
pub const EB_TIME_BUFFER_SIZE: usize = 32;

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
}

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

/// An event bus client (opaque). Created by eb_client_new, released by eb_client_free.
/// The pointer is a handle: the library checks it against its live handles and refuses one that
/// was freed (EB_ERR_INVALID_ARGUMENT) instead of reading freed memory, as far as it can tell
/// (a freed address reused by a later eb_client_new names the new client).
pub struct eb_client {
    _token: u64,
}

/// An event handed to a handler. Every pointer is borrowed: valid only until the handler
/// returns (copy what you keep). Strings are NUL-terminated UTF-8.
///
/// cbindgen:field-names=[id, type, data_json, metadata_json, channel, pattern, json]
#[repr(C)]
pub struct eb_event {
    /// Event id (UUID).
    pub id: *const c_char,
    /// Event type, e.g. `photo.uploaded`.
    pub type_: *const c_char,
    /// `data` as JSON text.
    pub data_json: *const c_char,
    /// `metadata` as JSON text (`{"source","timestamp","traceId",...}`).
    pub metadata_json: *const c_char,
    /// The channel it was published on.
    pub channel: *const c_char,
    /// The subscription pattern it matched (pattern subscriptions), else NULL.
    pub pattern: *const c_char,
    /// The whole event as JSON: `{id,type,data,metadata,channel,pattern?}`.
    pub json: *const c_char,
}

/// A subscription handler: return 0 on success, non-zero on failure (the subscription's retry
/// policy then applies: `retryOnError`, `maxRetries`, `retryDelay`).
pub type eb_handler_fn =
    Option<unsafe extern "C" fn(event: *const eb_event, ctx: *mut c_void) -> c_int>;

/// Releases a callback's `ctx`. Called exactly once, after the last call of its callback has
/// returned, on whichever library or caller thread releases it last.
pub type eb_drop_fn = Option<unsafe extern "C" fn(ctx: *mut c_void)>;

/// A state-change callback: `state` is `connected`, `disconnected`, `reconnecting`, `gap` or
/// `error`; `event_json` is the whole change as JSON (`{"type":...,"connection":...}`). Both are
/// borrowed for the duration of the call.
pub type eb_state_fn =
    Option<unsafe extern "C" fn(state: *const c_char, event_json: *const c_char, ctx: *mut c_void)>;

/// A log callback: one formatted line (`[time] [LEVEL] [service] message key=value...`),
/// borrowed for the duration of the call.
pub type eb_log_fn =
    Option<unsafe extern "C" fn(level: eb_log_level, line: *const c_char, ctx: *mut c_void)>;

/// A handler and the function that releases its context.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct eb_handler {
    /// Called for each event (required).
    pub call: eb_handler_fn,
    /// Called once with ctx after the last call (optional, may be NULL).
    pub drop: eb_drop_fn,
}

/// Outcome of one publish, filled by the eb_publish family (caller-owned, no pointers inside).
#[repr(C)]
pub struct eb_publish_result {
    /// True when Redis accepted the event.
    pub success: bool,
    /// EB_OK or the failure's code (the same value the function returned).
    pub status: eb_status,
    /// The event's id (NUL-terminated; set on failure too when the event had been built).
    pub event_id: [c_char; EB_ID_BUFFER_SIZE],
    /// The event's `metadata.timestamp` (ISO-8601, NUL-terminated).
    pub published_at: [c_char; EB_TIME_BUFFER_SIZE],
    /// Redis's PUBLISH reply: how many clients received the event (0 on failure).
    pub delivered_to: u64,
}

// ---------------------------------------------------------------------------------------------
// Errors and strings

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
            _ => c"unknown status",
        };
        Ok(s.as_ptr())
    })
}

/// The message of the last failed call on the calling thread ("" if none yet). Successful calls
/// leave it unchanged. Borrowed: valid until the next failing call on this thread; never NULL.
#[no_mangle]
pub extern "C" fn eb_last_error() -> *const c_char {
    guard(|| Ok(support::last_error_ptr()))
}

/// Frees a string returned by the library through a `char **` out-parameter. NULL is ignored.
/// Passing anything else (or the same string twice) is undefined behaviour.
///
/// # Safety
/// `s` is NULL or a string this library returned and that was not freed yet.
#[no_mangle]
pub unsafe extern "C" fn eb_string_free(s: *mut c_char) {
    guard(|| {
        if !s.is_null() {
            // SAFETY: per contract, `s` came from CString::into_raw in this library.
            drop(unsafe { std::ffi::CString::from_raw(s) });
        }
        Ok(())
    })
}

/// The library version (static string, never freed).
#[no_mangle]
pub extern "C" fn eb_version() -> *const c_char {
    guard(|| Ok(concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()))
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

/// Creates a client from a JSON config (the TS `EventBusConfig`: `{"serviceName": "svc",
/// "redis": {"host": "127.0.0.1", "port": 6379}}` or `"redis": {"url": "redis://..."}`).
/// Rooms need the Socket.IO hub: `"client": {"url": "http://hub:3000", "authToken": "...",
/// "reconnection": true, "reconnectionDelay": 1000, "reconnectionDelayMax": 5000,
/// "reconnectionAttempts": <unlimited>, "timeout": 20000}` (only `url` is required, http(s):// or
/// ws(s)://; delays and `timeout` in ms, `timeout` bounds the connect and each
/// acknowledgement) and optionally `"websocket": {"transports": ["websocket", "polling"]}`
/// (the default: WebSocket, long-polling as fallback).
/// Does not connect. On success `*client_out` owns a new client, to be released with
/// eb_client_free (or eb_shutdown); on failure it is set to NULL. The first client installs the
/// default stderr logger unless eb_set_log_callback was called.
///
/// # Safety
/// `config_json` is NULL or a NUL-terminated string; `client_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eb_client_new(
    config_json: *const c_char,
    client_out: *mut *mut eb_client,
) -> eb_status {
    guard(|| {
        if client_out.is_null() {
            return Err(invalid("client_out is NULL"));
        }
        // SAFETY: checked non-NULL; writable per contract.
        unsafe { *client_out = std::ptr::null_mut() };
        // SAFETY: per contract.
        let cfg = unsafe { arg_str(config_json, "config_json") }?;
        check_json(cfg, "config_json")?;
        let client = EventBusClient::from_json(cfg)?;
        support::ensure_default_log();
        // SAFETY: as above.
        unsafe { *client_out = register(client) };
        Ok(eb_status::EB_OK)
    })
}

/// Disconnects (if connected) and frees a client. NULL is a no-op (EB_OK). A pointer that is not
/// a live client (already freed: a double free) is refused with EB_ERR_INVALID_ARGUMENT and
/// nothing happens. Every subscription's drop(ctx) and every state callback's drop(ctx) have
/// run when this returns (unless a handler outlives `disconnectTimeout`). Must not be called
/// from inside a callback (EB_ERR_INVALID_ARGUMENT). Blocks the calling thread.
#[no_mangle]
pub extern "C" fn eb_client_free(client: *mut eb_client) -> eb_status {
    guard(|| {
        if client.is_null() {
            return Ok(eb_status::EB_OK);
        }
        refuse_in_callback("eb_client_free")?;
        let c = unregister(client)
            .ok_or_else(|| invalid("client is not a live eb_client (double free?)"))?;
        close_client(c)?;
        Ok(eb_status::EB_OK)
    })
}

/// Opens the publisher and subscriber connections and, with the `client` config, the Socket.IO
/// hub connection (auth `{token, serviceName}`). Fails with EB_ERR_CONNECTION naming the
/// address when Redis is unreachable, and with EB_ERR_CONNECTION `Socket.IO connection rejected
/// by the hub: invalid token` when the hub refuses the token (nothing stays open). An
/// unreachable hub does not fail it (unless `client.reconnection` is false): the hub is retried
/// in the background, eb_health_check reports `degraded` and room calls fail with
/// `Socket.IO not connected` meanwhile. Connecting twice is a no-op. Blocks the calling thread.
#[no_mangle]
pub extern "C" fn eb_connect(client: *mut eb_client) -> eb_status {
    guard(|| {
        let c = lookup(client)?;
        event_bus::runtime::block_on(async move { c.connect().await })?;
        Ok(eb_status::EB_OK)
    })
}

/// Stops receiving, lets queued and running handlers finish (up to `disconnectTimeout`), drops
/// every subscription (their drop(ctx) runs) and closes both Redis connections and the hub's.
/// Idempotent; the client may be connected again. Must not be called from inside a callback.
/// Blocks the calling thread.
#[no_mangle]
pub extern "C" fn eb_disconnect(client: *mut eb_client) -> eb_status {
    guard(|| {
        refuse_in_callback("eb_disconnect")?;
        let c = lookup(client)?;
        event_bus::runtime::block_on(async move { c.disconnect().await })?;
        Ok(eb_status::EB_OK)
    })
}

/// Sets `*connected_out` to whether the client is between eb_connect and eb_disconnect.
///
/// # Safety
/// `connected_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eb_is_connected(
    client: *const eb_client,
    connected_out: *mut bool,
) -> eb_status {
    guard(|| {
        if connected_out.is_null() {
            return Err(invalid("connected_out is NULL"));
        }
        let c = lookup(client)?;
        // SAFETY: checked non-NULL; writable per contract.
        unsafe { *connected_out = c.is_connected() };
        Ok(eb_status::EB_OK)
    })
}

/// Frees every client still alive (as eb_client_free) and stops the library's threads, so that
/// a program can exit with nothing left behind (valgrind-clean). Also releases the log callback
/// (its drop(ctx) runs) and restores the default stderr logger for later clients. Handles
/// created before are no longer valid. The library may be used again afterwards (it restarts
/// lazily). Must not be called from inside a callback. Blocks up to a few seconds.
#[no_mangle]
pub extern "C" fn eb_shutdown() -> eb_status {
    guard(|| {
        refuse_in_callback("eb_shutdown")?;
        let mut first_err: Option<Error> = None;
        for c in unregister_all() {
            if let Err(e) = close_client(c) {
                first_err.get_or_insert(e);
            }
        }
        support::reset_log();
        event_bus::runtime::shutdown(Duration::from_secs(5));
        match first_err {
            Some(e) => Err(e),
            None => Ok(eb_status::EB_OK),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Publishing

fn write_c_buf(dst: &mut [c_char], s: &str) {
    let n = s.len().min(dst.len() - 1);
    for (d, b) in dst.iter_mut().zip(s.as_bytes()[..n].iter()) {
        *d = *b as c_char;
    }
    dst[n] = 0;
}

/// Fill `out` from an outcome and turn it into the function's result.
///
/// # Safety
/// `out` is NULL or writable.
unsafe fn finish_publish(
    out: *mut eb_publish_result,
    outcome: PublishOutcome,
) -> Result<eb_status, Error> {
    let mut r = eb_publish_result {
        success: false,
        status: eb_status::EB_OK,
        event_id: [0; EB_ID_BUFFER_SIZE],
        published_at: [0; EB_TIME_BUFFER_SIZE],
        delivered_to: 0,
    };
    let res = match outcome {
        Ok(ok) => {
            r.success = true;
            write_c_buf(&mut r.event_id, &ok.event_id);
            write_c_buf(&mut r.published_at, &ok.published_at);
            r.delivered_to = ok.delivered_to;
            Ok(eb_status::EB_OK)
        }
        Err(f) => {
            r.status = status_of(f.error.kind());
            write_c_buf(&mut r.event_id, &f.event_id);
            write_c_buf(&mut r.published_at, &f.published_at);
            Err(f.error)
        }
    };
    if !out.is_null() {
        // SAFETY: non-NULL and writable per contract.
        unsafe { *out = r };
    }
    res
}

/// Shared body of the publish family.
///
/// # Safety
/// Pointers as documented on eb_publish.
unsafe fn publish_with(
    client: *mut eb_client,
    event_type: *const c_char,
    data_json: *const c_char,
    options_json: *const c_char,
    result_out: *mut eb_publish_result,
    adjust: impl FnOnce(&mut PublishOptions) -> Result<(), Error>,
) -> eb_status {
    guard(|| {
        if !result_out.is_null() {
            // Mark the result as failed until we know better, so early argument errors leave
            // it in a defined state.
            // SAFETY: writable per contract.
            unsafe {
                *result_out = eb_publish_result {
                    success: false,
                    status: eb_status::EB_ERR_INVALID_ARGUMENT,
                    event_id: [0; EB_ID_BUFFER_SIZE],
                    published_at: [0; EB_TIME_BUFFER_SIZE],
                    delivered_to: 0,
                }
            };
        }
        let c = lookup(client)?;
        // SAFETY: per contract.
        let ty = unsafe { arg_str(event_type, "event_type") }?.to_string();
        // SAFETY: per contract.
        let data = unsafe { arg_str(data_json, "data_json") }?;
        let data = RawValue::from_string(data.trim().to_string())
            .map_err(|e| invalid(format!("data_json is not valid JSON: {e}")))?;
        // SAFETY: per contract.
        let opts = unsafe { arg_opt_str(options_json, "options_json") }?;
        let mut opts = match opts {
            Some(o) => {
                check_json(o, "options_json")?;
                PublishOptions::from_json(o)?
            }
            None => PublishOptions::default(),
        };
        adjust(&mut opts)?;
        let outcome =
            event_bus::runtime::block_on(async move { c.publish(&ty, &data, &opts).await });
        // SAFETY: per contract.
        unsafe { finish_publish(result_out, outcome) }
    })
}

/// Publishes an event of `event_type` with `data_json` (any JSON value but null) and optional
/// `options_json` (NULL or `{"traceId","correlationId","userId","room","broadcast","metadata",
/// "priority","ttl","persistent"}`). Channel: room, else user, else `broadcast`, else the type.
/// Waits for Redis's reply. `result_out` (may be NULL) is caller-owned and filled on success
/// and on failure. Strings are only read during the call. Safe to call from inside a handler.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `result_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eb_publish(
    client: *mut eb_client,
    event_type: *const c_char,
    data_json: *const c_char,
    options_json: *const c_char,
    result_out: *mut eb_publish_result,
) -> eb_status {
    // SAFETY: forwarded contract.
    unsafe {
        publish_with(
            client,
            event_type,
            data_json,
            options_json,
            result_out,
            |_| Ok(()),
        )
    }
}

/// As eb_publish, to channel `room:{room}`; a Socket.IO hub forwards it to the clients that
/// joined the room (eb_join_room). Does not need the hub itself (the publish goes to Redis).
///
/// # Safety
/// As eb_publish; `room` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn eb_publish_to_room(
    client: *mut eb_client,
    room: *const c_char,
    event_type: *const c_char,
    data_json: *const c_char,
    options_json: *const c_char,
    result_out: *mut eb_publish_result,
) -> eb_status {
    let adjust = |o: &mut PublishOptions| {
        // SAFETY: per contract.
        o.room = Some(unsafe { arg_str(room, "room") }?.to_string());
        Ok(())
    };
    // SAFETY: forwarded contract.
    unsafe {
        publish_with(
            client,
            event_type,
            data_json,
            options_json,
            result_out,
            adjust,
        )
    }
}

/// As eb_publish, to channel `user:{user_id}` (unless the options name a room).
///
/// # Safety
/// As eb_publish; `user_id` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn eb_publish_to_user(
    client: *mut eb_client,
    user_id: *const c_char,
    event_type: *const c_char,
    data_json: *const c_char,
    options_json: *const c_char,
    result_out: *mut eb_publish_result,
) -> eb_status {
    let adjust = |o: &mut PublishOptions| {
        // SAFETY: per contract.
        o.user_id = Some(unsafe { arg_str(user_id, "user_id") }?.to_string());
        Ok(())
    };
    // SAFETY: forwarded contract.
    unsafe {
        publish_with(
            client,
            event_type,
            data_json,
            options_json,
            result_out,
            adjust,
        )
    }
}

/// As eb_publish, to channel `broadcast` (unless the options name a room or user).
///
/// # Safety
/// As eb_publish.
#[no_mangle]
pub unsafe extern "C" fn eb_broadcast(
    client: *mut eb_client,
    event_type: *const c_char,
    data_json: *const c_char,
    options_json: *const c_char,
    result_out: *mut eb_publish_result,
) -> eb_status {
    // SAFETY: forwarded contract.
    unsafe {
        publish_with(
            client,
            event_type,
            data_json,
            options_json,
            result_out,
            |o| {
                o.broadcast = Some(true);
                Ok(())
            },
        )
    }
}

/// Publishes several events, pipelined and in order. `items_json` is a JSON array of
/// `{"type": "...", "data": <json>, "options": {...}?}`. On return `*results_json_out` owns
/// (free with eb_string_free) a JSON array with one `{"success","eventId","publishedAt",
/// "deliveredTo","error"?:{"code","message"}}` per item, in order. Returns EB_OK when every
/// item succeeded, else the code of the first failed item (results are filled either way);
/// on argument errors `*results_json_out` is NULL.
///
/// # Safety
/// `items_json` is NULL or NUL-terminated; `results_json_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eb_publish_batch(
    client: *mut eb_client,
    items_json: *const c_char,
    results_json_out: *mut *mut c_char,
) -> eb_status {
    guard(|| {
        // SAFETY: per contract.
        unsafe { out_str(results_json_out, "results_json_out") }?;
        let c = lookup(client)?;
        // SAFETY: per contract.
        let text = unsafe { arg_str(items_json, "items_json") }?;
        // Borrowed raw slices: the data and options text is used as given, not parsed into a
        // tree and printed again (that round trip was most of the batch's cost).
        #[derive(serde::Deserialize)]
        struct Item<'a> {
            #[serde(rename = "type", borrow)]
            ty: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            data: Option<&'a RawValue>,
            #[serde(borrow)]
            options: Option<&'a RawValue>,
        }
        let items: Vec<Item<'_>> = serde_json::from_str(text)
            .map_err(|e| invalid(format!("items_json is not a JSON array of items: {e}")))?;
        let mut batch = Vec::with_capacity(items.len());
        for (i, it) in items.into_iter().enumerate() {
            let ty = it
                .ty
                .ok_or_else(|| invalid(format!("items_json[{i}].type must be a string")))?;
            let data = match it.data {
                Some(d) => d.to_owned(),
                None => RawValue::from_string("null".to_string())
                    .map_err(|e| invalid(format!("items_json[{i}].data: {e}")))?,
            };
            let options = match it.options {
                None => PublishOptions::default(),
                Some(o) if o.get() == "null" => PublishOptions::default(),
                Some(o) => PublishOptions::from_json(o.get())?,
            };
            batch.push(BatchItem {
                event_type: ty.into_owned(),
                data,
                options,
            });
        }
        let outcomes = event_bus::runtime::block_on(async move { c.publish_batch(&batch).await });
        // Written straight to JSON text (no tree of values per item).
        let arr: Vec<OutcomeJson<'_>> = outcomes
            .iter()
            .map(|o| OutcomeJson::of(o, OutcomeShape::C))
            .collect();
        let text = serde_json::to_string(&arr)
            .map_err(|e| Error::new(ErrorKind::Internal, format!("results: {e}")))?;
        // SAFETY: checked by out_str.
        unsafe { give_string(results_json_out, &text) };
        let first = outcomes.into_iter().find_map(|o| o.err()).map(|f| f.error);
        match first {
            Some(e) => Err(e),
            None => Ok(eb_status::EB_OK),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Subscribing

/// Subscribes `handler` to a Redis glob `pattern` (`photo.*`; a pattern without `*`, `?`, `[`
/// is an exact channel). `options_json` may be NULL or `{"timeout","retryOnError","maxRetries",
/// "retryDelay","maxRetryDelay","filter","concurrency","maxPending"}`.
///
/// Ownership: `ctx` passes to the library whatever the result: `handler.drop(ctx)` (if not
/// NULL) is called exactly once, after the last `handler.call` has returned: soon after
/// eb_unsubscribe, during eb_disconnect / eb_client_free / eb_shutdown, or before this function
/// returns an error.
///
/// Threads: `handler.call` runs on the library's blocking thread pool (threads named
/// `event-bus`), never on the caller's thread and never on an async worker, so it may block.
/// Per subscription, calls come in order and never overlap (also across a timeout: a retry waits
/// for the timed-out call to return) unless `concurrency` > 1, in which case up to that many run
/// at once on different threads. Different subscriptions run in parallel. Inside a handler it is
/// safe to call eb_publish*, eb_subscribe, eb_unsubscribe (also of its own subscription),
/// eb_get_stats and eb_health_check; eb_disconnect, eb_client_free and eb_shutdown are refused.
/// `drop` may run on any library thread or on the thread calling eb_unsubscribe/eb_disconnect.
///
/// With the Socket.IO hub (`client` config) the subscription is also announced to the hub
/// (and again after each reconnect); events the hub forwards (for example to the rooms this
/// client joined) go to the subscriptions whose pattern matches the event's type, with the
/// event's `channel` set to its type. An event received both from Redis and from the hub runs
/// each subscription once.
///
/// The first call may start on a library thread before this function has returned.
///
/// On success `*subscription_id_out` (if not NULL) owns the subscription id (free with
/// eb_string_free).
///
/// # Safety
/// Strings are NULL or NUL-terminated; `subscription_id_out` is NULL or writable; `ctx` must be
/// usable from other threads.
#[no_mangle]
pub unsafe extern "C" fn eb_subscribe(
    client: *mut eb_client,
    pattern: *const c_char,
    options_json: *const c_char,
    handler: eb_handler,
    ctx: *mut c_void,
    subscription_id_out: *mut *mut c_char,
) -> eb_status {
    // Owned from here on: dropped (calling handler.drop) on every early return.
    let owned = Ctx::new(ctx, handler.drop);
    guard(move || {
        if !subscription_id_out.is_null() {
            // SAFETY: writable per contract.
            unsafe { *subscription_id_out = std::ptr::null_mut() };
        }
        let call = handler
            .call
            .ok_or_else(|| invalid("handler.call is NULL"))?;
        let c = lookup(client)?;
        // SAFETY: per contract.
        let pattern = unsafe { arg_str(pattern, "pattern") }?.to_string();
        // SAFETY: per contract.
        let options = match unsafe { arg_opt_str(options_json, "options_json") }? {
            Some(o) => {
                check_json(o, "options_json")?;
                SubscriptionOptions::from_json(o)?
            }
            None => SubscriptionOptions::default(),
        };
        let serial = options.concurrency.unwrap_or(1) <= 1;
        let h = std::sync::Arc::new(CHandler::new(call, owned, serial));
        let info =
            event_bus::runtime::block_on(async move { c.subscribe(&pattern, h, options).await })?;
        if !subscription_id_out.is_null() {
            // SAFETY: writable per contract.
            unsafe { give_string(subscription_id_out, &info.id) };
        }
        Ok(eb_status::EB_OK)
    })
}

/// Removes a subscription: no call starts after this returns (queued events are discarded; a
/// call already running finishes, then drop(ctx) runs on a library thread). The Redis
/// subscription is dropped when no other subscription uses the pattern. EB_ERR_NOT_FOUND when
/// there is no such subscription. Safe inside a handler, also for its own subscription.
///
/// # Safety
/// `subscription_id` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn eb_unsubscribe(
    client: *mut eb_client,
    subscription_id: *const c_char,
) -> eb_status {
    guard(|| {
        let c = lookup(client)?;
        // SAFETY: per contract.
        let id = unsafe { arg_str(subscription_id, "subscription_id") }?.to_string();
        let found = event_bus::runtime::block_on(async move { c.unsubscribe(&id).await })?;
        if found {
            Ok(eb_status::EB_OK)
        } else {
            set_last_error("no such subscription");
            Ok(eb_status::EB_ERR_NOT_FOUND)
        }
    })
}

/// Sets `*matches_out` to whether `channel` matches the Redis glob `pattern` (Redis semantics).
///
/// # Safety
/// Strings are NULL or NUL-terminated; `matches_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eb_matches_pattern(
    pattern: *const c_char,
    channel: *const c_char,
    matches_out: *mut bool,
) -> eb_status {
    guard(|| {
        if matches_out.is_null() {
            return Err(invalid("matches_out is NULL"));
        }
        // SAFETY: per contract.
        let p = unsafe { arg_str(pattern, "pattern") }?;
        // SAFETY: per contract.
        let ch = unsafe { arg_str(channel, "channel") }?;
        // SAFETY: checked non-NULL.
        unsafe { *matches_out = event_bus::matches_pattern(p, ch) };
        Ok(eb_status::EB_OK)
    })
}

// ---------------------------------------------------------------------------------------------
// Rooms (over the Socket.IO hub named by the config's `client`)

/// Joins the Socket.IO room `room` on the hub and returns once the hub acknowledged it
/// (`{success:true}`). The client then receives the events published to the room
/// (eb_publish_to_room, from any client) through the hub: they go to the subscriptions whose
/// pattern matches the event's type, with `channel` set to the type. A subscription that gets
/// the same event from Redis too (a pattern matching both `room:<room>` and the type, such as
/// `*`) runs once for it. Joined rooms are rejoined automatically after the hub connection
/// comes back.
///
/// Needs the `client` config (`{"url","authToken",...}`, see eb_client_new) and eb_connect.
/// Errors: EB_ERR_INVALID_ARGUMENT (NULL, invalid UTF-8, not a live client);
/// EB_ERR_VALIDATION for an empty room (`Room name cannot be empty`); EB_ERR_CONNECTION with
/// `Socket.IO not connected` without `client` config, before eb_connect, after eb_disconnect or
/// while the hub is unreachable (the library keeps reconnecting in the background);
/// EB_ERR_PROTOCOL when the hub refuses (its reason in eb_last_error); EB_ERR_TIMEOUT when the
/// hub does not answer within `client.timeout`. Blocks the calling thread; safe inside a
/// handler.
///
/// # Safety
/// `room` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn eb_join_room(client: *mut eb_client, room: *const c_char) -> eb_status {
    guard(|| {
        let c = lookup(client)?;
        // SAFETY: per contract.
        let room = unsafe { arg_str(room, "room") }?.to_string();
        event_bus::runtime::block_on(async move { c.join_room(&room).await })?;
        Ok(eb_status::EB_OK)
    })
}

/// Leaves the Socket.IO room `room` (acknowledged by the hub; it is no longer rejoined after a
/// reconnect). Errors as eb_join_room. Blocks the calling thread; safe inside a handler.
///
/// # Safety
/// `room` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn eb_leave_room(client: *mut eb_client, room: *const c_char) -> eb_status {
    guard(|| {
        let c = lookup(client)?;
        // SAFETY: per contract.
        let room = unsafe { arg_str(room, "room") }?.to_string();
        event_bus::runtime::block_on(async move { c.leave_room(&room).await })?;
        Ok(eb_status::EB_OK)
    })
}

/// Asks the hub who is in `room`. On success `*members_json_out` owns (free with
/// eb_string_free) a JSON array of strings: the hub's `members` answer (a hub typically lists
/// the `serviceName` of each member connection, e.g. `["billing","notifier"]`); `[]` for an
/// empty room. On failure `*members_json_out` is NULL. Errors as eb_join_room
/// (EB_ERR_PROTOCOL also when the answer has no members list). Blocks the calling thread; safe
/// inside a handler.
///
/// # Safety
/// `room` is NULL or NUL-terminated; `members_json_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eb_get_room_members(
    client: *mut eb_client,
    room: *const c_char,
    members_json_out: *mut *mut c_char,
) -> eb_status {
    guard(|| {
        // SAFETY: per contract.
        unsafe { out_str(members_json_out, "members_json_out") }?;
        let c = lookup(client)?;
        // SAFETY: per contract.
        let room = unsafe { arg_str(room, "room") }?.to_string();
        let members = event_bus::runtime::block_on(async move { c.get_room_members(&room).await })?;
        // SAFETY: checked by out_str.
        unsafe { give_string(members_json_out, &json!(members).to_string()) };
        Ok(eb_status::EB_OK)
    })
}

// ---------------------------------------------------------------------------------------------
// Monitoring

/// PINGs Redis and reports `{"status":"healthy|degraded|unhealthy","timestamp","checks":{"redis":
/// {...}},"uptime","version"}` in `*json_out` (owned: free with eb_string_free). With the
/// `client` config `checks` also has `"socketio": {"status": "pass"|"fail", "message",
/// "duration", "details": {"url", "transport": "websocket"|"polling"|null, "rooms": [...],
/// "reconnects"}}`; a hub that is down makes the client `degraded`. An unhealthy client is
/// still EB_OK: read `status`.
///
/// # Safety
/// `json_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eb_health_check(
    client: *const eb_client,
    json_out: *mut *mut c_char,
) -> eb_status {
    guard(|| {
        // SAFETY: per contract.
        unsafe { out_str(json_out, "json_out") }?;
        let c = lookup(client)?;
        let report = event_bus::runtime::block_on(async move { c.health_check().await });
        let text = serde_json::to_string(&report)
            .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
        // SAFETY: checked by out_str.
        unsafe { give_string(json_out, &text) };
        Ok(eb_status::EB_OK)
    })
}

/// The client's statistics as JSON in `*json_out` (owned: free with eb_string_free): the TS
/// `EventBusStats` fields plus `eventsDropped`, `invalidMessages`, `reconnects`, latency
/// percentiles. `activeRooms` counts the rooms joined through eb_join_room; `activeConnections`
/// counts the hub connection too (3 with Redis and the hub up).
///
/// # Safety
/// `json_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eb_get_stats(
    client: *const eb_client,
    json_out: *mut *mut c_char,
) -> eb_status {
    guard(|| {
        // SAFETY: per contract.
        unsafe { out_str(json_out, "json_out") }?;
        let c = lookup(client)?;
        let text = serde_json::to_string(&c.stats())
            .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
        // SAFETY: checked by out_str.
        unsafe { give_string(json_out, &text) };
        Ok(eb_status::EB_OK)
    })
}

/// Registers a state-change callback (`connected`, `disconnected`, `reconnecting`, `gap`,
/// `error`). The JSON's `connection` is `publisher`, `subscriber` or `socketio` (the hub:
/// `connected {reconnect}`, `disconnected {reason}`, `reconnecting {attempt, delay}`,
/// `error {message}`). `*listener_id_out` (if not NULL) receives an id for eb_off_state.
///
/// Ownership: `ctx` passes to the library whatever the result; `drop(ctx)` (if not NULL) runs
/// exactly once: at eb_off_state, eb_client_free or eb_shutdown, or before an error return.
///
/// Threads: the callback runs on a library thread (an async worker of the connection
/// supervisor), one change at a time per connection and in order; changes of the publisher,
/// subscriber and hub connections may be reported concurrently. It must return quickly; it may
/// call eb_publish and friends but not eb_disconnect / eb_client_free / eb_shutdown (refused).
///
/// # Safety
/// `listener_id_out` is NULL or writable; `ctx` must be usable from other threads.
#[no_mangle]
pub unsafe extern "C" fn eb_on_state(
    client: *mut eb_client,
    callback: eb_state_fn,
    ctx: *mut c_void,
    drop: eb_drop_fn,
    listener_id_out: *mut u64,
) -> eb_status {
    let owned = Ctx::new(ctx, drop);
    guard(move || {
        let f = callback.ok_or_else(|| invalid("callback is NULL"))?;
        let c = lookup(client)?;
        let id = c.on_state(support::state_listener(f, owned));
        if !listener_id_out.is_null() {
            // SAFETY: writable per contract.
            unsafe { *listener_id_out = id };
        }
        Ok(eb_status::EB_OK)
    })
}

/// Removes a state callback registered with eb_on_state (its drop(ctx) runs). EB_ERR_NOT_FOUND
/// when there is no such listener.
#[no_mangle]
pub extern "C" fn eb_off_state(client: *mut eb_client, listener_id: u64) -> eb_status {
    guard(|| {
        let c = lookup(client)?;
        if c.off_state(listener_id) {
            Ok(eb_status::EB_OK)
        } else {
            set_last_error("no such state listener");
            Ok(eb_status::EB_ERR_NOT_FOUND)
        }
    })
}

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
        support::set_log(callback, owned);
        Ok(eb_status::EB_OK)
    })
}
