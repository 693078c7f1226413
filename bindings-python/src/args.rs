//! A `NativeClient` call's arguments as the core's values, and the core's results as Python:
//! text arguments, event data as JSON, publish options (snake_case keywords mapped to the
//! camelCase keys; the core judges every value), `publish_batch` items, subscription options,
//! and publish outcomes as `PublishResult` or the exception. Shared by the blocking and the
//! asyncio methods, which differ only in how they wait ([`crate::run`]).

use std::sync::Arc;

use event_bus::{
    BatchItem, Handler, PublishOptions, PublishOutcome, SubscriptionOptions, SubscriptionTarget,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyMapping, PyString, PyTuple};
use serde_json::value::RawValue;

use crate::convert;
use crate::errors::{self, BusError};
use crate::handler::{PyHandler, Runner};
use crate::types::PublishResult;

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
pub fn publish_options(
    options: Option<&Bound<'_, PyAny>>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<PublishOptions> {
    match publish_options_json(options, kwargs)? {
        None => Ok(PublishOptions::default()),
        Some(json) => errors::map(PublishOptions::from_json(&json)),
    }
}

pub fn raw_data(data: &Bound<'_, PyAny>) -> PyResult<Box<RawValue>> {
    let s = convert::to_json(data, "data")?;
    RawValue::from_string(s).map_err(|e| errors::internal(format!("data written as bad JSON: {e}")))
}

/// A str argument (`event_type`, `pattern`, a room or subscription id) as Rust text.
pub fn text(v: &Bound<'_, PyAny>, name: &str) -> PyResult<String> {
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
pub fn outcome(py: Python<'_>, o: PublishOutcome, raise: bool) -> PyResult<Py<PyAny>> {
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

/// The outcomes of a `publish_batch`, in order, each a `PublishResult` (a failure's exception
/// in its `error`).
pub fn outcome_list(py: Python<'_>, outcomes: Vec<PublishOutcome>) -> PyResult<Bound<'_, PyList>> {
    let l = PyList::empty(py);
    for o in outcomes {
        l.append(outcome(py, o, false)?)?;
    }
    Ok(l)
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

pub fn batch_items(items: &Bound<'_, PyAny>) -> PyResult<Vec<BatchItem>> {
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

/// What a subscription listens to: a `str` is a glob pattern (or, durable, one event type), a
/// list or tuple of `str` a list of event types (durable subscriptions only; the core says so).
fn target(v: &Bound<'_, PyAny>) -> PyResult<SubscriptionTarget> {
    if v.cast::<PyString>().is_ok() {
        return Ok(SubscriptionTarget::Pattern(text(v, "pattern")?));
    }
    if v.cast::<PyList>().is_ok() || v.cast::<PyTuple>().is_ok() {
        let mut types = Vec::new();
        for item in v.try_iter()? {
            types.push(text(&item?, "event type")?);
        }
        return Ok(SubscriptionTarget::Types(types));
    }
    Err(errors::invalid_argument(format!(
        "pattern must be str or a list of event types, not {}",
        v.get_type().name()?
    )))
}

/// The arguments of `subscribe` and `subscribe_async`, checked and converted.
pub struct SubscribeArgs {
    /// The pattern, or the event types of a durable subscription.
    pub target: SubscriptionTarget,
    /// The Python handler, queuing its calls on the client's runner.
    pub handler: Arc<dyn Handler>,
    /// The options judged by the core.
    pub options: SubscriptionOptions,
    /// The options as given (JSON, `""` for none), kept on the `Subscription`.
    pub options_json: String,
}

/// Check and convert a subscription's `pattern`, `handler` and `options`; the handler's calls
/// will run on `runner`.
pub fn subscribe_args<R: Runner>(
    pattern: &Bound<'_, PyAny>,
    handler: &Bound<'_, PyAny>,
    options: Option<&Bound<'_, PyAny>>,
    runner: Arc<R>,
    late: event_bus::LateCompletions,
) -> PyResult<SubscribeArgs> {
    let target = target(pattern)?;
    check_callable(handler)?;
    let json = sub_options_json(options)?;
    let options = sub_options(json.as_deref())?;
    Ok(SubscribeArgs {
        target,
        handler: Arc::new(PyHandler {
            handler: Arc::new(handler.clone().unbind()),
            runner,
            late,
        }),
        options,
        options_json: json.unwrap_or_default(),
    })
}
