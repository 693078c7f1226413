//! The outgoing envelope, written in the TS package's key order (`id,type,data,metadata` and
//! `source,timestamp,traceId,correlationId?,userId?,version`, then any extra metadata), and
//! the channel an event goes to.

use serde_json::value::RawValue;

use super::{new_id, now_iso, PublishOptions, WIRE_VERSION};

/// The channel an event goes to: room > user > broadcast > type. Empty room or user
/// strings count as absent, as in the TS package.
pub fn channel_for(event_type: &str, opts: &PublishOptions) -> String {
    if let Some(room) = opts.room.as_deref().filter(|r| !r.is_empty()) {
        return format!("room:{room}");
    }
    if let Some(user) = opts.user_id.as_deref().filter(|u| !u.is_empty()) {
        return format!("user:{user}");
    }
    if opts.broadcast.unwrap_or(false) {
        return "broadcast".to_string();
    }
    event_type.to_string()
}

/// An event ready to go on the wire.
#[derive(Debug, Clone)]
pub struct OutgoingEvent {
    /// Event id (UUID v4).
    pub id: String,
    /// Event type.
    pub event_type: String,
    /// Target channel.
    pub channel: String,
    /// Metadata timestamp (also `publishedAt`).
    pub timestamp: String,
    /// The serialized message.
    pub payload: String,
    /// Byte length of the serialized data (for the size rule).
    pub data_len: usize,
    /// Set once a persistent publish has stored it in its type's stream: the publish has
    /// succeeded for durable readers whatever PUBLISH answers.
    pub stored: bool,
}

/// Append `s` as a JSON string literal, escaped exactly as `JSON.stringify` does (the faces'
/// own JSON writers use it too).
pub fn push_json_str(out: &mut String, s: &str) {
    // Fast path: nothing to escape, so the JSON form is the text in quotes.
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    // serde_json's escaping matches JSON.stringify for every string (both escape ", \ and
    // control characters and leave other Unicode as is).
    out.push_str(&serde_json::to_string(s).expect("string serialization cannot fail"));
}

/// Build the envelope in the TS key order. `data` must already be valid JSON.
pub fn encode(
    source: &str,
    event_type: &str,
    data: &RawValue,
    opts: &PublishOptions,
) -> OutgoingEvent {
    let id = new_id();
    let timestamp = now_iso();
    let trace_id = match opts.trace_id.as_deref() {
        Some(t) => t.to_string(),
        None => new_id(),
    };
    let data = data.get();
    let mut p = String::with_capacity(data.len() + event_type.len() + source.len() + 200);
    p.push_str("{\"id\":\"");
    p.push_str(&id);
    p.push_str("\",\"type\":");
    push_json_str(&mut p, event_type);
    p.push_str(",\"data\":");
    p.push_str(data);
    p.push_str(",\"metadata\":{\"source\":");
    push_json_str(&mut p, source);
    p.push_str(",\"timestamp\":\"");
    p.push_str(&timestamp);
    p.push_str("\",\"traceId\":");
    push_json_str(&mut p, &trace_id);
    if let Some(c) = opts.correlation_id.as_deref() {
        p.push_str(",\"correlationId\":");
        push_json_str(&mut p, c);
    }
    if let Some(u) = opts.user_id.as_deref() {
        p.push_str(",\"userId\":");
        push_json_str(&mut p, u);
    }
    p.push_str(",\"version\":\"");
    p.push_str(WIRE_VERSION);
    p.push('"');
    if let Some(extra) = &opts.metadata {
        for (k, v) in extra {
            p.push(',');
            push_json_str(&mut p, k);
            p.push(':');
            p.push_str(&serde_json::to_string(v).expect("value serialization cannot fail"));
        }
    }
    p.push_str("}}");
    OutgoingEvent {
        id,
        event_type: event_type.to_string(),
        channel: channel_for(event_type, opts),
        timestamp,
        payload: p,
        data_len: data.len(),
        stored: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_str_matches_serde() {
        for s in [
            "",
            "plain",
            "a\"b",
            "back\\slash",
            "ctl\u{1}\n",
            "ünï€😀",
            "\u{7f}",
        ] {
            let mut out = String::new();
            push_json_str(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap());
        }
        let id = new_id();
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
        assert_eq!(id, id.to_lowercase());
    }
}
