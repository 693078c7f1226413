//! Subscription filters: the TS package's `SubscriptionFilter` with its eight operators and
//! JavaScript comparison semantics (`===`, `String(x).includes`, `>`/`<` with coercion).
//! The TS package declared filters but never applied them; here they work.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};
use crate::event::Delivery;

/// `{conditions: [...], operator: 'AND' | 'OR'}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SubscriptionFilter {
    /// The conditions.
    pub conditions: Vec<FilterCondition>,
    /// How conditions combine (default AND).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

/// `{field, operator, value}`; `field` is a dot path into the event (`data.userId`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FilterCondition {
    /// Dot path.
    pub field: String,
    /// One of the eight operators.
    pub operator: String,
    /// Compared value.
    #[serde(default)]
    pub value: Value,
}

const OPERATORS: [&str; 8] = [
    "equals",
    "notEquals",
    "contains",
    "notContains",
    "greaterThan",
    "lessThan",
    "in",
    "notIn",
];

impl SubscriptionFilter {
    /// Reject unknown operators up front (the TS package silently treated them as false).
    pub fn check(&self) -> Result<()> {
        for (i, c) in self.conditions.iter().enumerate() {
            if !OPERATORS.contains(&c.operator.as_str()) {
                return Err(Error::new(
                    ErrorKind::Validation,
                    format!(
                        "Invalid subscription options: filter.conditions[{i}].operator must be one of {} (got {})",
                        OPERATORS.map(|o| format!("\"{o}\"")).join(", "),
                        Value::String(c.operator.clone())
                    ),
                ));
            }
        }
        match self.operator.as_deref() {
            None | Some("AND") | Some("OR") => Ok(()),
            Some(o) => Err(Error::new(
                ErrorKind::Validation,
                format!(
                    "Invalid subscription options: filter.operator must be \"AND\" or \"OR\" (got {})",
                    Value::String(o.to_string())
                ),
            )),
        }
    }

    /// Does the event pass?
    pub fn matches(&self, ev: &Delivery) -> bool {
        let mut results = self.conditions.iter().map(|c| {
            let field = ev.field(&c.field);
            evaluate(field.as_ref(), &c.operator, &c.value)
        });
        if self.operator.as_deref() == Some("OR") {
            results.any(|r| r)
        } else {
            results.all(|r| r)
        }
    }
}

/// JS `===` on JSON values: primitives by value, objects and arrays never equal (distinct
/// references after JSON.parse).
fn strict_eq(a: Option<&Value>, b: &Value) -> bool {
    match (a, b) {
        (None, _) => false, // undefined === anything JSON is false
        (Some(Value::Null), Value::Null) => true,
        (Some(Value::Bool(x)), Value::Bool(y)) => x == y,
        (Some(Value::Number(x)), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Some(Value::String(x)), Value::String(y)) => x == y,
        _ => false,
    }
}

fn js_number_to_string(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else if f == f.trunc() && f.abs() < 1e21 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// JS `String(x)`.
fn js_string(v: Option<&Value>) -> String {
    match v {
        None => "undefined".into(),
        Some(Value::Null) => "null".into(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => js_number_to_string(n.as_f64().unwrap_or(f64::NAN)),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| match x {
                Value::Null => String::new(),
                other => js_string(Some(other)),
            })
            .collect::<Vec<_>>()
            .join(","),
        Some(Value::Object(_)) => "[object Object]".into(),
    }
}

/// JS `ToNumber`.
fn js_number(v: Option<&Value>) -> f64 {
    match v {
        None => f64::NAN,
        Some(Value::Null) => 0.0,
        Some(Value::Bool(b)) => f64::from(u8::from(*b)),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(Value::String(s)) => {
            let t = s.trim();
            if t.is_empty() {
                0.0
            } else {
                t.parse().unwrap_or(f64::NAN)
            }
        }
        Some(Value::Array(_)) | Some(Value::Object(_)) => {
            js_number(Some(&Value::String(js_string(v))))
        }
    }
}

/// JS `a < b` (abstract relational comparison) on JSON values.
fn js_less(a: Option<&Value>, b: Option<&Value>) -> bool {
    let prim = |v: Option<&Value>| -> Option<Value> {
        match v {
            Some(Value::Array(_)) | Some(Value::Object(_)) => Some(Value::String(js_string(v))),
            other => other.cloned(),
        }
    };
    let (pa, pb) = (prim(a), prim(b));
    if let (Some(Value::String(x)), Some(Value::String(y))) = (&pa, &pb) {
        return x.encode_utf16().lt(y.encode_utf16());
    }
    let (x, y) = (js_number(pa.as_ref()), js_number(pb.as_ref()));
    x < y
}

fn evaluate(field: Option<&Value>, op: &str, value: &Value) -> bool {
    match op {
        "equals" => strict_eq(field, value),
        "notEquals" => !strict_eq(field, value),
        "contains" => js_string(field).contains(&js_string(Some(value))),
        "notContains" => !js_string(field).contains(&js_string(Some(value))),
        "greaterThan" => js_less(Some(value), field),
        "lessThan" => js_less(field, Some(value)),
        "in" => value
            .as_array()
            .is_some_and(|a| a.iter().any(|x| strict_eq(field, x))),
        "notIn" => value
            .as_array()
            .is_some_and(|a| !a.iter().any(|x| strict_eq(field, x))),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev() -> Delivery {
        let payload = r#"{"id":"1","type":"photo.uploaded","data":{"userId":"u1","size":10,"tags":["a","b"]},"metadata":{"source":"s","timestamp":"2026-01-01T00:00:00.000Z","traceId":"t","version":"1.0.0"}}"#;
        Delivery::decode("photo.uploaded", None, payload.as_bytes()).unwrap()
    }

    fn f(conds: Value, op: &str) -> SubscriptionFilter {
        serde_json::from_value(json!({"conditions": conds, "operator": op})).unwrap()
    }

    #[test]
    fn operators() {
        let e = ev();
        let t = |c: Value| f(json!([c]), "AND").matches(&e);
        assert!(t(
            json!({"field":"data.userId","operator":"equals","value":"u1"})
        ));
        assert!(!t(
            json!({"field":"data.userId","operator":"equals","value":"u2"})
        ));
        assert!(t(
            json!({"field":"data.userId","operator":"notEquals","value":"u2"})
        ));
        assert!(t(
            json!({"field":"data.tags","operator":"contains","value":"a,b"})
        ));
        assert!(t(
            json!({"field":"type","operator":"notContains","value":"video"})
        ));
        assert!(t(
            json!({"field":"data.size","operator":"greaterThan","value":5})
        ));
        assert!(t(
            json!({"field":"data.size","operator":"lessThan","value":"11"})
        ));
        assert!(t(
            json!({"field":"data.userId","operator":"in","value":["u0","u1"]})
        ));
        assert!(t(
            json!({"field":"data.userId","operator":"notIn","value":["u0"]})
        ));
        assert!(!t(
            json!({"field":"data.missing","operator":"in","value":["u0"]})
        ));
        assert!(t(
            json!({"field":"metadata.source","operator":"equals","value":"s"})
        ));
    }

    #[test]
    fn and_or() {
        let e = ev();
        let c = json!([
            {"field":"data.userId","operator":"equals","value":"u1"},
            {"field":"data.size","operator":"equals","value":99}
        ]);
        assert!(!f(c.clone(), "AND").matches(&e));
        assert!(f(c, "OR").matches(&e));
        let bad: SubscriptionFilter = serde_json::from_value(
            json!({"conditions":[{"field":"x","operator":"like","value":1}]}),
        )
        .unwrap();
        assert!(bad.check().is_err());
    }
}
