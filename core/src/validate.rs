//! Validation before publish: the TS package's rules and messages, kept so that a service
//! moving over sees the same errors.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::event::{PublishOptions, RESERVED_METADATA_KEYS};

/// The TS package's `EventValidator`: limits are configurable.
#[derive(Debug, Clone)]
pub struct EventValidator {
    /// Serialized event limit (bytes).
    pub max_event_size: usize,
    /// Serialized data limit (bytes).
    pub max_data_size: usize,
    /// Check predefined photo event shapes.
    pub strict_schemas: bool,
}

impl Default for EventValidator {
    fn default() -> Self {
        EventValidator {
            max_event_size: 1024 * 1024,
            max_data_size: 512 * 1024,
            strict_schemas: false,
        }
    }
}

impl EventValidator {
    /// A validator with the given limits.
    pub fn new(max_event_size: usize, max_data_size: usize) -> Self {
        EventValidator {
            max_event_size,
            max_data_size,
            strict_schemas: false,
        }
    }

    /// `Event type ...` rules: 1..=255 characters of `[a-zA-Z0-9._-]`.
    pub fn validate_event_type(&self, t: &str) -> Result<()> {
        if t.is_empty() {
            return Err(Error::validation("Event type cannot be empty"));
        }
        if t.encode_utf16().count() > 255 {
            return Err(Error::validation(
                "Event type is too long (max 255 characters)",
            ));
        }
        if !t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(Error::validation(
                "Event type can only contain alphanumeric characters, dots, hyphens, and underscores",
            ));
        }
        Ok(())
    }

    /// `traceId`/`userId`/`correlationId`: 1..=255 characters.
    pub fn validate_id(&self, id: &str, field: &str) -> Result<()> {
        if id.is_empty() {
            return Err(Error::validation(format!("{field} cannot be empty")));
        }
        if id.encode_utf16().count() > 255 {
            return Err(Error::validation(format!(
                "{field} is too long (max 255 characters)"
            )));
        }
        Ok(())
    }

    /// [`validate_event_type`](Self::validate_event_type) on any JSON value: one that is not a
    /// string is refused with the TS message (faces hand over whatever the caller passed).
    pub fn validate_event_type_value(&self, v: &Value) -> Result<()> {
        match v {
            Value::String(t) => self.validate_event_type(t),
            _ => Err(Error::validation("Event type must be a string")),
        }
    }

    /// [`validate_id`](Self::validate_id) on any JSON value.
    pub fn validate_id_value(&self, v: &Value, field: &str) -> Result<()> {
        match v {
            Value::String(id) => self.validate_id(id, field),
            _ => Err(Error::validation(format!("{field} must be a string"))),
        }
    }

    /// [`validate_timestamp`](Self::validate_timestamp) on any JSON value.
    pub fn validate_timestamp_value(&self, v: &Value) -> Result<()> {
        match v {
            Value::String(ts) => self.validate_timestamp(ts),
            _ => Err(Error::validation("Timestamp must be a string")),
        }
    }

    /// Timestamp parseable and within 24 h in the past / 1 h in the future.
    pub fn validate_timestamp(&self, ts: &str) -> Result<()> {
        let parsed = chrono::DateTime::parse_from_rfc3339(ts)
            .map_err(|_| Error::validation("Invalid timestamp format"))?;
        let now = chrono::Utc::now();
        let t = parsed.with_timezone(&chrono::Utc);
        if t > now + chrono::Duration::hours(1) {
            return Err(Error::validation("Timestamp is too far in the future"));
        }
        if t < now - chrono::Duration::hours(24) {
            return Err(Error::validation("Timestamp is too far in the past"));
        }
        Ok(())
    }

    /// Rules that can be checked before the envelope exists (type, data, source, ids).
    pub fn validate_publish(
        &self,
        source: &str,
        event_type: &str,
        data_json: &str,
        opts: &PublishOptions,
    ) -> Result<()> {
        if event_type.is_empty() {
            return Err(Error::validation("Event type is required"));
        }
        let d = data_json.trim();
        if d.is_empty() || d == "null" {
            return Err(Error::validation("Event data is required"));
        }
        self.validate_event_type(event_type)?;
        if source.is_empty() {
            return Err(Error::validation("Metadata source is required"));
        }
        if let Some(t) = &opts.trace_id {
            self.validate_id(t, "traceId")?;
        }
        if let Some(u) = &opts.user_id {
            self.validate_id(u, "userId")?;
        }
        if let Some(c) = &opts.correlation_id {
            self.validate_id(c, "correlationId")?;
        }
        if let Some(extra) = &opts.metadata {
            for k in extra.keys() {
                if RESERVED_METADATA_KEYS.contains(&k.as_str()) {
                    return Err(Error::validation(format!(
                        "Metadata field '{k}' is set by the event bus and cannot be overridden"
                    )));
                }
            }
            if let Some(tp) = extra.get(crate::event::TRACEPARENT) {
                if tp
                    .as_str()
                    .and_then(crate::event::traceparent_trace_id)
                    .is_none()
                {
                    return Err(Error::validation(format!(
                        "metadata.traceparent must be a W3C traceparent \
                         (\"00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>\", lower case, \
                         ids not all zero): got {tp}"
                    )));
                }
            }
        }
        if self.strict_schemas {
            let v: Value = serde_json::from_str(d)
                .map_err(|_| Error::validation("Event data must be valid JSON"))?;
            self.validate_event_data(event_type, &v)?;
        }
        Ok(())
    }

    /// The TS `validateEvent` on a whole event given as JSON text: required fields, the type,
    /// the metadata (source, timestamp, ids, version) and both size limits, in the TS order and
    /// with its messages. The event size is the length of `json` itself, as the TS package
    /// measured `JSON.stringify(event)`.
    pub fn validate_event_json(&self, json: &str) -> Result<()> {
        let event: Value = serde_json::from_str(json)
            .map_err(|_| Error::validation("Event must be a JSON object"))?;
        let Some(ev) = event.as_object() else {
            return Err(Error::validation("Event ID is required"));
        };
        let truthy = |v: Option<&Value>| match v {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Number(n)) => n.as_f64() != Some(0.0),
            Some(_) => true,
        };
        if !truthy(ev.get("id")) {
            return Err(Error::validation("Event ID is required"));
        }
        if !truthy(ev.get("type")) {
            return Err(Error::validation("Event type is required"));
        }
        let data = match ev.get("data") {
            None | Some(Value::Null) => return Err(Error::validation("Event data is required")),
            Some(d) => d,
        };
        if !truthy(ev.get("metadata")) {
            return Err(Error::validation("Event metadata is required"));
        }
        self.validate_event_type_value(ev.get("type").unwrap_or(&Value::Null))?;
        let Some(md) = ev.get("metadata").and_then(Value::as_object) else {
            return Err(Error::validation("Metadata source is required"));
        };
        if !truthy(md.get("source")) {
            return Err(Error::validation("Metadata source is required"));
        }
        if !truthy(md.get("timestamp")) {
            return Err(Error::validation("Metadata timestamp is required"));
        }
        if !matches!(md.get("source"), Some(Value::String(s)) if !s.is_empty()) {
            return Err(Error::validation(
                "Metadata source must be a non-empty string",
            ));
        }
        self.validate_timestamp_value(md.get("timestamp").unwrap_or(&Value::Null))?;
        for field in ["traceId", "userId", "correlationId"] {
            if let Some(id) = md.get(field) {
                self.validate_id_value(id, field)?;
            }
        }
        if matches!(md.get("version"), Some(v) if !v.is_string()) {
            return Err(Error::validation("Metadata version must be a string"));
        }
        self.validate_sizes(json.len(), 0)?;
        let data_len = serde_json::to_string(data).map_or(0, |d| d.len());
        self.validate_sizes(0, data_len)
    }

    /// Size rules on the serialized event and data, with the TS messages.
    pub fn validate_sizes(&self, event_len: usize, data_len: usize) -> Result<()> {
        if event_len > self.max_event_size {
            return Err(Error::validation(format!(
                "Event size ({event_len} bytes) exceeds maximum allowed size ({} bytes)",
                self.max_event_size
            )));
        }
        if data_len > self.max_data_size {
            return Err(Error::validation(format!(
                "Event data size ({data_len} bytes) exceeds maximum allowed size ({} bytes)",
                self.max_data_size
            )));
        }
        Ok(())
    }

    /// Strict schemas of the predefined photo events (the TS `validateEventData`). Unknown
    /// types pass. Unlike the TS package, `thumbnails` must be an array (the TS check required
    /// 'object' and so rejected every real array).
    pub fn validate_event_data(&self, event_type: &str, data: &Value) -> Result<()> {
        let fields: &[(&str, &str)] = match event_type {
            "photo.uploaded" => &[
                ("photoId", "string"),
                ("userId", "string"),
                ("filename", "string"),
                ("size", "number"),
                ("mimeType", "string"),
                ("uploadedAt", "string"),
            ],
            "photo.processing.started" => &[
                ("photoId", "string"),
                ("userId", "string"),
                ("jobId", "string"),
                ("startedAt", "string"),
            ],
            "photo.processing.progress" => &[
                ("photoId", "string"),
                ("userId", "string"),
                ("jobId", "string"),
                ("progress", "number"),
                ("stage", "string"),
            ],
            "photo.processing.completed" => &[
                ("photoId", "string"),
                ("userId", "string"),
                ("jobId", "string"),
                ("completedAt", "string"),
                ("duration", "number"),
                ("thumbnails", "array"),
                ("metadata", "object"),
            ],
            "photo.processing.failed" => &[
                ("photoId", "string"),
                ("userId", "string"),
                ("jobId", "string"),
                ("failedAt", "string"),
                ("error", "object"),
                ("retryable", "boolean"),
            ],
            _ => return Ok(()),
        };
        let obj = data.as_object();
        for (name, expected) in fields {
            let v = obj.and_then(|o| o.get(*name));
            let Some(v) = v else {
                return Err(Error::validation(format!("Field '{name}' is required")));
            };
            let actual = match v {
                Value::Null => "object",
                Value::Bool(_) => "boolean",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            if actual != *expected {
                return Err(Error::validation(format!(
                    "Field '{name}' must be of type '{expected}', got '{actual}'"
                )));
            }
        }
        if event_type == "photo.processing.progress" {
            let p = data.get("progress").and_then(Value::as_f64).unwrap_or(0.0);
            if !(0.0..=100.0).contains(&p) {
                return Err(Error::validation("Progress must be between 0 and 100"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn type_rules() {
        let v = EventValidator::default();
        assert!(v.validate_event_type("photo.uploaded").is_ok());
        assert_eq!(
            v.validate_event_type("").unwrap_err().message(),
            "Event type cannot be empty"
        );
        assert_eq!(
            v.validate_event_type("a b").unwrap_err().message(),
            "Event type can only contain alphanumeric characters, dots, hyphens, and underscores"
        );
        assert!(v.validate_event_type(&"a".repeat(255)).is_ok());
        assert_eq!(
            v.validate_event_type(&"a".repeat(256))
                .unwrap_err()
                .message(),
            "Event type is too long (max 255 characters)"
        );
    }

    #[test]
    fn data_and_ids() {
        let v = EventValidator::default();
        let o = PublishOptions::default();
        assert_eq!(
            v.validate_publish("s", "t", "null", &o)
                .unwrap_err()
                .message(),
            "Event data is required"
        );
        let o = PublishOptions {
            trace_id: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(
            v.validate_publish("s", "t", "1", &o).unwrap_err().message(),
            "traceId cannot be empty"
        );
        let o = PublishOptions {
            user_id: Some("u".repeat(256)),
            ..Default::default()
        };
        assert_eq!(
            v.validate_publish("s", "t", "1", &o).unwrap_err().message(),
            "userId is too long (max 255 characters)"
        );
    }

    #[test]
    fn sizes_and_timestamps() {
        let v = EventValidator::new(100, 50);
        assert!(v.validate_sizes(100, 50).is_ok());
        assert_eq!(
            v.validate_sizes(101, 1).unwrap_err().message(),
            "Event size (101 bytes) exceeds maximum allowed size (100 bytes)"
        );
        assert_eq!(
            v.validate_sizes(10, 51).unwrap_err().message(),
            "Event data size (51 bytes) exceeds maximum allowed size (50 bytes)"
        );
        assert!(v.validate_timestamp(&crate::event::now_iso()).is_ok());
        assert_eq!(
            v.validate_timestamp("nope").unwrap_err().message(),
            "Invalid timestamp format"
        );
        assert_eq!(
            v.validate_timestamp("2000-01-01T00:00:00.000Z")
                .unwrap_err()
                .message(),
            "Timestamp is too far in the past"
        );
        assert_eq!(
            v.validate_timestamp("2999-01-01T00:00:00.000Z")
                .unwrap_err()
                .message(),
            "Timestamp is too far in the future"
        );
    }

    #[test]
    fn strict_photo_schemas() {
        let v = EventValidator::default();
        assert_eq!(
            v.validate_event_data("photo.uploaded", &json!({"photoId": "p"}))
                .unwrap_err()
                .message(),
            "Field 'userId' is required"
        );
        assert_eq!(
            v.validate_event_data(
                "photo.processing.progress",
                &json!({"photoId":"p","userId":"u","jobId":"j","progress":101,"stage":"s"})
            )
            .unwrap_err()
            .message(),
            "Progress must be between 0 and 100"
        );
        assert_eq!(
            v.validate_event_data(
                "photo.processing.failed",
                &json!({"photoId":"p","userId":"u","jobId":"j","failedAt":"x","error":{},"retryable":"no"})
            )
            .unwrap_err()
            .message(),
            "Field 'retryable' must be of type 'boolean', got 'string'"
        );
        assert!(v.validate_event_data("other", &json!(1)).is_ok());
    }
}
