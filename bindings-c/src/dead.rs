//! Dead letters of durable subscriptions: `eb_dead_letters`, `eb_replay_dead_letters`,
//! `eb_purge_dead_letters`. The core does the work; these convert the arguments and results.

use std::ffi::c_char;

use crate::client::{eb_client, lookup, lookup_with_out};
use crate::status::{eb_status, guard, invalid};
use crate::strings::{arg_str, give_string};

/// `count` as the core takes it: 0 is "no limit".
fn limit(count: usize) -> Option<usize> {
    (count > 0).then_some(count)
}

/// Check a `uint64_t *` out-parameter and set it to 0.
///
/// # Safety
/// `out` is NULL or writable.
unsafe fn out_u64(out: *mut u64, what: &str) -> Result<(), event_bus::Error> {
    if out.is_null() {
        return Err(invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL and writable per contract.
    unsafe { *out = 0 };
    Ok(())
}

/// The dead letters of `event_type` for durable group `group` (events the group gave up on
/// after `maxDeliveries` failed deliveries), oldest first, at most `count` (0: the default,
/// 100), as a JSON array in `*json_out` (owned: free with eb_string_free): `[{"event":{...},
/// "error":{"message","code"?},"deliveries","failedAt" (ms),"streamId" (its id in the dead
/// stream),"originalId" (its id in the type's stream)}]`.
///
/// # Safety
/// Strings are NULL or NUL-terminated; `json_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eb_dead_letters(
    client: *const eb_client,
    event_type: *const c_char,
    group: *const c_char,
    count: usize,
    json_out: *mut *mut c_char,
) -> eb_status {
    guard(|| {
        // SAFETY: per contract.
        let c = unsafe { lookup_with_out(client, json_out, "json_out") }?;
        // SAFETY: per contract.
        let t = unsafe { arg_str(event_type, "event_type") }?.to_string();
        // SAFETY: per contract.
        let g = unsafe { arg_str(group, "group") }?.to_string();
        let json = event_bus::runtime::block_on(async move {
            c.dead_letters_json(&t, &g, limit(count)).await
        })?;
        // SAFETY: checked by lookup_with_out.
        unsafe { give_string(json_out, &json) };
        Ok(eb_status::EB_OK)
    })
}

/// Puts at most `count` (0: all) of group `group`'s dead letters of `event_type` back on the
/// type's stream (the group gets each again, as a new entry) and removes them from the dead
/// letters; `*n_out` (if not NULL) is how many.
///
/// # Safety
/// Strings are NULL or NUL-terminated; `n_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eb_replay_dead_letters(
    client: *const eb_client,
    event_type: *const c_char,
    group: *const c_char,
    count: usize,
    n_out: *mut u64,
) -> eb_status {
    guard(|| {
        if !n_out.is_null() {
            // SAFETY: per contract.
            unsafe { out_u64(n_out, "n_out") }?;
        }
        let c = lookup(client)?;
        // SAFETY: per contract.
        let t = unsafe { arg_str(event_type, "event_type") }?.to_string();
        // SAFETY: per contract.
        let g = unsafe { arg_str(group, "group") }?.to_string();
        let n = event_bus::runtime::block_on(async move {
            c.replay_dead_letters(&t, &g, limit(count)).await
        })?;
        if !n_out.is_null() {
            // SAFETY: checked non-NULL.
            unsafe { *n_out = n };
        }
        Ok(eb_status::EB_OK)
    })
}

/// Deletes group `group`'s dead letters of `event_type`; `*n_out` (if not NULL) is how many.
///
/// # Safety
/// Strings are NULL or NUL-terminated; `n_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eb_purge_dead_letters(
    client: *const eb_client,
    event_type: *const c_char,
    group: *const c_char,
    n_out: *mut u64,
) -> eb_status {
    guard(|| {
        if !n_out.is_null() {
            // SAFETY: per contract.
            unsafe { out_u64(n_out, "n_out") }?;
        }
        let c = lookup(client)?;
        // SAFETY: per contract.
        let t = unsafe { arg_str(event_type, "event_type") }?.to_string();
        // SAFETY: per contract.
        let g = unsafe { arg_str(group, "group") }?.to_string();
        let n = event_bus::runtime::block_on(async move { c.purge_dead_letters(&t, &g).await })?;
        if !n_out.is_null() {
            // SAFETY: checked non-NULL.
            unsafe { *n_out = n };
        }
        Ok(eb_status::EB_OK)
    })
}
