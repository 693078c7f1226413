//! The objects handed to Python: `Event`, `PublishResult`, `Subscription`; and
//! `matches_pattern`, the glob rule subscriptions use.

use std::sync::OnceLock;

use event_bus::{Delivery, PublishReceipt, SubscriptionInfo};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::PyTraverseError;

use crate::convert;
use crate::errors;

/// A received event: `id`, `type`, `data` (Python objects, parsed on first access),
/// `metadata` (dict, wire key order), `channel`, `pattern` (for pattern subscriptions).
#[pyclass(frozen, module = "event_bus", name = "Event")]
pub struct Event {
    d: Delivery,
    data: OnceLock<Py<PyAny>>,
    metadata: OnceLock<Py<PyAny>>,
}

impl Event {
    pub fn new(d: Delivery) -> Self {
        Event {
            d,
            data: OnceLock::new(),
            metadata: OnceLock::new(),
        }
    }
}

fn cached(
    py: Python<'_>,
    cell: &OnceLock<Py<PyAny>>,
    make: impl FnOnce() -> PyResult<Py<PyAny>>,
) -> PyResult<Py<PyAny>> {
    if let Some(v) = cell.get() {
        return Ok(v.clone_ref(py));
    }
    let v = make()?;
    let _ = cell.set(v.clone_ref(py));
    Ok(cell.get().map(|x| x.clone_ref(py)).unwrap_or(v))
}

#[pymethods]
impl Event {
    /// The cached `data` and `metadata` objects, for the cyclic GC (a handler may store the
    /// event inside its own data).
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(self.data.get())?;
        visit.call(self.metadata.get())
    }

    /// Event id (UUID v4).
    #[getter]
    fn id(&self) -> &str {
        self.d.id()
    }
    /// Event type.
    #[getter]
    fn r#type(&self) -> &str {
        self.d.event_type()
    }
    /// The data as Python objects.
    #[getter]
    fn data(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        errors::guard(|| {
            cached(py, &self.data, || {
                Ok(convert::parse_to_py(py, self.d.data_json())?.unbind())
            })
        })
    }
    /// The metadata as a dict (`source`, `timestamp`, `traceId`, ... as on the wire).
    #[getter]
    fn metadata(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        errors::guard(|| {
            cached(py, &self.metadata, || {
                Ok(convert::parse_to_py(py, &self.d.metadata_json())?.unbind())
            })
        })
    }
    /// The channel it was published on.
    #[getter]
    fn channel(&self) -> &str {
        self.d.channel()
    }
    /// The pattern of the subscription it matched (pattern subscriptions only).
    #[getter]
    fn pattern(&self) -> Option<&str> {
        self.d.pattern()
    }
    /// `metadata.source`.
    #[getter]
    fn source(&self) -> Option<&str> {
        self.d.metadata().source.as_deref()
    }
    /// `metadata.timestamp`.
    #[getter]
    fn timestamp(&self) -> Option<&str> {
        self.d.metadata().timestamp.as_deref()
    }
    /// `metadata.traceId`.
    #[getter]
    fn trace_id(&self) -> Option<&str> {
        self.d.metadata().trace_id.as_deref()
    }
    /// `metadata.correlationId`.
    #[getter]
    fn correlation_id(&self) -> Option<&str> {
        self.d.metadata().correlation_id.as_deref()
    }
    /// `metadata.userId`.
    #[getter]
    fn user_id(&self) -> Option<&str> {
        self.d.metadata().user_id.as_deref()
    }
    /// The message exactly as received.
    #[getter]
    fn raw(&self) -> &str {
        self.d.payload()
    }
    /// How a durable subscription got it (`attempt`, `stream_id`, `group`); `None` for other
    /// subscriptions.
    #[getter]
    fn delivery(&self) -> Option<DeliveryInfo> {
        self.d.delivery().map(DeliveryInfo::of)
    }
    /// `{id, type, data, metadata, channel, pattern?, delivery?}` as a dict.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("id", self.d.id())?;
        d.set_item("type", self.d.event_type())?;
        d.set_item("data", self.data(py)?)?;
        d.set_item("metadata", self.metadata(py)?)?;
        d.set_item("channel", self.d.channel())?;
        if let Some(p) = self.d.pattern() {
            d.set_item("pattern", p)?;
        }
        if let Some(info) = self.d.delivery() {
            let x = PyDict::new(py);
            x.set_item("attempt", info.attempt)?;
            x.set_item("streamId", &info.stream_id)?;
            x.set_item("group", &info.group)?;
            d.set_item("delivery", x)?;
        }
        Ok(d)
    }
    fn __repr__(&self) -> String {
        format!(
            "Event(id={:?}, type={:?}, channel={:?})",
            self.d.id(),
            self.d.event_type(),
            self.d.channel()
        )
    }
}

/// The stream entry a durable subscription's handler runs for: `attempt` (deliveries of the
/// entry to the group so far, 1 on the first), `stream_id` (its id in the type's stream) and
/// `group`.
#[pyclass(frozen, module = "event_bus", name = "Delivery")]
pub struct DeliveryInfo {
    #[pyo3(get)]
    pub attempt: u32,
    #[pyo3(get)]
    pub stream_id: String,
    #[pyo3(get)]
    pub group: String,
}

impl DeliveryInfo {
    fn of(d: &event_bus::DeliveryInfo) -> Self {
        DeliveryInfo {
            attempt: d.attempt,
            stream_id: d.stream_id.clone(),
            group: d.group.clone(),
        }
    }
}

#[pymethods]
impl DeliveryInfo {
    fn __repr__(&self) -> String {
        format!(
            "Delivery(attempt={}, stream_id={:?}, group={:?})",
            self.attempt, self.stream_id, self.group
        )
    }
}

/// Result of a publish. A failed `publish()` raises instead; in `publish_batch()` results a
/// failed item has `success=False` and `error` set to the exception it would have raised.
#[pyclass(frozen, module = "event_bus", name = "PublishResult")]
pub struct PublishResult {
    #[pyo3(get)]
    pub success: bool,
    #[pyo3(get)]
    pub event_id: String,
    #[pyo3(get)]
    pub published_at: String,
    /// Redis's PUBLISH reply: how many clients received it.
    #[pyo3(get)]
    pub delivered_to: u64,
    #[pyo3(get)]
    pub channel: Option<String>,
    #[pyo3(get)]
    pub error: Option<Py<PyAny>>,
}

impl PublishResult {
    pub fn ok(r: PublishReceipt) -> Self {
        PublishResult {
            success: true,
            event_id: r.event_id,
            published_at: r.published_at,
            delivered_to: r.delivered_to,
            channel: Some(r.channel),
            error: None,
        }
    }
}

#[pymethods]
impl PublishResult {
    /// The exception of a failed publish, for the cyclic GC (exception -> traceback -> frame ->
    /// the list holding this result is a cycle).
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.error)
    }

    fn __repr__(&self) -> String {
        format!(
            "PublishResult(success={}, event_id={:?}, published_at={:?}, delivered_to={})",
            if self.success { "True" } else { "False" },
            self.event_id,
            self.published_at,
            self.delivered_to
        )
    }
    fn __bool__(&self) -> bool {
        self.success
    }
}

/// A subscription: `id`, `pattern`, `options` (dict, camelCase as given to the core),
/// `created_at`, `active` (at the time it was returned).
#[pyclass(frozen, module = "event_bus", name = "Subscription")]
pub struct Subscription {
    #[pyo3(get)]
    pub id: String,
    #[pyo3(get)]
    pub pattern: String,
    #[pyo3(get)]
    pub options: Py<PyAny>,
    #[pyo3(get)]
    pub created_at: String,
    #[pyo3(get)]
    pub active: bool,
}

impl Subscription {
    pub fn new(py: Python<'_>, info: SubscriptionInfo, options_json: &str) -> PyResult<Self> {
        let options = if options_json.trim().is_empty() {
            PyDict::new(py).into_any().unbind()
        } else {
            convert::parse_to_py(py, options_json)?.unbind()
        };
        Ok(Subscription {
            id: info.id,
            pattern: info.pattern,
            options,
            created_at: info.created_at,
            active: info.active,
        })
    }
}

#[pymethods]
impl Subscription {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.options)
    }

    fn __repr__(&self) -> String {
        format!(
            "Subscription(id={:?}, pattern={:?}, active={})",
            self.id,
            self.pattern,
            if self.active { "True" } else { "False" }
        )
    }
}

/// Redis glob match, byte for byte as Redis 7 (`photo.*` matches `photo.processing.started`).
#[pyfunction]
pub fn matches_pattern(pattern: &str, channel: &str) -> bool {
    event_bus::matches_pattern(pattern, channel)
}
