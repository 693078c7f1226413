//! Rooms over the Socket.IO hub named by the config's `client`: join, leave, list members.

use std::ffi::c_char;

use serde_json::json;

use crate::client::{eb_client, lookup, lookup_with_out};
use crate::status::{eb_status, guard};
use crate::strings::{arg_str, give_string};

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
        let c = unsafe { lookup_with_out(client, members_json_out, "members_json_out") }?;
        // SAFETY: per contract.
        let room = unsafe { arg_str(room, "room") }?.to_string();
        let members = event_bus::runtime::block_on(async move { c.get_room_members(&room).await })?;
        // SAFETY: checked by lookup_with_out.
        unsafe { give_string(members_json_out, &json!(members).to_string()) };
        Ok(eb_status::EB_OK)
    })
}
