//! Subscribing: the `eb_event` a handler receives, `eb_handler`, the adapter that runs a C
//! handler for the core (on the blocking pool, in order unless `concurrency` > 1), and
//! `eb_subscribe`, `eb_unsubscribe`, `eb_matches_pattern`.

use std::ffi::{c_char, c_int, c_void};
use std::sync::{Arc, Mutex};

use event_bus::{
    Delivery, Handler, HandlerError, HandlerFuture, SubscriptionOptions, SubscriptionTarget,
};

use crate::callback::{eb_drop_fn, CallbackScope, Ctx};
use crate::client::{eb_client, lookup};
use crate::status::{eb_status, guard, invalid, set_last_error};
use crate::strings::{arg_opt_str, arg_str, check_json, give_string, to_c};

/// An event handed to a handler. Every pointer is borrowed: valid only until the handler
/// returns (copy what you keep). Strings are NUL-terminated UTF-8.
///
/// The last three fields (durable delivery; at the end, so programs built against a header
/// without them keep their layout) say how a durable subscription got the event; NULL and 0
/// for other subscriptions.
///
/// cbindgen:field-names=[id, type, data_json, metadata_json, channel, pattern, json, stream_id, group, attempt]
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
    /// The whole event as JSON: `{id,type,data,metadata,channel,pattern?,delivery?}`.
    pub json: *const c_char,
    /// Durable subscriptions: the entry's id in the type's stream (`<ms>-<seq>`), else NULL.
    pub stream_id: *const c_char,
    /// Durable subscriptions: the consumer group, else NULL.
    pub group: *const c_char,
    /// Durable subscriptions: deliveries of the entry to the group so far (1 on the first),
    /// else 0.
    pub attempt: u32,
}

/// A subscription handler: return 0 on success, non-zero on failure (the subscription's retry
/// policy then applies: `retryOnError`, `maxRetries`, `retryDelay`).
pub type eb_handler_fn =
    Option<unsafe extern "C" fn(event: *const eb_event, ctx: *mut c_void) -> c_int>;

/// A handler and the function that releases its context.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct eb_handler {
    /// Called for each event (required).
    pub call: eb_handler_fn,
    /// Called once with ctx after the last call (optional, may be NULL).
    pub drop: eb_drop_fn,
}

/// The non-NULL function pointer type behind `eb_handler_fn`.
pub(crate) type HandlerFn = unsafe extern "C" fn(*const eb_event, *mut c_void) -> c_int;

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
/// A call that returns after the core stopped waiting for it (its timeout) counts as a late
/// completion.
pub(crate) struct CHandler(Arc<CHandlerInner>, event_bus::LateCompletions);

impl CHandler {
    pub(crate) fn new(
        call: HandlerFn,
        ctx: Ctx,
        serial: bool,
        late: event_bus::LateCompletions,
    ) -> Self {
        CHandler(
            Arc::new(CHandlerInner {
                call,
                ctx,
                serial: serial.then(|| Mutex::new(())),
            }),
            late,
        )
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
        let durable = d.delivery();
        let stream_id = durable.map(|x| to_c(&x.stream_id));
        let group = durable.map(|x| to_c(&x.group));
        let ev = eb_event {
            id: id.as_ptr(),
            type_: ty.as_ptr(),
            data_json: data.as_ptr(),
            metadata_json: meta.as_ptr(),
            channel: channel.as_ptr(),
            pattern: pattern.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
            json: json.as_ptr(),
            stream_id: stream_id.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
            group: group.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
            attempt: durable.map_or(0, |x| x.attempt),
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
        let late = self.1.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        Box::pin(async move {
            let run = tokio::task::spawn_blocking(move || {
                let rc = inner.invoke(&event);
                if tx.send(rc).is_err() {
                    late.record(); // the core stopped waiting for this call
                }
            });
            match rx.await {
                Ok(0) => Ok(()),
                Ok(rc) => Err(HandlerError::new(format!("C handler returned {rc}"))),
                Err(_) => Err(HandlerError::new(match run.await {
                    Err(e) => format!("C handler did not run: {e}"),
                    Ok(()) => "C handler did not run".to_string(),
                })),
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The exported functions

/// Subscribes `handler` to a Redis glob `pattern` (`photo.*`; a pattern without `*`, `?`, `[`
/// is an exact channel). `options_json` may be NULL or `{"timeout","retryOnError","maxRetries",
/// "retryDelay","maxRetryDelay","filter","concurrency","maxPending","durable"}`.
///
/// Durable subscriptions (`"durable":{"group":...}` in the options) read the event type's
/// stream as a member of that consumer group: `pattern` is then one exact event type, or a JSON
/// array of them (`["photo.uploaded","photo.deleted"]`). Only text that parses as a JSON array
/// of strings is a list; any other text (such as the glob `[ab]*`) is a pattern.
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
        let target =
            SubscriptionTarget::from_json_or_pattern(unsafe { arg_str(pattern, "pattern") }?);
        // SAFETY: per contract.
        let options = match unsafe { arg_opt_str(options_json, "options_json") }? {
            Some(o) => {
                check_json(o, "options_json")?;
                SubscriptionOptions::from_json(o)?
            }
            None => SubscriptionOptions::default(),
        };
        let serial = options.concurrency.unwrap_or(1) <= 1;
        let h = Arc::new(CHandler::new(call, owned, serial, c.late_completions()));
        let info =
            event_bus::runtime::block_on(
                async move { c.subscribe_target(target, h, options).await },
            )?;
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
