//! Python objects <-> JSON, in Rust (no `json` module round trip on the hot path).
//!
//! Python -> JSON follows `json.dumps(allow_nan=False)` for the types JSON can carry (dict with
//! str keys, list, tuple, str, int, float, bool, None) and refuses everything else, and text
//! that is not valid UTF-8 (lone surrogates), with an `InvalidArgumentError` (a `TypeError`)
//! that names the type and where it was found (`data['tags']`); NaN, infinities and nesting
//! deeper than 200 levels (or a reference cycle) are a `ValidationError` (a `ValueError`), as
//! `json.dumps` raises `ValueError` for them. These are the face's own errors: what the value
//! means (sizes, required fields, option types) is judged by the core.

use event_bus::event::push_json_str;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::Value;

use crate::errors;

const MAX_DEPTH: usize = 200;

enum Kind {
    Type,
    Value,
}

struct ConvErr {
    kind: Kind,
    msg: String,
    path: Vec<String>,
}

fn type_name(o: &Bound<'_, PyAny>) -> String {
    o.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn write(out: &mut String, o: &Bound<'_, PyAny>, depth: usize) -> Result<(), ConvErr> {
    let fail = |kind, msg: String| ConvErr {
        kind,
        msg,
        path: Vec::new(),
    };
    if depth > MAX_DEPTH {
        return Err(fail(
            Kind::Value,
            "data is nested too deeply (or contains a reference cycle)".into(),
        ));
    }
    if o.is_none() {
        out.push_str("null");
    } else if let Ok(s) = o.cast::<PyString>() {
        let s = s
            .to_cow()
            .map_err(|e| fail(Kind::Type, format!("string is not valid UTF-8: {e}")))?;
        push_json_str(out, &s);
    } else if let Ok(b) = o.cast::<PyBool>() {
        out.push_str(if b.is_true() { "true" } else { "false" });
    } else if o.cast::<PyInt>().is_ok() {
        if let Ok(i) = o.extract::<i64>() {
            out.push_str(itoa(i).as_str());
        } else {
            // Beyond i64: Python's decimal text is valid JSON.
            let s = o
                .str()
                .and_then(|s| s.to_cow().map(|c| c.into_owned()))
                .map_err(|e| fail(Kind::Value, e.to_string()))?;
            out.push_str(&s);
        }
    } else if let Ok(f) = o.cast::<PyFloat>() {
        let v = f.value();
        if !v.is_finite() {
            return Err(fail(
                Kind::Value,
                format!("Out of range float values are not JSON compliant: {v}"),
            ));
        }
        out.push_str(&serde_json::to_string(&v).expect("finite float"));
    } else if let Ok(d) = o.cast::<PyDict>() {
        out.push('{');
        let mut first = true;
        for (k, v) in d.iter() {
            let key = match k.cast::<PyString>() {
                Ok(s) => s
                    .to_cow()
                    .map_err(|e| fail(Kind::Type, format!("key is not valid UTF-8: {e}")))?
                    .into_owned(),
                Err(_) => {
                    return Err(fail(
                        Kind::Type,
                        format!("keys must be str, not {}", type_name(&k)),
                    ))
                }
            };
            if !first {
                out.push(',');
            }
            first = false;
            push_json_str(out, &key);
            out.push(':');
            if let Err(mut e) = write(out, &v, depth + 1) {
                e.path.push(format!(
                    "['{}']",
                    key.replace('\\', "\\\\").replace('\'', "\\'")
                ));
                return Err(e);
            }
        }
        out.push('}');
    } else if o.cast::<PyList>().is_ok() || o.cast::<PyTuple>().is_ok() {
        out.push('[');
        for (i, v) in o
            .try_iter()
            .map_err(|e| fail(Kind::Type, e.to_string()))?
            .enumerate()
        {
            let v = v.map_err(|e| fail(Kind::Type, e.to_string()))?;
            if i > 0 {
                out.push(',');
            }
            if let Err(mut e) = write(out, &v, depth + 1) {
                e.path.push(format!("[{i}]"));
                return Err(e);
            }
        }
        out.push(']');
    } else {
        return Err(fail(
            Kind::Type,
            format!("Object of type {} is not JSON serializable", type_name(o)),
        ));
    }
    Ok(())
}

fn itoa(i: i64) -> String {
    i.to_string()
}

/// Serialize `o` as JSON text; `what` names it in errors (`data`, `metadata`).
pub fn to_json(o: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    let mut out = String::with_capacity(512);
    match write(&mut out, o, 0) {
        Ok(()) => Ok(out),
        Err(e) => {
            let path: String = e.path.iter().rev().map(String::as_str).collect();
            let msg = format!("{} (at {what}{path})", e.msg);
            Err(match e.kind {
                Kind::Type => errors::invalid_argument(msg),
                Kind::Value => errors::validation(msg),
            })
        }
    }
}

/// A JSON value as Python objects (dict keeps the key order).
pub fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(a) => {
            let l = PyList::empty(py);
            for x in a {
                l.append(to_py(py, x)?)?;
            }
            l.into_any()
        }
        Value::Object(m) => {
            let d = PyDict::new(py);
            for (k, x) in m {
                d.set_item(k, to_py(py, x)?)?;
            }
            d.into_any()
        }
    })
}

/// Parse JSON text into Python objects, in one pass (no `Value` tree in between): what
/// `json.loads` gives, with dict keys in text order. The text comes from the core or from
/// [`to_json`], so a parse failure is an `InternalError`.
pub fn parse_to_py<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_str(text);
    let v = PySeed(py)
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| errors::internal(format!("invalid JSON from the core: {e}")))?;
    Ok(v)
}

/// Builds the Python object of one JSON value as serde_json reads it.
struct PySeed<'py>(Python<'py>);

impl<'de, 'py> serde::de::DeserializeSeed<'de> for PySeed<'py> {
    type Value = Bound<'py, PyAny>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// A dict key as a Python str.
struct PyKey<'py>(Python<'py>);

impl<'de, 'py> serde::de::DeserializeSeed<'de> for PyKey<'py> {
    type Value = Bound<'py, PyString>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, 'py> serde::de::Visitor<'de> for PyKey<'py> {
    type Value = Bound<'py, PyString>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(PyString::new(self.0, s))
    }
}

fn py_err<E: serde::de::Error>(e: PyErr) -> E {
    E::custom(e)
}

impl<'de, 'py> serde::de::Visitor<'de> for PySeed<'py> {
    type Value = Bound<'py, PyAny>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.0.None().into_bound(self.0))
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Self::Value, E> {
        Ok(PyBool::new(self.0, b).to_owned().into_any())
    }

    fn visit_i64<E: serde::de::Error>(self, i: i64) -> Result<Self::Value, E> {
        let Ok(x) = i.into_pyobject(self.0);
        Ok(x.into_any())
    }

    fn visit_u64<E: serde::de::Error>(self, u: u64) -> Result<Self::Value, E> {
        let Ok(x) = u.into_pyobject(self.0);
        Ok(x.into_any())
    }

    fn visit_f64<E: serde::de::Error>(self, f: f64) -> Result<Self::Value, E> {
        let Ok(x) = f.into_pyobject(self.0);
        Ok(x.into_any())
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(PyString::new(self.0, s).into_any())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let l = PyList::empty(self.0);
        while let Some(x) = seq.next_element_seed(PySeed(self.0))? {
            l.append(x).map_err(py_err)?;
        }
        Ok(l.into_any())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let d = PyDict::new(self.0);
        while let Some(k) = map.next_key_seed(PyKey(self.0))? {
            let v = map.next_value_seed(PySeed(self.0))?;
            d.set_item(k, v).map_err(py_err)?;
        }
        Ok(d.into_any())
    }
}

/// Any serializable Rust value as Python objects.
pub fn ser_to_py<'py, T: serde::Serialize>(py: Python<'py>, t: &T) -> PyResult<Bound<'py, PyAny>> {
    let v = serde_json::to_value(t).map_err(|e| errors::internal(e.to_string()))?;
    to_py(py, &v)
}
