//! The client handle and its lifecycle: `eb_client` (an opaque key into the registry of live
//! clients, never dereferenced), creating, connecting, disconnecting and freeing clients, and
//! `eb_shutdown`.

use std::collections::BTreeMap;
use std::ffi::c_char;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use event_bus::{Error, EventBusClient};

use crate::callback::refuse_in_callback;
use crate::status::{eb_status, guard, invalid};
use crate::strings::{arg_str, check_json, out_str};

/// An event bus client (opaque). Created by eb_client_new, released by eb_client_free.
/// The pointer is a handle, not an address: never dereference it. Each eb_client_new returns a
/// value never returned before in this process, and every call checks it against the live
/// handles, so a freed one (a use after free, a double free) is always refused with
/// EB_ERR_INVALID_ARGUMENT ("a freed eb_client"), even after later clients were created.
pub struct eb_client {
    _private: [u8; 0],
}

// ---------------------------------------------------------------------------------------------
// Live client handles

/// Live handles, by value. The `eb_client *` is only ever used as a key: the library never
/// reads through it, so a freed or foreign pointer is refused instead of dereferenced.
static CLIENTS: Mutex<BTreeMap<usize, EventBusClient>> = Mutex::new(BTreeMap::new());

fn clients() -> std::sync::MutexGuard<'static, BTreeMap<usize, EventBusClient>> {
    CLIENTS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The high bits every handle has: on 64-bit targets a non-canonical address (a C program
/// that dereferences a handle faults at once instead of reading someone's memory), and never
/// a value malloc returns.
const HANDLE_TAG: usize = if usize::BITS >= 64 {
    0xEB00_0000_0000_0000_u64 as usize
} else {
    0x8000_0000
};
const HANDLE_TAG_MASK: usize = if usize::BITS >= 64 {
    0xFF00_0000_0000_0000_u64 as usize
} else {
    0x8000_0000
};

/// The serial number of the next handle (1, 2, ...). Handles are never reused: a handle is
/// the tag, the serial number and three zero bits (aligned like a pointer). 2^53 handles on
/// 64-bit targets, 2^28 on 32-bit ones, before the serial numbers would wrap.
static NEXT_HANDLE: AtomicUsize = AtomicUsize::new(1);

/// Register `client` and return its new handle.
pub(crate) fn register(client: EventBusClient) -> *mut eb_client {
    let serial = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
    let h = HANDLE_TAG | ((serial << 3) & !HANDLE_TAG_MASK);
    clients().insert(h, client);
    h as *mut eb_client
}

/// True when `h` has the shape of a handle this process returned (live or freed).
fn was_issued(h: usize) -> bool {
    h & HANDLE_TAG_MASK == HANDLE_TAG
        && h & 7 == 0
        && (h & !HANDLE_TAG_MASK) >> 3 != 0
        && (h & !HANDLE_TAG_MASK) >> 3 < NEXT_HANDLE.load(Ordering::Relaxed)
}

/// The error for a handle that is not live: `what` says what the caller was doing.
fn not_live(h: usize, freed: &str) -> Error {
    if was_issued(h) {
        invalid(format!(
            "client is a freed eb_client (a stale handle: {freed})"
        ))
    } else {
        invalid("client is not an eb_client (never returned by eb_client_new)")
    }
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
        .ok_or_else(|| not_live(p as usize, "used after eb_client_free"))
}

/// The start of every function that answers through a `char **`: check `out` (named `what` in
/// the error) and set it to NULL, then look up the client. In that order, so `*out` is NULL
/// after any argument error.
///
/// # Safety
/// `out` is NULL or a valid, writable `char **`.
pub(crate) unsafe fn lookup_with_out(
    p: *const eb_client,
    out: *mut *mut c_char,
    what: &str,
) -> Result<EventBusClient, Error> {
    // SAFETY: forwarded contract.
    unsafe { out_str(out, what) }?;
    lookup(p)
}

/// Remove a handle from the registry; `None` when it was not live.
pub(crate) fn unregister(p: *mut eb_client) -> Option<EventBusClient> {
    clients().remove(&(p as usize))
}

/// Every live handle (for `eb_shutdown`).
pub(crate) fn unregister_all() -> Vec<EventBusClient> {
    std::mem::take(&mut *clients()).into_values().collect()
}

/// Disconnect and forget a client (its subscriptions' `drop` callbacks run during this).
pub(crate) fn close_client(c: EventBusClient) -> Result<(), Error> {
    let c2 = c.clone();
    let r = event_bus::runtime::block_on(async move { c2.disconnect().await });
    c.clear_state_listeners();
    r
}

// ---------------------------------------------------------------------------------------------
// The exported functions

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
        crate::log::ensure_default_log();
        // SAFETY: as above.
        unsafe { *client_out = register(client) };
        Ok(eb_status::EB_OK)
    })
}

/// Disconnects (if connected) and frees a client. NULL is a no-op (EB_OK). A pointer that is not
/// a live client (already freed: a double free, even after other clients were created) is
/// refused with EB_ERR_INVALID_ARGUMENT and nothing happens. Every subscription's drop(ctx)
/// and every state callback's drop(ctx) have run when this returns (unless a handler outlives `disconnectTimeout`). Must not be called
/// from inside a callback (EB_ERR_INVALID_ARGUMENT). Blocks the calling thread.
#[no_mangle]
pub extern "C" fn eb_client_free(client: *mut eb_client) -> eb_status {
    guard(|| {
        if client.is_null() {
            return Ok(eb_status::EB_OK);
        }
        refuse_in_callback("eb_client_free")?;
        let c = unregister(client).ok_or_else(|| not_live(client as usize, "a double free"))?;
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
        crate::log::reset_log();
        event_bus::runtime::shutdown(Duration::from_secs(5));
        match first_err {
            Some(e) => Err(e),
            None => Ok(eb_status::EB_OK),
        }
    })
}
