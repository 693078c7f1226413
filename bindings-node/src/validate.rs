//! Free functions of the addon: the core's validator, its glob matcher, its log line format,
//! and the group state values. The public TS-compatible classes of `js/index.js`
//! (`EventValidator`, `Logger`, `matchesPattern`) call these and add no rule of their own.

use event_bus::logging::LogRecord;
use event_bus::{ErrorKind, EventValidator, LogLevel};
use napi::bindgen_prelude::{Either, Unknown};
use napi_derive::napi;
use serde_json::Value;

use crate::error::{face_error, guard, js_error, Code};

/// A group's event state (byte) in `NativeClient.groupStates`: no outcome yet. The values are
/// the core's; JS reads them from here rather than repeating them.
#[napi]
pub const STATE_PENDING: u32 = event_bus::outcomes::STATE_PENDING as u32;
/// A group's event state: its handler succeeded.
#[napi]
pub const STATE_OK: u32 = event_bus::outcomes::STATE_OK as u32;
/// A group's event state: claimed by JS, which runs it.
#[napi]
pub const STATE_RUNNING: u32 = event_bus::outcomes::STATE_RUNNING as u32;

/// A claimed event the core stopped waiting for (its timeout passed): JS's later success could
/// not be stored over it and is reported with `groupLate` instead (a late completion).
#[napi]
pub const STATE_GIVEN_UP: u32 = event_bus::outcomes::STATE_GIVEN_UP as u32;

/// A byte limit from JS (any number): `Infinity` is no limit, NaN or negative is 0.
fn limit(n: f64) -> usize {
    n as usize
}

/// Redis glob match, byte for byte as the server does it.
#[napi]
pub fn matches_pattern(pattern: String, channel: String) -> napi::Result<bool, Code> {
    guard(|| Ok(event_bus::matches_pattern(&pattern, &channel)))
}

/// `validateEvent(event)`: the whole event (`JSON.stringify(event)`) against the core's rules,
/// with these limits.
#[napi]
pub fn validate_event(
    event_json: String,
    max_event_size: f64,
    max_data_size: f64,
) -> napi::Result<(), Code> {
    guard(|| {
        EventValidator::new(limit(max_event_size), limit(max_data_size))
            .validate_event_json(&event_json)
            .map_err(|e| js_error(&e))
    })
}

/// `validateMetadata(metadata)`: the metadata rules of `validateEvent`, on their own
/// (`metadata_json` is `JSON.stringify(metadata)`, absent for `undefined`). The metadata is
/// checked as part of an otherwise valid event, without size limits; a value that is not an
/// object has no source, as an empty object.
#[napi]
pub fn validate_metadata(metadata_json: Option<String>) -> napi::Result<(), Code> {
    guard(|| {
        let metadata = match metadata_json.as_deref().map(serde_json::from_str::<Value>) {
            Some(Ok(v @ Value::Object(_))) => v,
            Some(Err(e)) => {
                return Err(face_error(
                    ErrorKind::InvalidArgument,
                    format!("metadata is not JSON: {e}"),
                ))
            }
            _ => Value::Object(Default::default()),
        };
        let event = serde_json::json!({"id": "metadata", "type": "metadata", "data": 0, "metadata": metadata});
        EventValidator::new(usize::MAX, usize::MAX)
            .validate_event_json(&event.to_string())
            .map_err(|e| js_error(&e))
    })
}

/// A JS argument as the core's rules see it: a string stays one; any other value only needs to
/// be "not a string" for the rule to refuse it.
fn as_value(v: Either<String, Unknown<'_>>) -> Value {
    match v {
        Either::A(s) => Value::String(s),
        Either::B(_) => Value::Null,
    }
}

/// The event type rule, on whatever value the caller passed (the core refuses a non-string).
#[napi(ts_args_type = "eventType: unknown")]
pub fn validate_event_type(event_type: Either<String, Unknown<'_>>) -> napi::Result<(), Code> {
    guard(|| {
        EventValidator::default()
            .validate_event_type_value(&as_value(event_type))
            .map_err(|e| js_error(&e))
    })
}

/// The id rule (`traceId`, `userId`, `correlationId`); `field` names it in the message.
#[napi(ts_args_type = "id: unknown, field: string")]
pub fn validate_id(id: Either<String, Unknown<'_>>, field: String) -> napi::Result<(), Code> {
    guard(|| {
        EventValidator::default()
            .validate_id_value(&as_value(id), &field)
            .map_err(|e| js_error(&e))
    })
}

/// The timestamp rule, on whatever value the caller passed.
#[napi(ts_args_type = "timestamp: unknown")]
pub fn validate_timestamp(timestamp: Either<String, Unknown<'_>>) -> napi::Result<(), Code> {
    guard(|| {
        EventValidator::default()
            .validate_timestamp_value(&as_value(timestamp))
            .map_err(|e| js_error(&e))
    })
}

/// The size rules: serialized event and data lengths (bytes) against the limits.
#[napi]
pub fn validate_sizes(
    event_len: f64,
    data_len: f64,
    max_event_size: f64,
    max_data_size: f64,
) -> napi::Result<(), Code> {
    guard(|| {
        EventValidator::new(limit(max_event_size), limit(max_data_size))
            .validate_sizes(limit(event_len), limit(data_len))
            .map_err(|e| js_error(&e))
    })
}

/// The strict schemas of the predefined photo events (`data_json` is `JSON.stringify(data)`).
#[napi]
pub fn validate_event_data(event_type: String, data_json: String) -> napi::Result<(), Code> {
    guard(|| {
        let data: Value = serde_json::from_str(&data_json).map_err(|e| {
            face_error(ErrorKind::InvalidArgument, format!("data is not JSON: {e}"))
        })?;
        EventValidator::default()
            .validate_event_data(&event_type, &data)
            .map_err(|e| js_error(&e))
    })
}

/// One log line in the core's format (text, or JSON with `json`), or `null` when `level` is
/// below `threshold` (an unknown threshold is the default level).
#[napi]
pub fn format_log_line(
    threshold: String,
    level: String,
    service: String,
    message: String,
    json: bool,
) -> napi::Result<Option<String>, Code> {
    guard(|| {
        let level = LogLevel::parse(&level).ok_or_else(|| {
            face_error(
                ErrorKind::InvalidArgument,
                format!("unknown log level {level:?}"),
            )
        })?;
        if level < LogLevel::parse(&threshold).unwrap_or_default() {
            return Ok(None);
        }
        let record = LogRecord {
            level,
            service: &service,
            message: &message,
            fields: &[],
        };
        Ok(Some(if json {
            record.to_json()
        } else {
            record.to_line()
        }))
    })
}
