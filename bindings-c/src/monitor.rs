//! Watching a client: `eb_health_check`, `eb_get_stats`, and state-change callbacks
//! (`eb_on_state`, `eb_off_state`).

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use event_bus::{Error, ErrorKind, EventBusClient};

use crate::callback::{eb_drop_fn, CallbackScope, Ctx};
use crate::client::{eb_client, lookup, lookup_with_out};
use crate::status::{eb_status, guard, invalid, set_last_error};
use crate::strings::{give_string, to_c};

/// A state-change callback: `state` is `connected`, `disconnected`, `reconnecting`, `gap` or
/// `error`; `event_json` is the whole change as JSON (`{"type":...,"connection":...}`). Both are
/// borrowed for the duration of the call.
pub type eb_state_fn =
    Option<unsafe extern "C" fn(state: *const c_char, event_json: *const c_char, ctx: *mut c_void)>;

/// The non-NULL function pointer type behind `eb_state_fn`.
pub(crate) type StateFn = unsafe extern "C" fn(*const c_char, *const c_char, *mut c_void);

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

// ---------------------------------------------------------------------------------------------
// The exported functions

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
    // SAFETY: forwarded contract.
    unsafe {
        give_report(client, json_out, |c| {
            event_bus::runtime::block_on(async move { c.health_check().await })
        })
    }
}

/// The client's statistics as JSON in `*json_out` (owned: free with eb_string_free): the TS
/// `EventBusStats` fields plus `eventsDropped`, `invalidMessages`, `reconnects`, latency
/// percentiles, `topology` (mode, nodes, masters, the node each connection uses), `failovers`
/// and `redirects`. `activeRooms` counts the rooms joined through eb_join_room;
/// `activeConnections` counts the hub connection too (3 with Redis and the hub up).
///
/// # Safety
/// `json_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eb_get_stats(
    client: *const eb_client,
    json_out: *mut *mut c_char,
) -> eb_status {
    // SAFETY: forwarded contract.
    unsafe { give_report(client, json_out, |c| c.stats()) }
}

/// The client's metrics as Prometheus text exposition (version 0.0.4) in `*text_out` (owned:
/// free with eb_string_free): counters, gauges and latency histograms (publish round trip;
/// per subscription publish-to-handler latency and handler duration, in seconds), labelled
/// `service`, `transport` and, per subscription, `subscription` and `pattern`. No I/O; works
/// before connect and after disconnect. Serve the text as is on an HTTP `/metrics` endpoint.
///
/// # Safety
/// `text_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eb_metrics(
    client: *const eb_client,
    text_out: *mut *mut c_char,
) -> eb_status {
    guard(|| {
        // SAFETY: per contract.
        let c = unsafe { lookup_with_out(client, text_out, "text_out") }?;
        let text = c.metrics();
        // SAFETY: checked by lookup_with_out.
        unsafe { give_string(text_out, &text) };
        Ok(eb_status::EB_OK)
    })
}

/// Shared body of eb_health_check and eb_get_stats: the client's `report`, as JSON text in
/// `*json_out`.
///
/// # Safety
/// `json_out` is NULL or writable.
unsafe fn give_report<T: serde::Serialize>(
    client: *const eb_client,
    json_out: *mut *mut c_char,
    report: impl FnOnce(EventBusClient) -> T,
) -> eb_status {
    guard(|| {
        // SAFETY: per contract.
        let c = unsafe { lookup_with_out(client, json_out, "json_out") }?;
        let text = serde_json::to_string(&report(c))
            .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
        // SAFETY: checked by lookup_with_out.
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
        let id = c.on_state(state_listener(f, owned));
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
