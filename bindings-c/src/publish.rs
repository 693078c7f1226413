//! Publishing: `eb_publish` and its room, user and broadcast variants (one shared body), the
//! caller-owned `eb_publish_result`, and `eb_publish_batch`.

use std::ffi::c_char;

use event_bus::{
    BatchItem, Error, ErrorKind, OutcomeJson, OutcomeShape, PublishOptions, PublishOutcome,
};
use serde_json::value::RawValue;

use crate::client::{eb_client, lookup, lookup_with_out};
use crate::status::{eb_status, guard, invalid, status_of};
use crate::strings::{arg_opt_str, arg_str, check_json, give_string};

/// Size of `eb_publish_result.event_id` (a UUID plus NUL fits with room to spare).
pub const EB_ID_BUFFER_SIZE: usize = 40;
/// Size of `eb_publish_result.published_at` (an ISO-8601 time plus NUL).
pub const EB_TIME_BUFFER_SIZE: usize = 32;

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
// The exported functions

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

/// Where a function of the publish family sends: where the options say, or to the room, user
/// or broadcast channel the function is named for (set over the options' own value).
enum Route {
    AsOptions,
    /// `room` (NUL-terminated, read during the call).
    Room(*const c_char),
    /// `user_id` (NUL-terminated, read during the call).
    User(*const c_char),
    Broadcast,
}

/// Shared body of the publish family.
///
/// # Safety
/// Pointers as documented on eb_publish.
unsafe fn publish_with(
    client: *mut eb_client,
    (event_type, data_json, options_json): (*const c_char, *const c_char, *const c_char),
    result_out: *mut eb_publish_result,
    route: Route,
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
        // SAFETY: per contract.
        let opts = unsafe { arg_opt_str(options_json, "options_json") }?;
        // Data or options the core cannot read make a failed publish, counted and logged by
        // the core like any other, with its result filled in.
        let read = RawValue::from_string(data.trim().to_string())
            .map_err(|e| invalid(format!("data_json is not valid JSON: {e}")))
            .and_then(|data| {
                let opts = match opts {
                    Some(o) => {
                        check_json(o, "options_json")?;
                        PublishOptions::from_json(o)?
                    }
                    None => PublishOptions::default(),
                };
                Ok((data, opts))
            });
        let (data, mut opts) = match read {
            Ok(read) => read,
            // SAFETY: per contract.
            Err(e) => return unsafe { finish_publish(result_out, Err(c.refused_publish(e))) },
        };
        match route {
            Route::AsOptions => {}
            // SAFETY: per contract.
            Route::Room(room) => opts.room = Some(unsafe { arg_str(room, "room") }?.to_string()),
            Route::User(user_id) => {
                // SAFETY: per contract.
                opts.user_id = Some(unsafe { arg_str(user_id, "user_id") }?.to_string())
            }
            Route::Broadcast => opts.broadcast = Some(true),
        }
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
    let event = (event_type, data_json, options_json);
    // SAFETY: forwarded contract.
    unsafe { publish_with(client, event, result_out, Route::AsOptions) }
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
    let event = (event_type, data_json, options_json);
    // SAFETY: forwarded contract.
    unsafe { publish_with(client, event, result_out, Route::Room(room)) }
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
    let event = (event_type, data_json, options_json);
    // SAFETY: forwarded contract.
    unsafe { publish_with(client, event, result_out, Route::User(user_id)) }
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
    let event = (event_type, data_json, options_json);
    // SAFETY: forwarded contract.
    unsafe { publish_with(client, event, result_out, Route::Broadcast) }
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
        let c = unsafe { lookup_with_out(client, results_json_out, "results_json_out") }?;
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
        // SAFETY: checked by lookup_with_out.
        unsafe { give_string(results_json_out, &text) };
        let first = outcomes.into_iter().find_map(|o| o.err()).map(|f| f.error);
        match first {
            Some(e) => Err(e),
            None => Ok(eb_status::EB_OK),
        }
    })
}
