//! Received messages: [`Delivery`], an event as it arrived, with its metadata.
//!
//! Decoding reads the envelope once, keeping the message text and pointing into it for the
//! data and the metadata object, so a handler that wants the raw JSON gets it without a copy.
//! Why a message is invalid is said per field (`event id must be a string`, ...); the
//! registry counts and logs those.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::push_json_str;
use crate::error::{Error, Result};

/// Metadata of a received event. Missing optional fields are `None`; unknown fields are kept.
/// Deserialized by hand (see below), not derived: `#[serde(flatten)]` buffers every field
/// through an intermediate tree before reading it, where this reads each field once.
#[derive(Debug, Clone, Default)]
pub struct EventMetadata {
    /// Publishing service.
    pub source: Option<String>,
    /// ISO timestamp.
    pub timestamp: Option<String>,
    /// Trace id.
    pub trace_id: Option<String>,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// User id.
    pub user_id: Option<String>,
    /// Wire version.
    pub version: Option<String>,
    /// Any other fields.
    pub extra: Map<String, Value>,
}

impl<'de> Deserialize<'de> for EventMetadata {
    /// Known fields by their camelCase names (a string or null); any other field is kept in
    /// `extra`. A repeated field keeps its last value, as `JSON.parse` does.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Key<'de>(std::borrow::Cow<'de, str>);
        impl<'de> Deserialize<'de> for Key<'de> {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                struct KeyVisitor;
                impl<'de> serde::de::Visitor<'de> for KeyVisitor {
                    type Value = Key<'de>;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("a field name")
                    }
                    fn visit_borrowed_str<E>(
                        self,
                        v: &'de str,
                    ) -> std::result::Result<Key<'de>, E> {
                        Ok(Key(std::borrow::Cow::Borrowed(v)))
                    }
                    fn visit_str<E>(self, v: &str) -> std::result::Result<Key<'de>, E> {
                        Ok(Key(std::borrow::Cow::Owned(v.to_string())))
                    }
                    fn visit_string<E>(self, v: String) -> std::result::Result<Key<'de>, E> {
                        Ok(Key(std::borrow::Cow::Owned(v)))
                    }
                }
                d.deserialize_str(KeyVisitor)
            }
        }
        struct MetaVisitor;
        impl<'de> serde::de::Visitor<'de> for MetaVisitor {
            type Value = EventMetadata;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<EventMetadata, A::Error> {
                let mut out = EventMetadata::default();
                while let Some(Key(k)) = m.next_key::<Key<'de>>()? {
                    let slot = match &*k {
                        "source" => &mut out.source,
                        "timestamp" => &mut out.timestamp,
                        "traceId" => &mut out.trace_id,
                        "correlationId" => &mut out.correlation_id,
                        "userId" => &mut out.user_id,
                        "version" => &mut out.version,
                        _ => {
                            let v: Value = m.next_value()?;
                            out.extra.insert(k.into_owned(), v);
                            continue;
                        }
                    };
                    *slot = m.next_value::<Option<String>>()?;
                }
                Ok(out)
            }
        }
        d.deserialize_map(MetaVisitor)
    }
}

/// A field that should be a string: the string, or `NotString` for any other JSON value (so
/// the error can say which field is wrong).
enum StrField {
    Str(String),
    NotString,
}

impl<'de> Deserialize<'de> for StrField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = StrField;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<StrField, E> {
                Ok(StrField::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<StrField, E> {
                Ok(StrField::Str(v))
            }
            fn visit_bool<E>(self, _: bool) -> std::result::Result<StrField, E> {
                Ok(StrField::NotString)
            }
            fn visit_i64<E>(self, _: i64) -> std::result::Result<StrField, E> {
                Ok(StrField::NotString)
            }
            fn visit_u64<E>(self, _: u64) -> std::result::Result<StrField, E> {
                Ok(StrField::NotString)
            }
            fn visit_f64<E>(self, _: f64) -> std::result::Result<StrField, E> {
                Ok(StrField::NotString)
            }
            fn visit_unit<E>(self) -> std::result::Result<StrField, E> {
                Ok(StrField::NotString)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> std::result::Result<StrField, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(StrField::NotString)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> std::result::Result<StrField, A::Error> {
                while a
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(StrField::NotString)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct WireEvent<'a> {
    id: Option<StrField>,
    #[serde(rename = "type")]
    event_type: Option<StrField>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(borrow)]
    metadata: Option<&'a RawValue>,
}

/// How a durable subscription got an event (absent for pub/sub events): which stream entry,
/// for which consumer group, and the how-manyth delivery of that entry this is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryInfo {
    /// Delivery count of the entry in the group (1 on the first delivery; a redelivery after
    /// a crash, a failure or a claim by another member counts up).
    pub attempt: u32,
    /// The entry id in the type's stream (`1733300000000-0`).
    pub stream_id: String,
    /// The consumer group.
    pub group: String,
}

/// An event as received: the parsed envelope plus where it came from. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Delivery {
    inner: Arc<DeliveryInner>,
}

#[derive(Debug)]
struct DeliveryInner {
    parts: Parts,
    channel: String,
    pattern: Option<String>,
    payload: String,
    received_at: std::time::Instant,
    durable: Option<DeliveryInfo>,
}

/// What decoding reads from a message's text: the data and the metadata object as ranges of
/// it (no copies of their text).
#[derive(Debug, Clone)]
struct Parts {
    id: String,
    event_type: String,
    data: std::ops::Range<usize>,
    metadata_raw: std::ops::Range<usize>,
    metadata: EventMetadata,
}

impl Parts {
    fn of(text: &str) -> Result<Parts> {
        let w: WireEvent = serde_json::from_str(text).map_err(|e| {
            Error::validation(format!("message is not a JSON object with an event: {e}"))
        })?;
        // Where a borrowed part sits in `text`.
        let at = |r: &RawValue| {
            let start = r.get().as_ptr() as usize - text.as_ptr() as usize;
            start..start + r.get().len()
        };
        let id: String = match w.id {
            Some(StrField::Str(s)) => s,
            Some(StrField::NotString) => {
                return Err(Error::validation("event id must be a string"))
            }
            None => return Err(Error::validation("event id is missing")),
        };
        let event_type: String = match w.event_type {
            Some(StrField::Str(s)) => s,
            Some(StrField::NotString) => {
                return Err(Error::validation("event type must be a string"))
            }
            None => return Err(Error::validation("event type is missing")),
        };
        let data = match w.data {
            Some(r) if r.get() != "null" => at(r),
            _ => return Err(Error::validation("event data is missing")),
        };
        let (metadata, metadata_raw) = match w.metadata {
            Some(r) => (
                serde_json::from_str(r.get())
                    .map_err(|_| Error::validation("event metadata must be an object"))?,
                at(r),
            ),
            None => return Err(Error::validation("event metadata is missing")),
        };
        if id.is_empty() || event_type.is_empty() {
            return Err(Error::validation("event id and type must not be empty"));
        }
        Ok(Parts {
            id,
            event_type,
            data,
            metadata_raw,
            metadata,
        })
    }

    /// The delivery of `text`, the message these parts were read from.
    fn into_delivery(self, channel: &str, pattern: Option<&str>, text: String) -> Delivery {
        Delivery {
            inner: Arc::new(DeliveryInner {
                parts: self,
                channel: channel.to_string(),
                pattern: pattern.map(str::to_string),
                payload: text,
                received_at: std::time::Instant::now(),
                durable: None,
            }),
        }
    }
}

impl Delivery {
    /// Event id.
    pub fn id(&self) -> &str {
        &self.inner.parts.id
    }
    /// Event type.
    pub fn event_type(&self) -> &str {
        &self.inner.parts.event_type
    }
    /// The data as raw JSON text.
    pub fn data_json(&self) -> &str {
        &self.inner.payload[self.inner.parts.data.clone()]
    }
    /// The data parsed.
    pub fn data(&self) -> Value {
        serde_json::from_str(self.data_json()).unwrap_or(Value::Null)
    }
    /// Metadata.
    pub fn metadata(&self) -> &EventMetadata {
        &self.inner.parts.metadata
    }
    /// The channel it was published on.
    pub fn channel(&self) -> &str {
        &self.inner.channel
    }
    /// The pattern of the subscription it matched, for pattern subscriptions.
    pub fn pattern(&self) -> Option<&str> {
        self.inner.pattern.as_deref()
    }
    /// The message exactly as it was on the wire.
    pub fn payload(&self) -> &str {
        &self.inner.payload
    }
    /// When the client read it.
    pub fn received_at(&self) -> std::time::Instant {
        self.inner.received_at
    }

    /// Durable subscriptions: the stream entry, group and attempt. `None` for pub/sub events.
    pub fn delivery(&self) -> Option<&DeliveryInfo> {
        self.inner.durable.as_ref()
    }

    /// The `delivery` object as JSON (`{"attempt":1,"streamId":"...","group":"..."}`), for
    /// faces that build their own event objects; `None` for pub/sub events.
    pub fn delivery_json(&self) -> Option<String> {
        self.inner
            .durable
            .as_ref()
            .map(|d| serde_json::to_string(d).unwrap_or_default())
    }

    /// A stream entry's event text decoded for a durable subscription (`channel` is the
    /// event type's channel).
    pub(crate) fn decode_durable(
        channel: &str,
        payload: String,
        info: DeliveryInfo,
    ) -> Result<Delivery> {
        let parts = Parts::of(&payload)?;
        let mut d = parts.into_delivery(channel, None, payload);
        if let Some(inner) = Arc::get_mut(&mut d.inner) {
            inner.durable = Some(info);
        }
        Ok(d)
    }

    /// The metadata object as raw JSON text (re-serialized; key order of the wire kept).
    pub fn metadata_json(&self) -> String {
        // As sent: field order and unknown fields kept.
        self.inner.payload[self.inner.parts.metadata_raw.clone()].to_string()
    }

    /// The full event as JSON with `channel` (and `pattern`, and for durable subscriptions
    /// `delivery`) added: `{id,type,data,metadata,channel,pattern?,delivery?}`. What the Node and C faces hand to handlers.
    pub fn to_json_with_channel(&self) -> String {
        let p = &self.inner.payload;
        let trimmed = p.trim_end();
        let body = &trimmed[..trimmed.len() - 1]; // drop the closing brace
        let mut out = String::with_capacity(p.len() + self.inner.channel.len() + 40);
        out.push_str(body);
        out.push_str(",\"channel\":");
        push_json_str(&mut out, &self.inner.channel);
        if let Some(pat) = &self.inner.pattern {
            out.push_str(",\"pattern\":");
            push_json_str(&mut out, pat);
        }
        if let Some(json) = self.delivery_json() {
            out.push_str(",\"delivery\":");
            out.push_str(&json);
        }
        out.push('}');
        out
    }

    /// The same event with another channel / pattern (one event reaching several
    /// subscriptions by different routes).
    #[cfg(feature = "socketio")]
    pub(crate) fn routed(&self, channel: &str, pattern: Option<&str>) -> Delivery {
        let i = &self.inner;
        Delivery {
            inner: Arc::new(DeliveryInner {
                parts: i.parts.clone(),
                channel: channel.to_string(),
                pattern: pattern.map(str::to_string),
                payload: i.payload.clone(),
                received_at: i.received_at,
                durable: i.durable.clone(),
            }),
        }
    }

    /// Parse a message from the wire. Errors describe why it is an invalid message.
    pub fn decode(channel: &str, pattern: Option<&str>, payload: &[u8]) -> Result<Delivery> {
        let text = std::str::from_utf8(payload)
            .map_err(|_| Error::validation("message is not valid UTF-8"))?;
        let parts = Parts::of(text)?;
        Ok(parts.into_delivery(channel, pattern, text.to_string()))
    }

    /// [`Self::decode`] of a message the caller owns (its text is kept, not copied); on
    /// failure the bytes come back with the error.
    pub(crate) fn decode_owned(
        channel: &str,
        pattern: Option<&str>,
        payload: Vec<u8>,
    ) -> std::result::Result<Delivery, (Error, Vec<u8>)> {
        let text = String::from_utf8(payload).map_err(|e| {
            (
                Error::validation("message is not valid UTF-8"),
                e.into_bytes(),
            )
        })?;
        match Parts::of(&text) {
            Ok(parts) => Ok(parts.into_delivery(channel, pattern, text)),
            Err(e) => Err((e, text.into_bytes())),
        }
    }

    /// Look up a dot path (`data.userId`, `metadata.source`, `type`) as a JSON value.
    pub fn field(&self, path: &str) -> Option<Value> {
        let mut parts = path.split('.');
        let first = parts.next()?;
        let mut cur: Value = match first {
            "id" => Value::String(self.inner.parts.id.clone()),
            "type" => Value::String(self.inner.parts.event_type.clone()),
            "channel" => Value::String(self.inner.channel.clone()),
            "pattern" => self
                .inner
                .pattern
                .clone()
                .map(Value::String)
                .unwrap_or(Value::Null),
            "data" => self.data(),
            "metadata" => serde_json::from_str(&self.metadata_json()).ok()?,
            _ => return None,
        };
        for part in parts {
            cur = match cur {
                Value::Object(mut m) => m.remove(part)?,
                Value::Array(mut a) => {
                    let i: usize = part.parse().ok()?;
                    if i < a.len() {
                        a.swap_remove(i)
                    } else {
                        return None;
                    }
                }
                Value::String(s) if part == "length" => Value::from(s.encode_utf16().count()),
                _ => return None,
            };
        }
        Some(cur)
    }
}

#[cfg(test)]
mod decode_tests {
    use super::*;

    fn decode(text: &str) -> Result<Delivery> {
        Delivery::decode("c", None, text.as_bytes())
    }

    #[test]
    fn metadata_fields_nulls_extras_and_repeats() {
        let d = decode(
            r#"{"id":"i","type":"t","data":1,"metadata":{"source":"s","timestamp":null,"trace\u0049d":"x","custom":{"a":[1]},"version":"1","version":"2"}}"#,
        )
        .unwrap();
        let m = d.metadata();
        assert_eq!(m.source.as_deref(), Some("s"));
        assert_eq!(m.timestamp, None);
        assert_eq!(m.trace_id.as_deref(), Some("x")); // escaped key
        assert_eq!(m.version.as_deref(), Some("2")); // last one wins, as JSON.parse
        assert_eq!(m.extra.get("custom"), Some(&serde_json::json!({"a": [1]})));
        assert_eq!(m.correlation_id, None);
    }

    #[test]
    fn wrong_types_are_invalid_messages() {
        let cases = [
            (
                r#"{"id":5,"type":"t","data":1,"metadata":{}}"#,
                "event id must be a string",
            ),
            (
                r#"{"id":"i","type":["t"],"data":1,"metadata":{}}"#,
                "event type must be a string",
            ),
            (
                r#"{"id":"i","type":{"a":1},"data":1,"metadata":{}}"#,
                "event type must be a string",
            ),
            (
                r#"{"type":"t","data":1,"metadata":{}}"#,
                "event id is missing",
            ),
            (
                r#"{"id":"i","type":"t","data":1,"metadata":[]}"#,
                "event metadata must be an object",
            ),
            (
                r#"{"id":"i","type":"t","data":1,"metadata":{"source":5}}"#,
                "event metadata must be an object",
            ),
            (
                r#"{"id":"","type":"t","data":1,"metadata":{}}"#,
                "must not be empty",
            ),
        ];
        for (text, want) in cases {
            let e = decode(text).expect_err(text);
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
        let d = decode(r#"{"id":"i\n","type":"t\u00e9","data":{"x":1},"metadata":{}}"#).unwrap();
        assert_eq!((d.id(), d.event_type()), ("i\n", "té"));
    }
}
