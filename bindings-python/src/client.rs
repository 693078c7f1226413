//! `NativeClient`: the core client with blocking methods (for `event_bus.EventBusClient`) and
//! `*_async` methods that resolve an asyncio future through a [`LoopBridge`] (for
//! `event_bus.asyncio.EventBusClient`). The Python classes in `event_bus/` are thin wrappers.

use std::future::Future;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use event_bus::{
    BatchItem, EventBusClient, Handler, PublishOptions, PublishOutcome, SubscriptionOptions,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyMapping, PyString, PyTuple};
use serde_json::value::RawValue;

use crate::convert;
use crate::dispatcher::Dispatcher;
use crate::errors::{self, guard, BusError};
use crate::handler::{Job, PyHandler};
use crate::loop_bridge::{BridgeInner, LoopBridge};
use crate::types::{PublishResult, Subscription};

/// The message of an operation whose task ended without an answer: it panicked (tokio keeps
/// the panic inside the task), which is a bug.
const TASK_LOST: &str = "event bus internal error: the operation's task ended without an answer";

/// Run `fut` on the core runtime and wait for it with the GIL released, checking for signals
/// every 100 ms so Ctrl-C interrupts the wait (the operation itself goes on in the background).
pub fn wait<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel(1);
    event_bus::runtime::spawn(async move {
        let _ = tx.send(fut.await);
    });
    let mut rx = rx;
    loop {
        let (r, back) = py.detach(move || (rx.recv_timeout(Duration::from_millis(100)), rx));
        rx = back;
        match r {
            Ok(v) => return Ok(v),
            Err(RecvTimeoutError::Timeout) => py.check_signals()?,
            Err(RecvTimeoutError::Disconnected) => return Err(errors::internal(TASK_LOST)),
        }
    }
}

/// An asyncio future that a runtime task must resolve: if the task ends without doing so (it
/// panicked), dropping this resolves the future with `InternalError`, so `await` never hangs.
struct Unresolved {
    bridge: Arc<BridgeInner>,
    future: Option<Py<PyAny>>,
}

impl Drop for Unresolved {
    fn drop(&mut self) {
        if let Some(future) = self.future.take() {
            self.bridge.push(Job::Resolve {
                future,
                make: Box::new(|_py| Err(errors::internal(TASK_LOST))),
            });
        }
    }
}

/// Run `fut` on the core runtime; when done, resolve the asyncio `future` on the bridge's loop
/// with `conv(result)`.
fn resolve_later<T, F, C>(bridge: &LoopBridge, future: Py<PyAny>, fut: F, conv: C)
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
    C: for<'py> FnOnce(Python<'py>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let mut pending = Unresolved {
        bridge: bridge.inner.clone(),
        future: Some(future),
    };
    event_bus::runtime::spawn(async move {
        let v = fut.await;
        if let Some(future) = pending.future.take() {
            pending.bridge.push(Job::Resolve {
                future,
                make: Box::new(move |py| conv(py, v)),
            });
        }
    });
}

/// Publish option keywords in snake_case and the camelCase keys the core reads. Only names
/// are mapped here: every value goes to the core as given, which judges it (and ignores, with
/// a warning naming it, a key it does not know).
const OPTION_KEYS: &[(&str, &str)] = &[
    ("trace_id", "traceId"),
    ("correlation_id", "correlationId"),
    ("user_id", "userId"),
];

fn camel_key<'py>(k: Bound<'py, PyAny>) -> Bound<'py, PyAny> {
    if let Ok(s) = k.cast::<PyString>() {
        if let Ok(name) = s.to_str() {
            if let Some((_, camel)) = OPTION_KEYS.iter().find(|(snake, _)| *snake == name) {
                return PyString::new(k.py(), camel).into_any();
            }
        }
    }
    k
}

/// The publish options of a call as JSON: the `options` value (camelCase dict, or snake_case
/// keys) merged with the keyword arguments (which win). `None` when there are none. A value
/// that is not a mapping goes to the core as it is (it refuses it).
fn publish_options_json(
    options: Option<&Bound<'_, PyAny>>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Option<String>> {
    let options = options.filter(|o| !o.is_none());
    let kwargs = kwargs.filter(|k| !k.is_empty());
    if options.is_none() && kwargs.is_none() {
        return Ok(None);
    }
    let merged = PyDict::new(
        options
            .map(|o| o.py())
            .or_else(|| kwargs.map(|k| k.py()))
            .expect("one of them is set"),
    );
    if let Some(o) = options {
        if let Ok(d) = o.cast::<PyDict>() {
            for (k, v) in d.iter() {
                merged.set_item(camel_key(k), v)?;
            }
        } else if let Ok(m) = o.cast::<PyMapping>() {
            for kv in m.items()?.iter() {
                let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = kv.extract()?;
                merged.set_item(camel_key(k), v)?;
            }
        } else {
            return convert::to_json(o, "options").map(Some);
        }
    }
    if let Some(kw) = kwargs {
        for (k, v) in kw.iter() {
            merged.set_item(camel_key(k), v)?;
        }
    }
    convert::to_json(merged.as_any(), "options").map(Some)
}

/// Publish options judged by the core.
fn publish_options(
    options: Option<&Bound<'_, PyAny>>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<PublishOptions> {
    match publish_options_json(options, kwargs)? {
        None => Ok(PublishOptions::default()),
        Some(json) => errors::map(PublishOptions::from_json(&json)),
    }
}

fn raw_data(data: &Bound<'_, PyAny>) -> PyResult<Box<RawValue>> {
    let s = convert::to_json(data, "data")?;
    RawValue::from_string(s).map_err(|e| errors::internal(format!("data written as bad JSON: {e}")))
}

/// A str argument (`event_type`, `pattern`, a room or subscription id) as Rust text.
fn text(v: &Bound<'_, PyAny>, name: &str) -> PyResult<String> {
    match v.cast::<PyString>() {
        Ok(s) => Ok(s
            .to_cow()
            .map_err(|e| errors::invalid_argument(format!("{name} is not valid UTF-8: {e}")))?
            .into_owned()),
        Err(_) => Err(errors::invalid_argument(format!(
            "{name} must be str, not {}",
            v.get_type().name()?
        ))),
    }
}

/// A publish outcome as Python: `PublishResult`, or the exception (raised by `publish`,
/// stored in `error` by `publish_batch`).
fn outcome(py: Python<'_>, o: PublishOutcome, raise: bool) -> PyResult<Py<PyAny>> {
    match o {
        Ok(r) => {
            let res = Py::new(py, PublishResult::ok(r))?;
            // A success holds only Rust strings and numbers, so it can never be part of a
            // reference cycle: keep it out of the cyclic GC. PyO3 tracks every pyclass, and
            // the results of a big publish_batch would otherwise be traversed by every gen-0
            // collection while they live.
            // SAFETY: `res` is a live object we own; untracking an object that holds no
            // Python references is always sound, and its dealloc untracks only if tracked.
            unsafe { pyo3::ffi::PyObject_GC_UnTrack(res.as_ptr().cast()) };
            Ok(res.into_any())
        }
        Err(f) => {
            let (event_id, published_at) = (f.event_id.clone(), f.published_at.clone());
            let err = PyErr::from(BusError {
                error: f.error,
                event_id: Some(f.event_id),
            });
            if raise {
                return Err(err);
            }
            Ok(Py::new(
                py,
                PublishResult {
                    success: false,
                    event_id,
                    published_at,
                    delivered_to: 0,
                    channel: None,
                    error: Some(err.into_value(py).into_any()),
                },
            )?
            .into_any())
        }
    }
}

/// One `publish_batch` item: a dict `{"type", "data", "options"}` or a tuple
/// `(type, data[, options])`. A missing type or data reaches the core as absent (it says which
/// is required, as a failed result of that item).
fn batch_item(it: &Bound<'_, PyAny>) -> PyResult<BatchItem> {
    let py = it.py();
    let (event_type, data, options) = if let Ok(d) = it.cast::<PyDict>() {
        (
            d.get_item("type")?,
            d.get_item("data")?,
            d.get_item("options")?,
        )
    } else if let Ok(t) = it.cast::<PyTuple>() {
        if !(2..=3).contains(&t.len()) {
            return Err(errors::invalid_argument(format!(
                "a tuple item must be (type, data) or (type, data, options), not {} values",
                t.len()
            )));
        }
        (
            Some(t.get_item(0)?),
            Some(t.get_item(1)?),
            if t.len() == 3 {
                Some(t.get_item(2)?)
            } else {
                None
            },
        )
    } else {
        return Err(errors::invalid_argument(format!(
            "a publish_batch item must be a dict {{'type', 'data', 'options'}} or a tuple (type, data[, options]), not {}",
            it.get_type().name()?
        )));
    };
    Ok(BatchItem {
        event_type: match event_type {
            Some(t) => text(&t, "type")?,
            None => String::new(),
        },
        data: raw_data(&data.unwrap_or_else(|| py.None().into_bound(py)))?,
        options: publish_options(options.as_ref(), None)?,
    })
}

fn batch_items(items: &Bound<'_, PyAny>) -> PyResult<Vec<BatchItem>> {
    let py = items.py();
    let iter = items.try_iter().map_err(|_| {
        errors::invalid_argument(format!(
            "publish_batch takes an iterable of items, not {}",
            items
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    let mut out = Vec::new();
    for (i, it) in iter.enumerate() {
        // An exception of the iterable itself (a generator that raises) goes up unchanged.
        let it = it?;
        match batch_item(&it) {
            Ok(b) => out.push(b),
            Err(e) => {
                // The message stays the one of the rule; which item broke it is a note
                // (shown in tracebacks, in `__notes__`).
                let v = e.value(py);
                if v.hasattr("add_note").unwrap_or(false) {
                    let _ = v.call_method1("add_note", (format!("in publish_batch item {i}"),));
                }
                return Err(e);
            }
        }
    }
    Ok(out)
}

/// Subscription options as JSON: the value Python mapped to camelCase keys
/// (`event_bus._config.subscription_options`), serialized; `None` for none.
fn sub_options_json(options: Option<&Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    match options {
        Some(o) if !o.is_none() => convert::to_json(o, "options").map(Some),
        _ => Ok(None),
    }
}

fn sub_options(json: Option<&str>) -> PyResult<SubscriptionOptions> {
    errors::map(SubscriptionOptions::from_json(json.unwrap_or("")))
}

fn check_callable(h: &Bound<'_, PyAny>) -> PyResult<()> {
    if !h.is_callable() {
        return Err(errors::invalid_argument(format!(
            "handler must be callable, not {}",
            h.get_type().name()?
        )));
    }
    Ok(())
}

fn none(py: Python<'_>) -> Py<PyAny> {
    py.None()
}

/// The native client. Thread-safe; every wait releases the GIL. Every method runs its body
/// in [`guard`], so a Rust panic raises `InternalError`.
#[pyclass(frozen, module = "event_bus._native")]
pub struct NativeClient {
    core: EventBusClient,
    dispatcher: Arc<Dispatcher>,
}

#[pymethods]
impl NativeClient {
    #[new]
    fn py_new(config_json: &Bound<'_, PyAny>) -> PyResult<Self> {
        guard(|| {
            let json = text(config_json, "config_json")?;
            Ok(NativeClient {
                core: errors::map(EventBusClient::from_json(&json))?,
                dispatcher: Dispatcher::new(),
            })
        })
    }

    /// The service name from the config.
    #[getter]
    fn service_name(&self) -> String {
        self.core.settings().service_name.clone()
    }

    fn is_connected(&self) -> PyResult<bool> {
        guard(|| Ok(self.core.is_connected()))
    }

    // ------------------------------------------------------------ blocking

    fn connect(&self, py: Python<'_>) -> PyResult<()> {
        guard(|| {
            self.dispatcher.reset();
            let c = self.core.clone();
            errors::map(wait(py, async move { c.connect().await })?)
        })
    }

    /// `from_handler`: called by one of this client's handlers (do not wait for handlers).
    #[pyo3(signature = (from_handler=false))]
    fn disconnect(&self, py: Python<'_>, from_handler: bool) -> PyResult<()> {
        guard(|| {
            let c = self.core.clone();
            errors::map(wait(py, async move {
                if from_handler {
                    c.disconnect_from_handler().await
                } else {
                    c.disconnect().await
                }
            })?)
        })
    }

    /// Body of the dispatcher thread (blocking client).
    fn run_dispatcher(&self, py: Python<'_>) -> PyResult<()> {
        guard(|| self.dispatcher.run(py))
    }

    /// Ask the dispatcher thread to exit once its queue is empty.
    fn stop_dispatcher(&self) {
        self.dispatcher.request_stop();
    }

    /// `options`: the options value (a camelCase dict); `kwargs`: options as keywords.
    #[pyo3(signature = (event_type, data, options=None, **kwargs))]
    fn publish(
        &self,
        py: Python<'_>,
        event_type: &Bound<'_, PyAny>,
        data: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyAny>>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        guard(|| {
            let t = text(event_type, "event_type")?;
            let d = raw_data(data)?;
            let o = publish_options(options, kwargs)?;
            let c = self.core.clone();
            let r = wait(py, async move { c.publish(&t, &d, &o).await })?;
            outcome(py, r, true)
        })
    }

    fn publish_batch<'py>(
        &self,
        py: Python<'py>,
        items: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        guard(|| {
            let items = batch_items(items)?;
            if !self.core.is_connected() {
                return Err(BusError::from(event_bus::Error::not_connected()).into());
            }
            let c = self.core.clone();
            let rs = wait(py, async move { c.publish_batch(&items).await })?;
            let l = PyList::empty(py);
            for r in rs {
                l.append(outcome(py, r, false)?)?;
            }
            Ok(l)
        })
    }

    /// `options`: the subscription options with camelCase keys (or None), serialized here and
    /// judged by the core.
    #[pyo3(signature = (pattern, handler, options=None))]
    fn subscribe(
        &self,
        py: Python<'_>,
        pattern: &Bound<'_, PyAny>,
        handler: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Subscription> {
        guard(|| {
            let pattern = text(pattern, "pattern")?;
            check_callable(handler)?;
            let json = sub_options_json(options)?;
            let opts = sub_options(json.as_deref())?;
            let h: Arc<dyn Handler> = Arc::new(PyHandler {
                handler: Arc::new(handler.clone().unbind()),
                runner: self.dispatcher.clone(),
            });
            let c = self.core.clone();
            let info = errors::map(wait(
                py,
                async move { c.subscribe(&pattern, h, opts).await },
            )?)?;
            Subscription::new(py, info, json.as_deref().unwrap_or(""))
        })
    }

    fn unsubscribe(&self, py: Python<'_>, subscription_id: &Bound<'_, PyAny>) -> PyResult<bool> {
        guard(|| {
            let id = text(subscription_id, "subscription_id")?;
            let c = self.core.clone();
            errors::map(wait(py, async move { c.unsubscribe(&id).await })?)
        })
    }

    fn join_room(&self, py: Python<'_>, room: &Bound<'_, PyAny>) -> PyResult<()> {
        guard(|| {
            let room = text(room, "room")?;
            let c = self.core.clone();
            errors::map(wait(py, async move { c.join_room(&room).await })?)
        })
    }

    fn leave_room(&self, py: Python<'_>, room: &Bound<'_, PyAny>) -> PyResult<()> {
        guard(|| {
            let room = text(room, "room")?;
            let c = self.core.clone();
            errors::map(wait(py, async move { c.leave_room(&room).await })?)
        })
    }

    fn get_room_members(&self, py: Python<'_>, room: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
        guard(|| {
            let room = text(room, "room")?;
            let c = self.core.clone();
            errors::map(wait(py, async move { c.get_room_members(&room).await })?)
        })
    }

    fn health_check(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        guard(|| {
            let c = self.core.clone();
            let r = wait(py, async move { c.health_check().await })?;
            Ok(convert::ser_to_py(py, &r)?.unbind())
        })
    }

    fn get_stats(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        guard(|| {
            let c = self.core.clone();
            let s = py.detach(move || c.stats());
            Ok(convert::ser_to_py(py, &s)?.unbind())
        })
    }

    /// Register `callback(state: dict)` for connection state changes. It runs on a runtime
    /// thread (briefly holding the GIL); the asyncio wrapper forwards it to its loop.
    fn on_state(&self, callback: Py<PyAny>) -> PyResult<u64> {
        guard(|| {
            Ok(self
                .core
                .on_state(Arc::new(move |ev: &event_bus::StateEvent| {
                    let v = serde_json::to_value(ev).unwrap_or_default();
                    crate::host_call(|py| {
                        let r = convert::to_py(py, &v).and_then(|d| callback.bind(py).call1((d,)));
                        if let Err(e) = r {
                            e.write_unraisable(py, None);
                        }
                    });
                })))
        })
    }

    fn off_state(&self, listener_id: &Bound<'_, PyAny>) -> PyResult<bool> {
        guard(|| {
            let id: u64 = listener_id.extract().map_err(|_| {
                errors::invalid_argument(format!(
                    "listener_id must be the int on_state() returned, not {}",
                    listener_id
                        .get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?;
            Ok(self.core.off_state(id))
        })
    }

    // ------------------------------------------------------------ asyncio

    fn connect_async(&self, bridge: &LoopBridge, future: Py<PyAny>) -> PyResult<()> {
        guard(|| {
            let c = self.core.clone();
            resolve_later(bridge, future, async move { c.connect().await }, |py, r| {
                errors::map(r).map(|_| none(py))
            });
            Ok(())
        })
    }

    #[pyo3(signature = (bridge, future, from_handler=false))]
    fn disconnect_async(
        &self,
        bridge: &LoopBridge,
        future: Py<PyAny>,
        from_handler: bool,
    ) -> PyResult<()> {
        guard(|| {
            let c = self.core.clone();
            resolve_later(
                bridge,
                future,
                async move {
                    if from_handler {
                        c.disconnect_from_handler().await
                    } else {
                        c.disconnect().await
                    }
                },
                |py, r| errors::map(r).map(|_| none(py)),
            );
            Ok(())
        })
    }

    #[pyo3(signature = (bridge, future, event_type, data, options=None, **kwargs))]
    fn publish_async(
        &self,
        bridge: &LoopBridge,
        future: Py<PyAny>,
        event_type: &Bound<'_, PyAny>,
        data: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyAny>>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        guard(|| {
            let item = BatchItem {
                event_type: text(event_type, "event_type")?,
                data: raw_data(data)?,
                options: publish_options(options, kwargs)?,
            };
            // Handed to the core now, from the loop's thread: publishes reach Redis in the
            // order they were made (the core encodes them on its own threads).
            let c = &self.core;
            let queued = event_type.py().detach(|| c.queue_batch(vec![item]));
            resolve_later(
                bridge,
                future,
                async move { queued.await.pop() },
                |py, r| match r {
                    Some(r) => outcome(py, r, true),
                    None => Err(errors::internal(
                        "event bus internal error: a publish got no outcome",
                    )),
                },
            );
            Ok(())
        })
    }

    fn publish_batch_async(
        &self,
        bridge: &LoopBridge,
        future: Py<PyAny>,
        items: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        guard(|| {
            let py = items.py();
            let items = batch_items(items)?;
            if !self.core.is_connected() {
                return Err(BusError::from(event_bus::Error::not_connected()).into());
            }
            // Handed to the core now, from the loop's thread: publishes reach Redis in the
            // order they were made (the core encodes them on its own threads).
            let c = &self.core;
            let queued = py.detach(|| c.queue_batch(items));
            resolve_later(bridge, future, queued, |py, rs| {
                let l = PyList::empty(py);
                for r in rs {
                    l.append(outcome(py, r, false)?)?;
                }
                Ok(l.into_any().unbind())
            });
            Ok(())
        })
    }

    #[pyo3(signature = (bridge, future, pattern, handler, options=None))]
    fn subscribe_async(
        &self,
        bridge: &LoopBridge,
        future: Py<PyAny>,
        pattern: &Bound<'_, PyAny>,
        handler: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        guard(|| {
            let pattern = text(pattern, "pattern")?;
            check_callable(handler)?;
            let json = sub_options_json(options)?;
            let opts = sub_options(json.as_deref())?;
            let h: Arc<dyn Handler> = Arc::new(PyHandler {
                handler: Arc::new(handler.clone().unbind()),
                runner: bridge.inner.clone(),
            });
            let c = self.core.clone();
            resolve_later(
                bridge,
                future,
                async move { c.subscribe(&pattern, h, opts).await },
                move |py, r| {
                    let info = errors::map(r)?;
                    Ok(Py::new(
                        py,
                        Subscription::new(py, info, json.as_deref().unwrap_or(""))?,
                    )?
                    .into_any())
                },
            );
            Ok(())
        })
    }

    fn unsubscribe_async(
        &self,
        bridge: &LoopBridge,
        future: Py<PyAny>,
        subscription_id: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        guard(|| {
            let id = text(subscription_id, "subscription_id")?;
            let c = self.core.clone();
            resolve_later(
                bridge,
                future,
                async move { c.unsubscribe(&id).await },
                |py, r| {
                    Ok(errors::map(r)?
                        .into_pyobject(py)?
                        .to_owned()
                        .into_any()
                        .unbind())
                },
            );
            Ok(())
        })
    }

    #[pyo3(signature = (bridge, future, op, room))]
    fn room_async(
        &self,
        bridge: &LoopBridge,
        future: Py<PyAny>,
        op: &str,
        room: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        guard(|| {
            let room = text(room, "room")?;
            let c = self.core.clone();
            match op {
                "join" => resolve_later(
                    bridge,
                    future,
                    async move { c.join_room(&room).await },
                    |py, r| errors::map(r).map(|_| none(py)),
                ),
                "leave" => resolve_later(
                    bridge,
                    future,
                    async move { c.leave_room(&room).await },
                    |py, r| errors::map(r).map(|_| none(py)),
                ),
                _ => resolve_later(
                    bridge,
                    future,
                    async move { c.get_room_members(&room).await },
                    |py, r| Ok(errors::map(r)?.into_pyobject(py)?.into_any().unbind()),
                ),
            }
            Ok(())
        })
    }

    fn health_check_async(&self, bridge: &LoopBridge, future: Py<PyAny>) -> PyResult<()> {
        guard(|| {
            let c = self.core.clone();
            resolve_later(
                bridge,
                future,
                async move { c.health_check().await },
                |py, r| Ok(convert::ser_to_py(py, &r)?.unbind()),
            );
            Ok(())
        })
    }
}
