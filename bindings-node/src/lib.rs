//! # event-bus-node — the Node.js face of the event bus (napi-rs 3)
//!
//! This crate is the native half of the npm package `@shared-infra/event-bus`. It adapts the
//! core ([`event_bus::EventBusClient`]) to JavaScript and does nothing else: validation,
//! channel choice, the envelope, glob matching, timeouts and retries all live in the core.
//! The documented, TS-compatible surface is hand-written in `js/index.js` + `js/index.d.ts`;
//! it wraps [`NativeClient`] and the free functions below.
//!
//! Where the bridge decisions are:
//! - **Data crosses as JSON text.** JS calls `JSON.stringify` (V8's serializer is the fastest
//!   way to walk a JS object graph) and the core takes the text as raw JSON; received events
//!   cross back as one JSON array per batch that JS parses with one `JSON.parse`.
//! - **Handlers run on the JS thread, batched.** Each subscription's handler is a
//!   [`JsHandler`]: the core calls it from its workers, the event is queued in the client's
//!   [`Dispatcher`], and only the first event of an empty queue wakes JS (one threadsafe
//!   function call). The JS side then takes the whole queue with [`NativeClient::take_batch`]
//!   in one call and reports each handler's outcome back ([`NativeClient::complete_ok`],
//!   [`NativeClient::complete_err`]), so the core's timeout and retry apply to async handlers.
//!   An in-order batch (a group) reports through memory shared with JS instead
//!   ([`NativeClient::group_states`]): JS claims each event there before running it and
//!   marks each success, and the core gives up after a timeout only what JS has not claimed,
//!   so each event runs once (SPEC §4).
//! - **Process lifetime.** Both threadsafe functions are *weak* (they never keep Node alive);
//!   the JS wrapper holds a ref'd timer between `connect()` and `disconnect()` instead, so a
//!   connected client keeps the process alive (like ioredis) and a disconnected or never
//!   connected one does not.
//! - **Errors.** [`js_error`] is the one place that maps core error kinds: the message is
//!   prefixed with `[CODE] `, which the JS wrapper turns into an `Error` (or `ValidationError`)
//!   with `.code` set.
//! - **Runtime.** Everything that creates connections or tasks runs on the core's runtime
//!   (`event_bus::runtime::spawn`), never on napi's own tokio runtime.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use event_bus::{
    batch_outcomes, Delivery, EventBusClient, Handler, HandlerError, HandlerFuture, JsonItem,
    OutcomeJson, OutcomeReporter, OutcomeShape, SharedStates, StateEvent, SubscriptionOptions,
};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// `wake(count)`: tells JS that events are waiting (weak: never keeps the process alive).
type WakeFn = ThreadsafeFunction<u32, (), u32, Status, false, true>;
/// `onState(json)`: a connection state change (weak).
type StateFn = ThreadsafeFunction<String, (), String, Status, false, true>;

/// The one mapping from core errors to JS errors: `[CODE] message (causes)`.
fn js_error(e: &event_bus::Error) -> napi::Error {
    napi::Error::new(
        Status::GenericFailure,
        format!("[{}] {}", e.kind().code(), e.full_message()),
    )
}

fn arg_error(message: impl std::fmt::Display) -> napi::Error {
    napi::Error::new(
        Status::InvalidArg,
        format!(
            "[{}] {message}",
            event_bus::ErrorKind::InvalidArgument.code()
        ),
    )
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Run `fut` on the core's runtime and await it from napi's (trap: two tokio runtimes).
async fn on_core<F>(fut: F) -> Result<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    event_bus::runtime::spawn(fut).await.map_err(|e| {
        napi::Error::new(
            Status::GenericFailure,
            format!(
                "[{}] event-bus task failed: {e}",
                event_bus::ErrorKind::Internal.code()
            ),
        )
    })
}

type Outcome = std::result::Result<(), HandlerError>;

/// An event waiting for the JS thread.
struct Pending {
    slot: u32,
    /// 0: run on its own; otherwise the id of an in-order batch ([`Handler::run_batch`]):
    /// the events of one group are contiguous in the queue and JS runs them one after another.
    group: u32,
    json: String,
    /// Where an event run on its own reports its outcome (through a token); `None` in a group,
    /// whose outcomes go through the group's [`OutcomeReporter`].
    done: Option<oneshot::Sender<Outcome>>,
}

#[derive(Default)]
struct Queue {
    items: Vec<Pending>,
    /// A wake-up is on its way to JS (or JS is about to take the queue).
    scheduled: bool,
}

/// The per-client queue between the core's workers and the JS thread.
struct Dispatcher {
    queue: Mutex<Queue>,
    inflight: Mutex<HashMap<u32, oneshot::Sender<Outcome>>>,
    /// In-order batches handed to JS and not finished there yet, by group id.
    groups: Mutex<HashMap<u32, OutcomeReporter>>,
    next_token: AtomicU32,
    next_group: AtomicU32,
    /// This Node can share memory with JS (external array buffers; see [`states_array`]), so
    /// in-order events cross in batches. Without it each event crosses on its own.
    shares_memory: bool,
    wake: WakeFn,
}

impl Dispatcher {
    fn push(&self, p: Pending) {
        self.push_all(std::iter::once(p));
    }

    /// Queue events under one lock (so a group stays contiguous) with at most one wake-up.
    fn push_all(&self, ps: impl IntoIterator<Item = Pending>) {
        let need_wake = {
            let mut q = lock(&self.queue);
            q.items.extend(ps);
            !std::mem::replace(&mut q.scheduled, true)
        };
        if need_wake {
            let status = self.wake.call(1, ThreadsafeFunctionCallMode::NonBlocking);
            if status != Status::Ok {
                // Node is shutting down: nobody will ever take these.
                self.fail_all("Node.js environment is shutting down");
            }
        }
    }

    /// Fail every event JS has not finished: queued ones, those taken by JS (tokens), and the
    /// unreported events of unfinished groups (dropping a group's reporter fails them).
    fn fail_all(&self, message: &str) {
        let items = {
            let mut q = lock(&self.queue);
            q.scheduled = false;
            std::mem::take(&mut q.items)
        };
        for p in items {
            if let Some(done) = p.done {
                let _ = done.send(Err(HandlerError::new(message)));
            }
        }
        let inflight: Vec<_> = lock(&self.inflight).drain().collect();
        for (_, tx) in inflight {
            let _ = tx.send(Err(HandlerError::new(message)));
        }
        let groups: Vec<_> = lock(&self.groups).drain().collect();
        drop(groups);
    }
}

/// A JS handler as the core sees it: queue the event for the JS thread and wait for the
/// outcome JS reports.
struct JsHandler {
    slot: u32,
    dispatcher: Arc<Dispatcher>,
}

impl Handler for JsHandler {
    fn call(&self, event: Delivery) -> HandlerFuture {
        let (tx, rx) = oneshot::channel();
        self.dispatcher.push(Pending {
            slot: self.slot,
            group: 0,
            json: event.to_json_with_channel(),
            done: Some(tx),
        });
        outcome_future(rx)
    }

    fn batched(&self) -> bool {
        self.dispatcher.shares_memory
    }

    /// The whole batch crosses with one wake-up; JS runs it in order (see `_runGroup`). JS
    /// reads and writes the events' states in the group's shared memory (no call per event):
    /// it claims each event there before running it (skipping one the core gave up), marks
    /// each success, and calls in only for a failure, before it waits on a promise, and when
    /// the run ends.
    fn run_batch(&self, events: Vec<Delivery>, outcomes: OutcomeReporter) {
        let group = loop {
            let g = self.dispatcher.next_group.fetch_add(1, Ordering::Relaxed);
            if g != 0 {
                break g;
            }
        };
        lock(&self.dispatcher.groups).insert(group, outcomes);
        let items: Vec<Pending> = events
            .into_iter()
            .map(|event| Pending {
                slot: self.slot,
                group,
                json: event.to_json_with_channel(),
                done: None,
            })
            .collect();
        self.dispatcher.push_all(items);
    }
}

/// A group's states as a `Uint8Array` over the core's own memory (an external array buffer
/// that keeps it alive until JS lets go). Fails where Node does not allow external buffers
/// (napi-rs would then copy silently, and JS's writes would never reach the core: this calls
/// Node-API directly instead).
fn states_array(env: &Env, states: SharedStates) -> Result<napi::sys::napi_value> {
    use napi::sys;
    use std::ffi::c_void;

    unsafe extern "C" fn release(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
        // SAFETY: `hint` is the box made below, released once, here.
        drop(unsafe { Box::from_raw(hint.cast::<SharedStates>()) });
    }
    let len = states.len();
    let data = states.as_ptr().cast::<c_void>();
    let hint = Box::into_raw(Box::new(states));
    let mut buffer = std::ptr::null_mut();
    // SAFETY: `data` stays valid until `release` drops the `SharedStates` that owns it.
    let status = unsafe {
        sys::napi_create_external_arraybuffer(
            env.raw(),
            data,
            len,
            Some(release),
            hint.cast::<c_void>(),
            &mut buffer,
        )
    };
    if status != sys::Status::napi_ok {
        // SAFETY: not handed to Node, so still ours.
        drop(unsafe { Box::from_raw(hint) });
        return Err(napi::Error::new(
            Status::GenericFailure,
            format!("external array buffers are not available (napi status {status})"),
        ));
    }
    let mut array = std::ptr::null_mut();
    // SAFETY: `buffer` is the array buffer just made, `len` bytes long.
    let status = unsafe {
        sys::napi_create_typedarray(
            env.raw(),
            sys::TypedarrayType::uint8_array,
            len,
            buffer,
            0,
            &mut array,
        )
    };
    if status != sys::Status::napi_ok {
        return Err(napi::Error::new(
            Status::GenericFailure,
            format!("could not make a Uint8Array (napi status {status})"),
        ));
    }
    Ok(array)
}

fn outcome_future(rx: oneshot::Receiver<Outcome>) -> HandlerFuture {
    Box::pin(async move {
        rx.await
            .unwrap_or_else(|_| Err(HandlerError::new("handler outcome was lost")))
    })
}

/// Events taken from the queue in one call: `events` is a JSON array; `slots[i]` names the JS
/// handler of `events[i]` and `tokens[i]` is what to report its outcome with.
#[napi(object)]
pub struct EventBatch {
    /// JS handler slot per event. (Typed arrays cross without a napi call per element.)
    pub slots: Uint32Array,
    /// Completion token per event.
    pub tokens: Uint32Array,
    /// In-order group per event (0: none); a group's events are contiguous.
    pub groups: Uint32Array,
    /// `[event, ...]` as JSON text.
    pub events: String,
}

/// The body of [`NativeClient::publish_many`]: hands every event to the client's hand-over
/// task now, on the JS thread (so the publishes of successive calls reach Redis in call
/// order); the checking and encoding run on the runtime, and the returned future yields the
/// JSON array of results.
fn queue_many_json(
    c: &EventBusClient,
    types: Vec<String>,
    data: Vec<String>,
    options: Vec<String>,
) -> Result<impl std::future::Future<Output = Result<String>> + Send + 'static> {
    if types.len() != data.len() || types.len() != options.len() {
        return Err(arg_error("publish_many: array lengths differ"));
    }
    let items: Vec<JsonItem> = types
        .into_iter()
        .zip(data)
        .zip(options)
        .map(|((event_type, data), options)| JsonItem {
            event_type,
            data,
            options,
        })
        .collect();
    let queued = c.queue_batch(items);
    Ok(async move {
        let outcomes = queued.await;
        let results: Vec<OutcomeJson<'_>> = outcomes
            .iter()
            .map(|o| OutcomeJson::of(o, OutcomeShape::Ts))
            .collect();
        serde_json::to_string(&results).map_err(|e| {
            js_error(&event_bus::Error::new(
                event_bus::ErrorKind::Internal,
                format!("publish results: {e}"),
            ))
        })
    })
}

/// The native client; wrapped by the JS `EventBusClient`.
#[napi]
pub struct NativeClient {
    client: EventBusClient,
    dispatcher: Arc<Dispatcher>,
}

#[napi]
impl NativeClient {
    /// `new NativeClient(configJson, wake, onState)`. Throws `[CONFIG_ERROR] ...` with the TS
    /// constructor's messages.
    #[napi(constructor)]
    pub fn new(env: &Env, config_json: String, wake: WakeFn, on_state: StateFn) -> Result<Self> {
        let client = EventBusClient::from_json(&config_json).map_err(|e| js_error(&e))?;
        event_bus::logging::install_stderr(client.settings().log_json);
        client.on_state(Arc::new(move |ev: &StateEvent| {
            let _ = on_state.call(ev.to_json(), ThreadsafeFunctionCallMode::NonBlocking);
        }));
        Ok(NativeClient {
            client,
            dispatcher: Arc::new(Dispatcher {
                queue: Mutex::new(Queue::default()),
                inflight: Mutex::new(HashMap::new()),
                groups: Mutex::new(HashMap::new()),
                next_token: AtomicU32::new(1),
                next_group: AtomicU32::new(1),
                shares_memory: states_array(env, batch_outcomes(1, "probe").0.shared_states())
                    .is_ok(),
                wake,
            }),
        })
    }

    /// Between a successful `connect()` and `disconnect()`.
    #[napi]
    pub fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    /// Open both connections.
    #[napi]
    pub async fn connect(&self) -> Result<()> {
        let c = self.client.clone();
        on_core(async move { c.connect().await })
            .await?
            .map_err(|e| js_error(&e))
    }

    /// Drain handlers, close everything. Idempotent. `from_handler`: a handler of this client
    /// is calling, so do not wait for handlers (its own could not finish first).
    #[napi]
    pub async fn disconnect(&self, from_handler: Option<bool>) -> Result<()> {
        let c = self.client.clone();
        let from_handler = from_handler.unwrap_or(false);
        let r = on_core(async move { c.disconnect_from(from_handler).await }).await?;
        self.dispatcher.fail_all("Event Bus client disconnected");
        r.map_err(|e| js_error(&e))
    }

    /// Publish many events in one call (the JS side coalesces the publishes of one tick).
    /// `options[i]` is JSON text or `""`. Resolves to a JSON array of `PublishResult`s.
    ///
    /// The events are given to the client's hand-over task before this returns, which checks,
    /// encodes and queues them after those of earlier calls, so the next tick's publishes
    /// cannot overtake them (they did when each call was a task of its own on the runtime's
    /// two workers). Not an `async fn`: napi would await the replies
    /// on its own tokio runtime (a further cross-thread wake-up); the wait runs on the core's
    /// runtime and the promise is settled from there.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn publish_many<'e>(
        &self,
        env: &'e Env,
        types: Vec<String>,
        data: Vec<String>,
        options: Vec<String>,
    ) -> Result<Object<'e>> {
        let (deferred, promise) = env.create_deferred::<String, _>()?;
        match queue_many_json(&self.client, types, data, options) {
            Ok(replies) => {
                event_bus::runtime::spawn(async move {
                    match replies.await {
                        Ok(json) => deferred.resolve(move |_| Ok(json)),
                        Err(e) => deferred.reject(e),
                    }
                });
            }
            Err(e) => deferred.reject(e),
        }
        Ok(promise)
    }

    /// Subscribe; `slot` names the JS handler. Resolves to `{id, pattern, createdAt}` JSON.
    #[napi]
    pub async fn subscribe(&self, pattern: String, slot: u32, options: String) -> Result<String> {
        let options = SubscriptionOptions::from_json(&options).map_err(|e| js_error(&e))?;
        let handler = Arc::new(JsHandler {
            slot,
            dispatcher: self.dispatcher.clone(),
        });
        let c = self.client.clone();
        let info = on_core(async move { c.subscribe(&pattern, handler, options).await })
            .await?
            .map_err(|e| js_error(&e))?;
        Ok(
            json!({"id": info.id, "pattern": info.pattern, "createdAt": info.created_at})
                .to_string(),
        )
    }

    /// Unsubscribe by id; `false` when unknown.
    #[napi]
    pub async fn unsubscribe(&self, id: String) -> Result<bool> {
        let c = self.client.clone();
        on_core(async move { c.unsubscribe(&id).await })
            .await?
            .map_err(|e| js_error(&e))
    }

    /// Take every queued event (resets the wake-up flag).
    #[napi]
    pub fn take_batch(&self) -> EventBatch {
        let items = {
            let mut q = lock(&self.dispatcher.queue);
            q.scheduled = false;
            std::mem::take(&mut q.items)
        };
        let mut slots = Vec::with_capacity(items.len());
        let mut tokens = Vec::with_capacity(items.len());
        let mut groups = Vec::with_capacity(items.len());
        let mut events =
            String::with_capacity(items.iter().map(|p| p.json.len() + 1).sum::<usize>() + 2);
        events.push('[');
        let mut inflight = lock(&self.dispatcher.inflight);
        for (i, p) in items.into_iter().enumerate() {
            if i > 0 {
                events.push(',');
            }
            events.push_str(&p.json);
            let token = match p.done {
                Some(done) => {
                    let token = self.dispatcher.next_token.fetch_add(1, Ordering::Relaxed);
                    inflight.insert(token, done);
                    token
                }
                None => 0,
            };
            slots.push(p.slot);
            tokens.push(token);
            groups.push(p.group);
        }
        events.push(']');
        EventBatch {
            slots: Uint32Array::new(slots),
            tokens: Uint32Array::new(tokens),
            groups: Uint32Array::new(groups),
            events,
        }
    }

    /// Report handler successes.
    #[napi]
    pub fn complete_ok(&self, tokens: Uint32Array) {
        let mut inflight = lock(&self.dispatcher.inflight);
        for t in tokens.iter() {
            if let Some(tx) = inflight.remove(t) {
                let _ = tx.send(Ok(()));
            }
        }
    }

    /// Report one handler failure (a throw or a rejection), with its message.
    #[napi]
    pub fn complete_err(&self, token: u32, message: String) {
        if let Some(tx) = lock(&self.dispatcher.inflight).remove(&token) {
            let _ = tx.send(Err(HandlerError::new(message)));
        }
    }

    /// The states of group `group`'s events (a `Uint8Array`, byte `i` for its `i`th event; the
    /// values are [`STATE_PENDING`] and the others exported below), or `undefined` once the
    /// group is gone (the client disconnected). JS claims an event with
    /// `Atomics.compareExchange` (pending to running), ends the run when that fails, and stores
    /// [`STATE_OK`] when its handler succeeds.
    #[napi(ts_return_type = "Uint8Array | undefined")]
    pub fn group_states<'e>(&self, env: &'e Env, group: u32) -> Result<Option<Unknown<'e>>> {
        let Some(states) = lock(&self.dispatcher.groups)
            .get(&group)
            .map(|r| r.shared_states())
        else {
            return Ok(None);
        };
        let array = states_array(env, states)?;
        // SAFETY: a value just created in this env.
        Ok(Some(unsafe {
            Unknown::from_raw_unchecked(env.raw(), array)
        }))
    }

    /// Report the failure of event `index` of group `group` (wakes the core).
    #[napi]
    pub fn group_fail(&self, group: u32, index: u32, message: String) {
        if let Some(r) = lock(&self.dispatcher.groups).get(&group) {
            r.report(index as usize, Err(HandlerError::new(message)));
        }
    }

    /// Wake the core to read the successes JS marked in group `group`'s states.
    #[napi]
    pub fn group_wake(&self, group: u32) {
        if let Some(r) = lock(&self.dispatcher.groups).get(&group) {
            r.wake();
        }
    }

    /// JS finished group `group`'s run (or cannot run it): forget the group. Dropping its
    /// reporter wakes the core, and fails any event left unreported.
    #[napi]
    pub fn group_end(&self, group: u32) {
        let r = lock(&self.dispatcher.groups).remove(&group);
        drop(r);
    }

    /// `healthCheck()` as JSON.
    #[napi]
    pub async fn health_check(&self) -> Result<String> {
        let c = self.client.clone();
        let r = on_core(async move { c.health_check().await }).await?;
        serde_json::to_string(&r).map_err(arg_error)
    }

    /// `getStats()` as JSON.
    #[napi]
    pub fn stats(&self) -> Result<String> {
        serde_json::to_string(&self.client.stats()).map_err(arg_error)
    }

    /// `joinRoom(room)`: join a room on the Socket.IO hub of the `client` config; resolves when
    /// the hub acknowledged it (rejoined after every reconnect). Rejects with
    /// `[CONNECTION_ERROR] Socket.IO not connected` without `client` config, after disconnect or
    /// while the hub is unreachable; `[VALIDATION_ERROR]` for an empty name; `[PROTOCOL_ERROR]`
    /// when the hub refuses; `[TIMEOUT]` without an ack within `client.timeout`.
    #[napi]
    pub async fn join_room(&self, room: String) -> Result<()> {
        self.client.join_room(&room).await.map_err(|e| js_error(&e))
    }

    /// `leaveRoom(room)`: leave a room on the hub (acknowledged; no longer rejoined). Rejects
    /// as `join_room`.
    #[napi]
    pub async fn leave_room(&self, room: String) -> Result<()> {
        self.client
            .leave_room(&room)
            .await
            .map_err(|e| js_error(&e))
    }

    /// `getRoomMembers(room)`: the members the hub reports for the room (the `members` of its
    /// ack). Rejects as `join_room`.
    #[napi]
    pub async fn get_room_members(&self, room: String) -> Result<Vec<String>> {
        self.client
            .get_room_members(&room)
            .await
            .map_err(|e| js_error(&e))
    }

    /// Validation limits of this client: `[maxEventSize, maxDataSize]`.
    #[napi]
    pub fn limits(&self) -> Vec<u32> {
        let v = self.client.validator();
        vec![
            v.max_event_size.min(u32::MAX as usize) as u32,
            v.max_data_size.min(u32::MAX as usize) as u32,
        ]
    }
}

/// A group's event state (byte) in [`NativeClient::group_states`]: no outcome yet. The values
/// are the core's; JS reads them from here rather than repeating them.
#[napi]
pub const STATE_PENDING: u32 = event_bus::outcomes::STATE_PENDING as u32;
/// A group's event state: its handler succeeded.
#[napi]
pub const STATE_OK: u32 = event_bus::outcomes::STATE_OK as u32;
/// A group's event state: claimed by JS, which runs it.
#[napi]
pub const STATE_RUNNING: u32 = event_bus::outcomes::STATE_RUNNING as u32;

/// Redis glob match, byte for byte as the server does it.
#[napi]
pub fn matches_pattern(pattern: String, channel: String) -> bool {
    event_bus::matches_pattern(&pattern, &channel)
}

fn validator() -> event_bus::EventValidator {
    event_bus::EventValidator::default()
}

/// The TS validator's event type rule.
#[napi]
pub fn validate_event_type(event_type: String) -> Result<()> {
    validator()
        .validate_event_type(&event_type)
        .map_err(|e| js_error(&e))
}

/// The TS validator's id rule (`traceId`, `userId`, `correlationId`).
#[napi]
pub fn validate_id(id: String, field: String) -> Result<()> {
    validator()
        .validate_id(&id, &field)
        .map_err(|e| js_error(&e))
}

/// The TS validator's timestamp rule.
#[napi]
pub fn validate_timestamp(timestamp: String) -> Result<()> {
    validator()
        .validate_timestamp(&timestamp)
        .map_err(|e| js_error(&e))
}

/// The size rules: serialized event and data lengths (bytes) against the limits.
#[napi]
pub fn validate_sizes(event_len: f64, data_len: f64, max_event: f64, max_data: f64) -> Result<()> {
    event_bus::EventValidator::new(max_event as usize, max_data as usize)
        .validate_sizes(event_len as usize, data_len as usize)
        .map_err(|e| js_error(&e))
}

/// The strict schemas of the predefined photo events (`data_json` is `JSON.stringify(data)`).
#[napi]
pub fn validate_event_data(event_type: String, data_json: String) -> Result<()> {
    let data: Value = serde_json::from_str(&data_json).map_err(arg_error)?;
    validator()
        .validate_event_data(&event_type, &data)
        .map_err(|e| js_error(&e))
}

/// Bench helper: `n` copies of `event_json` as one JSON array text (what `take_batch` hands
/// over; JS parses it with `JSON.parse`).
#[napi]
pub fn bench_events_as_json(event_json: String, n: u32) -> String {
    let mut s = String::with_capacity((event_json.len() + 1) * n as usize + 2);
    s.push('[');
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&event_json);
    }
    s.push(']');
    s
}

/// Bench helper: the same events converted to JS objects by napi (the alternative to
/// `JSON.parse`, measured and rejected; see the README).
#[napi]
pub fn bench_events_as_objects(event_json: String, n: u32) -> Result<Vec<Value>> {
    (0..n)
        .map(|_| serde_json::from_str(&event_json).map_err(arg_error))
        .collect()
}
