//! `NativeClient`: the core's [`EventBusClient`] as a JS class, wrapped by the documented
//! `EventBusClient` of `js/index.js`.
//!
//! Every method is a thin adapter: arguments cross as strings (options and config as JSON
//! text the core interprets), results as JSON text JS parses once. Asynchronous methods return
//! a promise settled from the core's runtime ([`crate::dispatch::promise`]); synchronous ones
//! run inside [`guard`], so a panic is a JS exception.
//!
//! Process lifetime: both threadsafe functions are *weak* (they never keep Node alive); the JS
//! wrapper holds a ref'd timer between `connect()` and `disconnect()` instead, so a connected
//! client keeps the process alive (like ioredis) and a disconnected or never connected one
//! does not.

use std::sync::Arc;

use event_bus::{
    batch_outcomes, ErrorKind, EventBusClient, OutcomeJson, OutcomeShape, StateEvent,
    SubscriptionOptions, SubscriptionTarget,
};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;
use serde_json::json;

use crate::dispatch::{
    promise, queue_many_json, states_array, Dispatcher, EventBatch, JsHandler, StateFn, WakeFn,
};
use crate::error::{face_error, guard, js_error, Code, JsResult};

/// The native client; wrapped by the JS `EventBusClient`.
#[napi]
pub struct NativeClient {
    client: EventBusClient,
    dispatcher: Arc<Dispatcher>,
}

/// A result serialized for JS (it cannot fail for the core's types; if it did, it is a bug).
fn to_json(what: &str, json: serde_json::Result<String>) -> JsResult<String> {
    json.map_err(|e| face_error(event_bus::ErrorKind::Internal, format!("{what}: {e}")))
}

#[napi]
impl NativeClient {
    /// `new NativeClient(configJson, wake, onState)`. Throws the core's `CONFIG_ERROR` (or
    /// `INVALID_ARGUMENT` for text that is not JSON).
    #[napi(constructor)]
    pub fn new(
        env: &Env,
        config_json: String,
        wake: WakeFn,
        on_state: StateFn,
    ) -> napi::Result<Self, Code> {
        guard(|| {
            let client = EventBusClient::from_json(&config_json).map_err(|e| js_error(&e))?;
            event_bus::logging::install_stderr(client.settings().log_json);
            client.on_state(Arc::new(move |ev: &StateEvent| {
                let _ = on_state.call(ev.to_json(), ThreadsafeFunctionCallMode::NonBlocking);
            }));
            let shares_memory =
                states_array(env, batch_outcomes(1, "probe").0.shared_states()).is_ok();
            let late = client.late_completions();
            Ok(NativeClient {
                client,
                dispatcher: Arc::new(Dispatcher::new(wake, shares_memory, late)),
            })
        })
    }

    /// Between a successful `connect()` and `disconnect()`.
    #[napi]
    pub fn is_connected(&self) -> napi::Result<bool, Code> {
        guard(|| Ok(self.client.is_connected()))
    }

    /// Open the connections.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn connect<'e>(&self, env: &'e Env) -> napi::Result<Object<'e>, Code> {
        let c = self.client.clone();
        promise(
            env,
            async move { c.connect().await.map_err(|e| js_error(&e)) },
        )
    }

    /// Drain handlers, close everything. Idempotent. `from_handler`: a handler of this client
    /// is calling, so do not wait for handlers (its own could not finish first).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn disconnect<'e>(
        &self,
        env: &'e Env,
        from_handler: Option<bool>,
    ) -> napi::Result<Object<'e>, Code> {
        let c = self.client.clone();
        let dispatcher = self.dispatcher.clone();
        promise(env, async move {
            let r = if from_handler.unwrap_or(false) {
                c.disconnect_from_handler().await
            } else {
                c.disconnect().await
            };
            dispatcher.fail_all("Event Bus client disconnected");
            r.map_err(|e| js_error(&e))
        })
    }

    /// Publish many events in one call (the JS side coalesces the publishes of one tick).
    /// `options[i]` is JSON text or `""`. Resolves to a JSON array of `PublishResult`s.
    ///
    /// The events are given to the client's hand-over task before this returns, which checks,
    /// encodes and queues them after those of earlier calls, so the next tick's publishes
    /// cannot overtake them.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn publish_many<'e>(
        &self,
        env: &'e Env,
        types: Vec<String>,
        data: Vec<String>,
        options: Vec<String>,
    ) -> napi::Result<Object<'e>, Code> {
        let replies = guard(|| queue_many_json(&self.client, types, data, options))?;
        promise(env, replies)
    }

    /// Subscribe; `slot` names the JS handler, `options` is JSON text (or `""`) the core
    /// interprets. `types`, when given, is a list of exact event types (a durable
    /// subscription; `pattern` is then ignored); otherwise `pattern` is a glob. Resolves to
    /// `{id, pattern, createdAt}` JSON.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn subscribe<'e>(
        &self,
        env: &'e Env,
        pattern: String,
        slot: u32,
        options: String,
        types: Option<Vec<String>>,
    ) -> napi::Result<Object<'e>, Code> {
        let handler = Arc::new(JsHandler {
            slot,
            dispatcher: self.dispatcher.clone(),
        });
        let c = self.client.clone();
        let target = match types {
            Some(types) => SubscriptionTarget::Types(types),
            None => SubscriptionTarget::Pattern(pattern),
        };
        promise(env, async move {
            let options = SubscriptionOptions::from_json(&options).map_err(|e| js_error(&e))?;
            let info = c
                .subscribe_target(target, handler, options)
                .await
                .map_err(|e| js_error(&e))?;
            Ok(
                json!({"id": info.id, "pattern": info.pattern, "createdAt": info.created_at})
                    .to_string(),
            )
        })
    }

    /// Unsubscribe by id; `false` when unknown.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn unsubscribe<'e>(&self, env: &'e Env, id: String) -> napi::Result<Object<'e>, Code> {
        let c = self.client.clone();
        promise(env, async move {
            c.unsubscribe(&id).await.map_err(|e| js_error(&e))
        })
    }

    /// Take every queued event (resets the wake-up flag).
    /// A publish refused on the JS side (its data or options cannot become JSON): the core
    /// counts and logs it like any failed publish and answers with the result's JSON.
    #[napi]
    pub fn refused_publish(&self, code: String, message: String) -> napi::Result<String, Code> {
        guard(|| {
            let kind = ErrorKind::from_code(&code).unwrap_or(ErrorKind::Validation);
            let outcome = Err(self
                .client
                .refused_publish(event_bus::Error::new(kind, message)));
            Ok(
                serde_json::to_string(&OutcomeJson::of(&outcome, OutcomeShape::Ts))
                    .unwrap_or_default(),
            )
        })
    }

    #[napi]
    pub fn take_batch(&self) -> napi::Result<EventBatch, Code> {
        guard(|| Ok(self.dispatcher.take_batch()))
    }

    /// Report handler successes of events run on their own (by token).
    #[napi]
    pub fn complete_ok(&self, tokens: Uint32Array) -> napi::Result<(), Code> {
        guard(|| {
            self.dispatcher.complete_ok(&tokens);
            Ok(())
        })
    }

    /// Report one handler failure (a throw or a rejection) with its message: of the event with
    /// token `id` when `group` is 0, else of event `id` of group `group`.
    #[napi]
    pub fn report_failure(&self, group: u32, id: u32, message: String) -> napi::Result<(), Code> {
        guard(|| {
            self.dispatcher.report_failure(group, id, message);
            Ok(())
        })
    }

    /// The states of group `group`'s events (a `Uint8Array`, byte `i` for its `i`th event; the
    /// values are `STATE_PENDING` and the others exported by `validate.rs`), or `undefined` once
    /// the group is gone (the client disconnected). JS claims an event with
    /// `Atomics.compareExchange` (pending to running), ends the run when that fails, and stores
    /// `STATE_OK` when its handler succeeds.
    #[napi(ts_return_type = "Uint8Array | undefined")]
    pub fn group_states<'e>(
        &self,
        env: &'e Env,
        group: u32,
    ) -> napi::Result<Option<Unknown<'e>>, Code> {
        guard(|| {
            let Some(states) = self.dispatcher.group_states(group) else {
                return Ok(None);
            };
            let array = states_array(env, states)?;
            // SAFETY: a value just created in this env.
            Ok(Some(unsafe {
                Unknown::from_raw_unchecked(env.raw(), array)
            }))
        })
    }

    /// Event `i` of group `group` succeeded after the core gave it up (JS found
    /// `STATE_GIVEN_UP` where it would store `STATE_OK`): counted as a late completion.
    #[napi]
    pub fn group_late(&self, group: u32, i: u32) -> napi::Result<(), Code> {
        guard(|| {
            self.dispatcher.group_late(group, i);
            Ok(())
        })
    }

    /// Wake the core to read the successes JS marked in group `group`'s states.
    #[napi]
    pub fn group_wake(&self, group: u32) -> napi::Result<(), Code> {
        guard(|| {
            self.dispatcher.group_wake(group);
            Ok(())
        })
    }

    /// JS finished group `group`'s run (or cannot run it): forget the group. Dropping its
    /// reporter wakes the core, and fails any event left unreported.
    #[napi]
    pub fn group_end(&self, group: u32) -> napi::Result<(), Code> {
        guard(|| {
            self.dispatcher.group_end(group);
            Ok(())
        })
    }

    /// `deadLetters(type, {group, count})`: the group's dead letters of `event_type` as a JSON
    /// array of `{event, error, deliveries, failedAt, streamId, originalId}` (oldest first).
    #[napi(ts_return_type = "Promise<string>")]
    pub fn dead_letters<'e>(
        &self,
        env: &'e Env,
        event_type: String,
        group: String,
        count: Option<u32>,
    ) -> napi::Result<Object<'e>, Code> {
        let c = self.client.clone();
        promise(env, async move {
            c.dead_letters_json(&event_type, &group, count.map(|n| n as usize))
                .await
                .map_err(|e| js_error(&e))
        })
    }

    /// `replayDeadLetters(type, {group, count})`: the number of dead letters put back on the
    /// type's stream (the group gets each as a new entry).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn replay_dead_letters<'e>(
        &self,
        env: &'e Env,
        event_type: String,
        group: String,
        count: Option<u32>,
    ) -> napi::Result<Object<'e>, Code> {
        let c = self.client.clone();
        promise(env, async move {
            c.replay_dead_letters(&event_type, &group, count.map(|n| n as usize))
                .await
                .map(|n| n as f64)
                .map_err(|e| js_error(&e))
        })
    }

    /// `purgeDeadLetters(type, {group})`: the number of dead letters deleted.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn purge_dead_letters<'e>(
        &self,
        env: &'e Env,
        event_type: String,
        group: String,
    ) -> napi::Result<Object<'e>, Code> {
        let c = self.client.clone();
        promise(env, async move {
            c.purge_dead_letters(&event_type, &group)
                .await
                .map(|n| n as f64)
                .map_err(|e| js_error(&e))
        })
    }

    /// `healthCheck()` as JSON.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn health_check<'e>(&self, env: &'e Env) -> napi::Result<Object<'e>, Code> {
        let c = self.client.clone();
        promise(env, async move {
            to_json(
                "health report",
                serde_json::to_string(&c.health_check().await),
            )
        })
    }

    /// `getStats()` as JSON (the core's snapshot, `errorRate` included).
    #[napi]
    pub fn stats(&self) -> napi::Result<String, Code> {
        guard(|| to_json("stats", serde_json::to_string(&self.client.stats())))
    }

    /// `metrics()`: the Prometheus text exposition of this client.
    #[napi]
    pub fn metrics(&self) -> napi::Result<String, Code> {
        guard(|| Ok(self.client.metrics()))
    }

    /// `joinRoom(room)`: join a room on the Socket.IO hub of the `client` config; resolves when
    /// the hub acknowledged it (rejoined after every reconnect). Rejects with the core's error:
    /// `CONNECTION_ERROR` without `client` config, after disconnect or while the hub is
    /// unreachable; `VALIDATION_ERROR` for an empty name; `PROTOCOL_ERROR` when the hub
    /// refuses; `TIMEOUT` without an ack within `client.timeout`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn join_room<'e>(&self, env: &'e Env, room: String) -> napi::Result<Object<'e>, Code> {
        let c = self.client.clone();
        promise(env, async move {
            c.join_room(&room).await.map_err(|e| js_error(&e))
        })
    }

    /// `leaveRoom(room)`: leave a room on the hub (acknowledged; no longer rejoined). Rejects
    /// as `join_room`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn leave_room<'e>(&self, env: &'e Env, room: String) -> napi::Result<Object<'e>, Code> {
        let c = self.client.clone();
        promise(env, async move {
            c.leave_room(&room).await.map_err(|e| js_error(&e))
        })
    }

    /// `getRoomMembers(room)`: the members the hub reports for the room (the `members` of its
    /// ack). Rejects as `join_room`.
    #[napi(ts_return_type = "Promise<string[]>")]
    pub fn get_room_members<'e>(
        &self,
        env: &'e Env,
        room: String,
    ) -> napi::Result<Object<'e>, Code> {
        let c = self.client.clone();
        promise(env, async move {
            c.get_room_members(&room).await.map_err(|e| js_error(&e))
        })
    }
}

/// Throws the core's not-connected error: the JS wrapper checks the connection itself (no
/// native call per publish) but raises the core's error, code and message.
#[napi]
pub fn not_connected() -> napi::Result<(), Code> {
    Err(js_error(&event_bus::Error::not_connected()))
}
