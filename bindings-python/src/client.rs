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
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use serde_json::value::RawValue;

use crate::bridge::{AioHandler, Dispatcher, Job, LoopBridge, SyncHandler};
use crate::convert;
use crate::errors::{self, BusError};
use crate::types::{PublishResult, Subscription};

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
            Err(RecvTimeoutError::Disconnected) => {
                return Err(PyRuntimeError::new_err("event bus task failed"))
            }
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
    let b = bridge.inner.clone();
    event_bus::runtime::spawn(async move {
        let v = fut.await;
        b.push(Job::Resolve {
            future,
            make: Box::new(move |py| conv(py, v)),
        });
    });
}

const OPTION_KEYS: &[(&str, &str)] = &[
    ("trace_id", "traceId"),
    ("correlation_id", "correlationId"),
    ("user_id", "userId"),
    ("room", "room"),
    ("broadcast", "broadcast"),
    ("metadata", "metadata"),
    ("priority", "priority"),
    ("ttl", "ttl"),
    ("persistent", "persistent"),
];

fn opt_str(v: &Bound<'_, PyAny>, name: &str) -> PyResult<Option<String>> {
    if v.is_none() {
        return Ok(None);
    }
    match v.cast::<PyString>() {
        Ok(s) => Ok(Some(s.to_cow()?.into_owned())),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{name} must be str, not {}",
            v.get_type().name()?
        ))),
    }
}

fn opt_json(v: &Bound<'_, PyAny>, name: &str) -> PyResult<Option<serde_json::Value>> {
    if v.is_none() {
        return Ok(None);
    }
    let s = convert::to_json(v, name)?;
    Ok(Some(serde_json::from_str(&s).map_err(|e| {
        PyRuntimeError::new_err(format!("internal JSON error: {e}"))
    })?))
}

/// Publish options from keyword arguments (snake_case or the TS camelCase names).
pub fn build_opts(kw: Option<&Bound<'_, PyDict>>) -> PyResult<PublishOptions> {
    let mut o = PublishOptions::default();
    let Some(kw) = kw else { return Ok(o) };
    for (k, v) in kw.iter() {
        let k: String = k.extract()?;
        let Some((snake, _)) = OPTION_KEYS.iter().find(|(s, c)| *s == k || *c == k) else {
            return Err(PyTypeError::new_err(format!(
                "unexpected publish option {k:?} (expected one of: trace_id, correlation_id, user_id, room, broadcast, metadata, priority, ttl, persistent)"
            )));
        };
        match *snake {
            "trace_id" => o.trace_id = opt_str(&v, "trace_id")?,
            "correlation_id" => o.correlation_id = opt_str(&v, "correlation_id")?,
            "user_id" => o.user_id = opt_str(&v, "user_id")?,
            "room" => o.room = opt_str(&v, "room")?,
            "broadcast" => {
                o.broadcast = if v.is_none() {
                    None
                } else {
                    Some(
                        v.extract::<bool>()
                            .map_err(|_| PyTypeError::new_err("broadcast must be bool"))?,
                    )
                }
            }
            "metadata" => {
                o.metadata = match opt_json(&v, "metadata")? {
                    None => None,
                    Some(serde_json::Value::Object(m)) => Some(m),
                    Some(_) => return Err(PyTypeError::new_err("metadata must be a dict")),
                }
            }
            "priority" => o.priority = opt_json(&v, "priority")?,
            "ttl" => o.ttl = opt_json(&v, "ttl")?,
            "persistent" => o.persistent = opt_json(&v, "persistent")?,
            _ => unreachable!(),
        }
    }
    Ok(o)
}

fn raw_data(data: &Bound<'_, PyAny>) -> PyResult<Box<RawValue>> {
    let s = convert::to_json(data, "data")?;
    RawValue::from_string(s)
        .map_err(|e| PyRuntimeError::new_err(format!("internal JSON error: {e}")))
}

fn check_type(event_type: &Bound<'_, PyAny>) -> PyResult<String> {
    match event_type.cast::<PyString>() {
        Ok(s) => Ok(s.to_cow()?.into_owned()),
        Err(_) => Err(PyTypeError::new_err(format!(
            "event_type must be str, not {}",
            event_type.get_type().name()?
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
            // reference cycle: keep it out of the cyclic GC. PyO3 tracks every pyclass, and a
            // publish_batch of 1,000 results otherwise makes each gen-0 collection traverse
            // them all (about a tenth of the batched publish profile).
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

fn batch_items(items: &Bound<'_, PyAny>) -> PyResult<Vec<BatchItem>> {
    let mut out = Vec::new();
    for (i, it) in items.try_iter()?.enumerate() {
        let it = it?;
        let parsed = (|| -> PyResult<BatchItem> {
            if let Ok(d) = it.cast::<PyDict>() {
                let t = d
                    .get_item("type")?
                    .ok_or_else(|| PyTypeError::new_err("missing 'type'"))?;
                let data = d
                    .get_item("data")?
                    .unwrap_or_else(|| it.py().None().into_bound(it.py()));
                let opts = match d.get_item("options")? {
                    Some(o) if !o.is_none() => Some(
                        o.cast_into::<PyDict>()
                            .map_err(|_| PyTypeError::new_err("'options' must be a dict"))?,
                    ),
                    _ => None,
                };
                Ok(BatchItem {
                    event_type: check_type(&t)?,
                    data: raw_data(&data)?,
                    options: build_opts(opts.as_ref())?,
                })
            } else if let Ok(t) = it.cast::<PyTuple>() {
                if !(2..=3).contains(&t.len()) {
                    return Err(PyTypeError::new_err(
                        "a tuple item must be (type, data) or (type, data, options)",
                    ));
                }
                let opts = if t.len() == 3 && !t.get_item(2)?.is_none() {
                    Some(
                        t.get_item(2)?
                            .cast_into::<PyDict>()
                            .map_err(|_| PyTypeError::new_err("options must be a dict"))?,
                    )
                } else {
                    None
                };
                Ok(BatchItem {
                    event_type: check_type(&t.get_item(0)?)?,
                    data: raw_data(&t.get_item(1)?)?,
                    options: build_opts(opts.as_ref())?,
                })
            } else {
                Err(PyTypeError::new_err(format!(
                    "expected a dict {{'type', 'data', 'options'}} or a tuple, not {}",
                    it.get_type().name()?
                )))
            }
        })();
        match parsed {
            Ok(b) => out.push(b),
            Err(e) => {
                let py = it.py();
                let msg = format!("publish_batch item {i}: {}", e.value(py));
                let ne = PyErr::from_type(e.get_type(py), msg);
                return Err(ne);
            }
        }
    }
    Ok(out)
}

fn sub_options(json: Option<&str>) -> PyResult<SubscriptionOptions> {
    errors::map(SubscriptionOptions::from_json(json.unwrap_or("")))
}

fn check_callable(h: &Bound<'_, PyAny>) -> PyResult<()> {
    if !h.is_callable() {
        return Err(PyTypeError::new_err(format!(
            "handler must be callable, not {}",
            h.get_type().name()?
        )));
    }
    Ok(())
}

fn none(py: Python<'_>) -> Py<PyAny> {
    py.None()
}

/// The native client. Thread-safe; every wait releases the GIL.
#[pyclass(frozen, module = "event_bus._native")]
pub struct NativeClient {
    core: EventBusClient,
    dispatcher: Arc<Dispatcher>,
}

#[pymethods]
impl NativeClient {
    #[new]
    fn py_new(config_json: &str) -> PyResult<Self> {
        Ok(NativeClient {
            core: errors::map(EventBusClient::from_json(config_json))?,
            dispatcher: Dispatcher::new(),
        })
    }

    /// The service name from the config.
    #[getter]
    fn service_name(&self) -> String {
        self.core.settings().service_name.clone()
    }

    fn is_connected(&self) -> bool {
        self.core.is_connected()
    }

    // ------------------------------------------------------------ blocking

    fn connect(&self, py: Python<'_>) -> PyResult<()> {
        self.dispatcher.reset();
        let c = self.core.clone();
        errors::map(wait(py, async move { c.connect().await })?)
    }

    /// `from_handler`: called by one of this client's handlers (do not wait for handlers).
    #[pyo3(signature = (from_handler=false))]
    fn disconnect(&self, py: Python<'_>, from_handler: bool) -> PyResult<()> {
        let c = self.core.clone();
        errors::map(wait(
            py,
            async move { c.disconnect_from(from_handler).await },
        )?)
    }

    /// Body of the dispatcher thread (blocking client).
    fn run_dispatcher(&self, py: Python<'_>) -> PyResult<()> {
        self.dispatcher.run(py)
    }

    /// Ask the dispatcher thread to exit once its queue is empty.
    fn stop_dispatcher(&self) {
        self.dispatcher.request_stop();
    }

    #[pyo3(signature = (event_type, data, **options))]
    fn publish(
        &self,
        py: Python<'_>,
        event_type: &Bound<'_, PyAny>,
        data: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let t = check_type(event_type)?;
        let d = raw_data(data)?;
        let o = build_opts(options)?;
        let c = self.core.clone();
        let r = wait(py, async move { c.publish(&t, &d, &o).await })?;
        outcome(py, r, true)
    }

    fn publish_batch<'py>(
        &self,
        py: Python<'py>,
        items: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
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
    }

    #[pyo3(signature = (pattern, handler, options_json=None))]
    fn subscribe(
        &self,
        py: Python<'_>,
        pattern: String,
        handler: &Bound<'_, PyAny>,
        options_json: Option<String>,
    ) -> PyResult<Subscription> {
        check_callable(handler)?;
        let opts = sub_options(options_json.as_deref())?;
        let h: Arc<dyn Handler> = Arc::new(SyncHandler {
            handler: Arc::new(handler.clone().unbind()),
            dispatcher: self.dispatcher.clone(),
        });
        let c = self.core.clone();
        let info = errors::map(wait(
            py,
            async move { c.subscribe(&pattern, h, opts).await },
        )?)?;
        Subscription::new(py, info, options_json.as_deref().unwrap_or(""))
    }

    fn unsubscribe(&self, py: Python<'_>, subscription_id: String) -> PyResult<bool> {
        let c = self.core.clone();
        errors::map(wait(
            py,
            async move { c.unsubscribe(&subscription_id).await },
        )?)
    }

    fn join_room(&self, py: Python<'_>, room: String) -> PyResult<()> {
        let c = self.core.clone();
        errors::map_room(wait(py, async move { c.join_room(&room).await })?)
    }

    fn leave_room(&self, py: Python<'_>, room: String) -> PyResult<()> {
        let c = self.core.clone();
        errors::map_room(wait(py, async move { c.leave_room(&room).await })?)
    }

    fn get_room_members(&self, py: Python<'_>, room: String) -> PyResult<Vec<String>> {
        let c = self.core.clone();
        errors::map_room(wait(py, async move { c.get_room_members(&room).await })?)
    }

    fn health_check(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let c = self.core.clone();
        let r = wait(py, async move { c.health_check().await })?;
        Ok(convert::ser_to_py(py, &r)?.unbind())
    }

    fn get_stats(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let c = self.core.clone();
        let s = py.detach(move || c.stats());
        Ok(convert::ser_to_py(py, &s)?.unbind())
    }

    /// Register `callback(state: dict)` for connection state changes. It runs on a runtime
    /// thread (briefly holding the GIL); the asyncio wrapper forwards it to its loop.
    fn on_state(&self, callback: Py<PyAny>) -> u64 {
        self.core
            .on_state(Arc::new(move |ev: &event_bus::StateEvent| {
                let v = serde_json::to_value(ev).unwrap_or_default();
                crate::host_call(|py| {
                    let r = convert::to_py(py, &v).and_then(|d| callback.bind(py).call1((d,)));
                    if let Err(e) = r {
                        e.write_unraisable(py, None);
                    }
                });
            }))
    }

    fn off_state(&self, listener_id: u64) -> bool {
        self.core.off_state(listener_id)
    }

    // ------------------------------------------------------------ asyncio

    fn connect_async(&self, bridge: &LoopBridge, future: Py<PyAny>) {
        let c = self.core.clone();
        resolve_later(bridge, future, async move { c.connect().await }, |py, r| {
            errors::map(r).map(|_| none(py))
        });
    }

    #[pyo3(signature = (bridge, future, from_handler=false))]
    fn disconnect_async(&self, bridge: &LoopBridge, future: Py<PyAny>, from_handler: bool) {
        let c = self.core.clone();
        resolve_later(
            bridge,
            future,
            async move { c.disconnect_from(from_handler).await },
            |py, r| errors::map(r).map(|_| none(py)),
        );
    }

    #[pyo3(signature = (bridge, future, event_type, data, **options))]
    fn publish_async(
        &self,
        bridge: &LoopBridge,
        future: Py<PyAny>,
        event_type: &Bound<'_, PyAny>,
        data: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let item = BatchItem {
            event_type: check_type(event_type)?,
            data: raw_data(data)?,
            options: build_opts(options)?,
        };
        // Handed to the core now, from the loop's thread: publishes reach Redis in the order
        // they were made (the core encodes them on its own threads).
        let c = &self.core;
        let queued = event_type.py().detach(|| c.queue_batch(vec![item]));
        resolve_later(
            bridge,
            future,
            async move { queued.await.pop().expect("one outcome") },
            |py, r| outcome(py, r, true),
        );
        Ok(())
    }

    fn publish_batch_async(
        &self,
        bridge: &LoopBridge,
        future: Py<PyAny>,
        items: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let py = items.py();
        let items = batch_items(items)?;
        if !self.core.is_connected() {
            return Err(BusError::from(event_bus::Error::not_connected()).into());
        }
        // Handed to the core now, from the loop's thread: publishes reach Redis in the order
        // they were made (the core encodes them on its own threads).
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
    }

    #[pyo3(signature = (bridge, future, pattern, handler, options_json=None))]
    fn subscribe_async(
        &self,
        bridge: &LoopBridge,
        future: Py<PyAny>,
        pattern: String,
        handler: &Bound<'_, PyAny>,
        options_json: Option<String>,
    ) -> PyResult<()> {
        check_callable(handler)?;
        let opts = sub_options(options_json.as_deref())?;
        let h: Arc<dyn Handler> = Arc::new(AioHandler {
            handler: Arc::new(handler.clone().unbind()),
            bridge: bridge.inner.clone(),
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
                    Subscription::new(py, info, options_json.as_deref().unwrap_or(""))?,
                )?
                .into_any())
            },
        );
        Ok(())
    }

    fn unsubscribe_async(&self, bridge: &LoopBridge, future: Py<PyAny>, subscription_id: String) {
        let c = self.core.clone();
        resolve_later(
            bridge,
            future,
            async move { c.unsubscribe(&subscription_id).await },
            |py, r| {
                Ok(errors::map(r)?
                    .into_pyobject(py)?
                    .to_owned()
                    .into_any()
                    .unbind())
            },
        );
    }

    #[pyo3(signature = (bridge, future, op, room))]
    fn room_async(&self, bridge: &LoopBridge, future: Py<PyAny>, op: &str, room: String) {
        let c = self.core.clone();
        match op {
            "join" => resolve_later(
                bridge,
                future,
                async move { c.join_room(&room).await },
                |py, r| errors::map_room(r).map(|_| none(py)),
            ),
            "leave" => resolve_later(
                bridge,
                future,
                async move { c.leave_room(&room).await },
                |py, r| errors::map_room(r).map(|_| none(py)),
            ),
            _ => resolve_later(
                bridge,
                future,
                async move { c.get_room_members(&room).await },
                |py, r| Ok(errors::map_room(r)?.into_pyobject(py)?.into_any().unbind()),
            ),
        }
    }

    fn health_check_async(&self, bridge: &LoopBridge, future: Py<PyAny>) {
        let c = self.core.clone();
        resolve_later(
            bridge,
            future,
            async move { c.health_check().await },
            |py, r| Ok(convert::ser_to_py(py, &r)?.unbind()),
        );
    }
}
