//! `NativeClient`: the core client with blocking methods (for `event_bus.EventBusClient`) and
//! `*_async` methods that resolve an asyncio future through a [`LoopBridge`] (for
//! `event_bus.asyncio.EventBusClient`). The Python classes in `event_bus/` are thin wrappers.
//!
//! Both kinds of method stay in this one `#[pymethods]` block (PyO3 takes one per class); each
//! is only the call to the core: converting arguments and results lives in [`crate::args`],
//! waiting and resolving futures in [`crate::run`], running handlers in
//! [`crate::dispatcher`] (blocking) and [`crate::loop_bridge`] (asyncio).

use std::future::Future;
use std::sync::Arc;

use event_bus::{BatchItem, EventBusClient, PublishOutcome};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::args::{
    batch_items, outcome, outcome_list, publish_options, raw_data, subscribe_args, text,
};
use crate::convert;
use crate::dispatcher::Dispatcher;
use crate::errors::{self, guard, BusError};
use crate::loop_bridge::LoopBridge;
use crate::run::{resolve_later, wait};
use crate::types::Subscription;

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

impl NativeClient {
    /// Hand `items` to the core now, from the calling (the loop's) thread: publishes reach
    /// Redis in the order they were made (the core encodes them on its own threads). The
    /// future gives their outcomes.
    fn queue(
        &self,
        py: Python<'_>,
        items: Vec<BatchItem>,
    ) -> impl Future<Output = Vec<PublishOutcome>> + Send + 'static {
        let c = &self.core;
        py.detach(|| c.queue_batch(items))
    }

    /// A publish whose arguments could not be read (data JSON cannot carry, options the core
    /// refused) is still a failed publish: the core counts and logs it, then the exception
    /// goes to the caller.
    fn refused<T>(&self, py: Python<'_>, read: PyResult<T>) -> PyResult<T> {
        if let Err(e) = &read {
            let value = e.value(py);
            let kind = value
                .getattr("code")
                .and_then(|c| c.extract::<String>())
                .ok()
                .and_then(|c| event_bus::ErrorKind::from_code(&c))
                .unwrap_or(event_bus::ErrorKind::InvalidArgument);
            let message = value.str().map(|m| m.to_string()).unwrap_or_default();
            self.core
                .refused_publish(event_bus::Error::new(kind, message));
        }
        read
    }
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
            let (t, d, o) = self.refused(
                py,
                (|| {
                    Ok((
                        text(event_type, "event_type")?,
                        raw_data(data)?,
                        publish_options(options, kwargs)?,
                    ))
                })(),
            )?;
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
            outcome_list(py, rs)
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
            let a = subscribe_args(
                pattern,
                handler,
                options,
                self.dispatcher.clone(),
                self.core.late_completions(),
            )?;
            let c = self.core.clone();
            let info = errors::map(wait(py, async move {
                c.subscribe_target(a.target, a.handler, a.options).await
            })?)?;
            Subscription::new(py, info, &a.options_json)
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

    /// The group's dead letters of `event_type` (oldest first) as a list of dicts
    /// `{event, error, deliveries, failedAt, streamId, originalId}`.
    #[pyo3(signature = (event_type, group, count=None))]
    fn dead_letters(
        &self,
        py: Python<'_>,
        event_type: &Bound<'_, PyAny>,
        group: &Bound<'_, PyAny>,
        count: Option<usize>,
    ) -> PyResult<Py<PyAny>> {
        guard(|| {
            let (t, g) = (text(event_type, "event_type")?, text(group, "group")?);
            let c = self.core.clone();
            let json = errors::map(wait(py, async move {
                c.dead_letters_json(&t, &g, count).await
            })?)?;
            Ok(convert::parse_to_py(py, &json)?.unbind())
        })
    }

    /// Put the group's dead letters of `event_type` back on its stream; how many.
    #[pyo3(signature = (event_type, group, count=None))]
    fn replay_dead_letters(
        &self,
        py: Python<'_>,
        event_type: &Bound<'_, PyAny>,
        group: &Bound<'_, PyAny>,
        count: Option<usize>,
    ) -> PyResult<u64> {
        guard(|| {
            let (t, g) = (text(event_type, "event_type")?, text(group, "group")?);
            let c = self.core.clone();
            errors::map(wait(py, async move {
                c.replay_dead_letters(&t, &g, count).await
            })?)
        })
    }

    /// Delete the group's dead letters of `event_type`; how many.
    fn purge_dead_letters(
        &self,
        py: Python<'_>,
        event_type: &Bound<'_, PyAny>,
        group: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        guard(|| {
            let (t, g) = (text(event_type, "event_type")?, text(group, "group")?);
            let c = self.core.clone();
            errors::map(wait(py, async move { c.purge_dead_letters(&t, &g).await })?)
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

    /// The Prometheus text exposition of this client (no I/O).
    fn metrics(&self, py: Python<'_>) -> PyResult<String> {
        guard(|| {
            let c = self.core.clone();
            Ok(py.detach(move || c.metrics()))
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
                    crate::host::host_call(|py| {
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
            let item = self.refused(
                event_type.py(),
                (|| {
                    Ok(BatchItem {
                        event_type: text(event_type, "event_type")?,
                        data: raw_data(data)?,
                        options: publish_options(options, kwargs)?,
                    })
                })(),
            )?;
            let queued = self.queue(event_type.py(), vec![item]);
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
            let queued = self.queue(py, items);
            resolve_later(bridge, future, queued, |py, rs| {
                Ok(outcome_list(py, rs)?.into_any().unbind())
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
            let a = subscribe_args(
                pattern,
                handler,
                options,
                bridge.inner.clone(),
                self.core.late_completions(),
            )?;
            let json = a.options_json;
            let c = self.core.clone();
            resolve_later(
                bridge,
                future,
                async move { c.subscribe_target(a.target, a.handler, a.options).await },
                move |py, r| {
                    let info = errors::map(r)?;
                    Ok(Py::new(py, Subscription::new(py, info, &json)?)?.into_any())
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

    /// `op`: `list` (resolves to the list of dicts), `replay` or `purge` (to how many);
    /// `count` is ignored by `purge`.
    #[pyo3(signature = (bridge, future, op, event_type, group, count=None))]
    #[allow(clippy::too_many_arguments)]
    fn dead_letters_async(
        &self,
        bridge: &LoopBridge,
        future: Py<PyAny>,
        op: &str,
        event_type: &Bound<'_, PyAny>,
        group: &Bound<'_, PyAny>,
        count: Option<usize>,
    ) -> PyResult<()> {
        guard(|| {
            let (t, g) = (text(event_type, "event_type")?, text(group, "group")?);
            let c = self.core.clone();
            let number = |py: Python<'_>, n: u64| -> PyResult<Py<PyAny>> {
                Ok(n.into_pyobject(py)?.into_any().unbind())
            };
            match op {
                "list" => resolve_later(
                    bridge,
                    future,
                    async move { c.dead_letters_json(&t, &g, count).await },
                    |py, r| Ok(convert::parse_to_py(py, &errors::map(r)?)?.unbind()),
                ),
                "replay" => resolve_later(
                    bridge,
                    future,
                    async move { c.replay_dead_letters(&t, &g, count).await },
                    move |py, r| number(py, errors::map(r)?),
                ),
                _ => resolve_later(
                    bridge,
                    future,
                    async move { c.purge_dead_letters(&t, &g).await },
                    move |py, r| number(py, errors::map(r)?),
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
