//! Between the core's threads and the JS thread: events into JS in batches, handler outcomes
//! back to the core, and promises settled from the core's runtime.
//!
//! - **Handlers run on the JS thread, batched.** Each subscription's handler is a
//!   [`JsHandler`]: the core calls it from its workers, the event is queued in the client's
//!   [`Dispatcher`], and only the first event of an empty queue wakes JS (one threadsafe
//!   function call). JS then takes the whole queue in one call
//!   ([`crate::client::NativeClient::take_batch`]) and reports each handler's outcome back, so
//!   the core's timeout and retry apply to async handlers.
//! - **In-order batches** (a group) report through memory shared with JS instead
//!   ([`states_array`]): JS claims each event there before running it and marks each success,
//!   and the core gives up after a timeout only what JS has not claimed, so each event runs
//!   once.
//! - **Given up.** When the core stops waiting for a handler (its timeout passed, or the
//!   subscription or client went away) while JS runs it, JS is told (the event's token, or its
//!   group and index, in the next [`EventBatch`]'s `aborts`) and aborts the `AbortSignal` the
//!   handler got; the outcome JS reports later counts once as a late completion
//!   ([`event_bus::LateCompletions`]).
//! - **Promises.** [`promise`] runs a future on the core's runtime and settles the JS promise
//!   from there (no runtime of napi's own, so no hop between two runtimes).

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use event_bus::{
    Delivery, ErrorKind, EventBusClient, Handler, HandlerError, HandlerFuture, JsonItem,
    LateCompletions, OutcomeJson, OutcomeReporter, OutcomeShape, SharedStates,
};
use futures_util::FutureExt;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use tokio::sync::oneshot;

use crate::error::{face_error, from_napi, panic_message, rejection, JsResult};

/// `wake(count)`: tells JS that events are waiting (weak: never keeps the process alive).
pub type WakeFn = ThreadsafeFunction<u32, (), u32, Status, false, true>;
/// `onState(json)`: a connection state change (weak).
pub type StateFn = ThreadsafeFunction<String, (), String, Status, false, true>;

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Run `fut` on the core's runtime and settle the returned JS promise with its outcome: the
/// value, or a rejection with the error's code. A panic in `fut` rejects with
/// `INTERNAL_ERROR`.
pub fn promise<'e, T, F>(env: &'e Env, fut: F) -> JsResult<Object<'e>>
where
    F: Future<Output = JsResult<T>> + Send + 'static,
    T: ToNapiValue + Send + 'static,
{
    let (deferred, promise) = env.create_deferred::<T, _>().map_err(from_napi)?;
    event_bus::runtime::spawn(async move {
        let out = AssertUnwindSafe(fut)
            .catch_unwind()
            .await
            .unwrap_or_else(|p| Err(face_error(ErrorKind::Internal, panic_message(&*p))));
        deferred.resolve(move |env| out.map_err(|e| rejection(&env, e)));
    });
    Ok(promise)
}

type Outcome = std::result::Result<(), HandlerError>;

/// An event waiting for the JS thread.
pub struct Pending {
    slot: u32,
    /// 0: run on its own; otherwise the id of an in-order batch ([`Handler::run_batch`]):
    /// the events of one group are contiguous in the queue and JS runs them one after another.
    group: u32,
    json: String,
    /// Where an event run on its own reports its outcome, and the token JS reports it with;
    /// `None` in a group, whose outcomes go through the group's [`OutcomeReporter`].
    done: Option<(u32, oneshot::Sender<Outcome>)>,
}

#[derive(Default)]
struct Queue {
    items: Vec<Pending>,
    /// A wake-up is on its way to JS (or JS is about to take the queue).
    scheduled: bool,
    /// Handler runs the core stopped waiting for, to abort in JS: `(0, token)` or
    /// `(group, index)`.
    aborts: Vec<(u32, u32)>,
}

/// The per-client queue between the core's workers and the JS thread.
pub struct Dispatcher {
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
    late: LateCompletions,
}

/// Events taken from the queue in one call: `events` is a JSON array; `slots[i]` names the JS
/// handler of `events[i]` and `tokens[i]` is what to report its outcome with.
#[napi(object)]
pub struct EventBatch {
    /// JS handler slot per event. (Typed arrays cross without a napi call per element.)
    pub slots: Uint32Array,
    /// Completion token per event (0 in a group).
    pub tokens: Uint32Array,
    /// In-order group per event (0: none); a group's events are contiguous.
    pub groups: Uint32Array,
    /// `[event, ...]` as JSON text.
    pub events: String,
    /// Handler runs the core stopped waiting for (timed out): pairs `group, id` (`id` a token
    /// when `group` is 0, else the event's index in the group), whose signal JS aborts.
    pub aborts: Uint32Array,
}

impl Dispatcher {
    pub fn new(wake: WakeFn, shares_memory: bool, late: LateCompletions) -> Self {
        Dispatcher {
            queue: Mutex::new(Queue::default()),
            inflight: Mutex::new(HashMap::new()),
            groups: Mutex::new(HashMap::new()),
            next_token: AtomicU32::new(1),
            next_group: AtomicU32::new(1),
            shares_memory,
            wake,
            late,
        }
    }

    fn token(&self) -> u32 {
        loop {
            let t = self.next_token.fetch_add(1, Ordering::Relaxed);
            if t != 0 {
                break t;
            }
        }
    }

    /// The core stopped waiting for handler run `(group, id)`: tell JS (one wake-up at most).
    fn give_up(&self, group: u32, id: u32) {
        let need_wake = {
            let mut q = lock(&self.queue);
            q.aborts.push((group, id));
            !std::mem::replace(&mut q.scheduled, true)
        };
        if need_wake {
            // Shutting down when this fails: nothing is left to abort.
            let _ = self.wake.call(1, ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

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
    pub fn fail_all(&self, message: &str) {
        let items = {
            let mut q = lock(&self.queue);
            q.scheduled = false;
            std::mem::take(&mut q.items)
        };
        for p in items {
            if let Some((_, done)) = p.done {
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

    /// Take every queued event (resets the wake-up flag).
    pub fn take_batch(&self) -> EventBatch {
        let (items, aborts) = {
            let mut q = lock(&self.queue);
            q.scheduled = false;
            (std::mem::take(&mut q.items), std::mem::take(&mut q.aborts))
        };
        let mut slots = Vec::with_capacity(items.len());
        let mut tokens = Vec::with_capacity(items.len());
        let mut groups = Vec::with_capacity(items.len());
        let mut events =
            String::with_capacity(items.iter().map(|p| p.json.len() + 1).sum::<usize>() + 2);
        events.push('[');
        let mut inflight = lock(&self.inflight);
        for (i, p) in items.into_iter().enumerate() {
            if i > 0 {
                events.push(',');
            }
            events.push_str(&p.json);
            let token = match p.done {
                Some((token, done)) => {
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
            aborts: Uint32Array::new(aborts.into_iter().flat_map(|(g, i)| [g, i]).collect()),
        }
    }

    /// Handler successes of events run on their own.
    pub fn complete_ok(&self, tokens: &[u32]) {
        let mut inflight = lock(&self.inflight);
        for t in tokens {
            if let Some(tx) = inflight.remove(t) {
                if tx.send(Ok(())).is_err() {
                    self.late.record(); // the core stopped waiting for it
                }
            }
        }
    }

    /// One handler failure: of the event with token `id` (`group` 0), or of event `id` of
    /// group `group`. The core counts it, and retries it when the subscription says so.
    pub fn report_failure(&self, group: u32, id: u32, message: String) {
        let err = HandlerError::new(message);
        if group == 0 {
            if let Some(tx) = lock(&self.inflight).remove(&id) {
                if tx.send(Err(err)).is_err() {
                    self.late.record();
                }
            }
        } else if let Some(r) = lock(&self.groups).get(&group) {
            r.report(id as usize, Err(err));
        }
    }

    /// The shared states of group `group`, while it is not finished.
    pub fn group_states(&self, group: u32) -> Option<SharedStates> {
        lock(&self.groups).get(&group).map(|r| r.shared_states())
    }

    /// A success of event `i` of group `group` that JS could not store because the core had
    /// given the event up (`STATE_GIVEN_UP`): counted as a late completion.
    pub fn group_late(&self, group: u32, i: u32) {
        if let Some(r) = lock(&self.groups).get(&group) {
            r.report(i as usize, Ok(()));
        }
    }

    /// Wake the core to read the successes JS marked in group `group`'s states.
    pub fn group_wake(&self, group: u32) {
        if let Some(r) = lock(&self.groups).get(&group) {
            r.wake();
        }
    }

    /// Forget group `group`; dropping its reporter wakes the core, and fails any event left
    /// unreported.
    pub fn group_end(&self, group: u32) {
        let r = lock(&self.groups).remove(&group);
        drop(r);
    }
}

/// A JS handler as the core sees it: queue the event for the JS thread and wait for the
/// outcome JS reports.
pub struct JsHandler {
    pub slot: u32,
    pub dispatcher: Arc<Dispatcher>,
}

/// Held by a handler call's future until its outcome arrives: dropped before that, the core
/// stopped waiting (a timeout), and JS is told to abort the handler's signal.
struct GiveUpOnDrop {
    dispatcher: Weak<Dispatcher>,
    token: u32,
    armed: bool,
}

impl Drop for GiveUpOnDrop {
    fn drop(&mut self) {
        if self.armed && event_bus::dropping_on_timeout() {
            if let Some(d) = self.dispatcher.upgrade() {
                d.give_up(0, self.token);
            }
        }
    }
}

impl Handler for JsHandler {
    fn call(&self, event: Delivery) -> HandlerFuture {
        let (tx, rx) = oneshot::channel();
        let token = self.dispatcher.token();
        self.dispatcher.push(Pending {
            slot: self.slot,
            group: 0,
            json: event.to_json_with_channel(),
            done: Some((token, tx)),
        });
        let guard = GiveUpOnDrop {
            dispatcher: Arc::downgrade(&self.dispatcher),
            token,
            armed: true,
        };
        Box::pin(async move {
            // Moved in whole (a field alone would be captured, and the guard dropped now).
            let mut guard = guard;
            let out = rx
                .await
                .unwrap_or_else(|_| Err(HandlerError::new("handler outcome was lost")));
            guard.armed = false;
            out
        })
    }

    fn batched(&self) -> bool {
        self.dispatcher.shares_memory
    }

    /// The whole batch crosses with one wake-up; JS runs it in order (see `_runGroup` in
    /// index.js). JS reads and writes the events' states in the group's shared memory (no call
    /// per event): it claims each event there before running it (skipping one the core gave
    /// up), marks each success, and calls in only for a failure, before it waits on a promise,
    /// and when the run ends.
    fn run_batch(&self, events: Vec<Delivery>, outcomes: OutcomeReporter) {
        let group = loop {
            let g = self.dispatcher.next_group.fetch_add(1, Ordering::Relaxed);
            if g != 0 {
                break g;
            }
        };
        let dispatcher = Arc::downgrade(&self.dispatcher);
        outcomes.on_give_up(move |i| {
            if let Some(d) = dispatcher.upgrade() {
                d.give_up(group, i as u32);
            }
        });
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
pub fn states_array(env: &Env, states: SharedStates) -> JsResult<napi::sys::napi_value> {
    use napi::sys;
    use std::ffi::c_void;

    unsafe extern "C" fn release(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
        // SAFETY: `hint` is the box made below, released once, here.
        drop(unsafe { Box::from_raw(hint.cast::<SharedStates>()) });
    }
    let len = states.len();
    // JS reads and writes these bytes with Atomics only, as the core's side does.
    let data = states.states().as_ptr().cast_mut().cast::<c_void>();
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
        return Err(face_error(
            ErrorKind::Unsupported,
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
        return Err(face_error(
            ErrorKind::Internal,
            format!("could not make a Uint8Array (napi status {status})"),
        ));
    }
    Ok(array)
}

/// Hands every event to the client's hand-over task now, on the JS thread (so the publishes of
/// successive calls reach Redis in call order); the checking and encoding run on the runtime,
/// and the returned future yields the JSON array of `PublishResult`s.
pub fn queue_many_json(
    c: &EventBusClient,
    types: Vec<String>,
    data: Vec<String>,
    options: Vec<String>,
) -> JsResult<impl Future<Output = JsResult<String>> + Send + 'static> {
    if types.len() != data.len() || types.len() != options.len() {
        return Err(face_error(
            ErrorKind::InvalidArgument,
            "publishMany: array lengths differ",
        ));
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
        serde_json::to_string(&results)
            .map_err(|e| face_error(ErrorKind::Internal, format!("publish results: {e}")))
    })
}
