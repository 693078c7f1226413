//! The Socket.IO protocol as this client speaks it: packets
//! (`<type>[<attachments>-][<nsp>,][<ack id>][<json>]`), the hub's acks
//! (`{success, error?}`), and the payload that announces a subscription.

use serde_json::{json, Value};

use crate::error::{Error, ErrorKind, Result};

/// An ack `{success: false, error}` becomes an error naming the request.
pub(super) fn check_ack(event: &str, room: &str, ack: &Value) -> Result<()> {
    match ack.get("success").and_then(Value::as_bool) {
        Some(true) => Ok(()),
        Some(false) => {
            let why = match ack.get("error") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Object(o)) => o
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| Value::Object(o.clone()).to_string()),
                Some(v) if !v.is_null() => v.to_string(),
                _ => "no reason given".to_string(),
            };
            Err(Error::new(
                ErrorKind::Protocol,
                format!("the Socket.IO hub refused {event} for room \"{room}\": {why}"),
            ))
        }
        None => Err(Error::new(
            ErrorKind::Protocol,
            format!("the Socket.IO hub answered {event} with an unexpected ack: {ack}"),
        )),
    }
}

/// A Socket.IO packet: `<type>[<attachments>-][<nsp>,][<ack id>][<json>]`.
pub(super) struct Packet<'a> {
    pub(super) kind: u8,
    pub(super) nsp: &'a str,
    pub(super) id: Option<u64>,
    pub(super) data: &'a str,
}

/// One packet's parts; `None` when it is not a Socket.IO packet.
pub(super) fn parse_packet(p: &str) -> Option<Packet<'_>> {
    // The type is one ASCII digit. Checking that (not just `>= b'0'`) also keeps the slice
    // below on a char boundary: a packet starting with a multi-byte character is refused.
    let first = *p.as_bytes().first()?;
    if !first.is_ascii_digit() {
        return None;
    }
    let kind = first - b'0';
    let mut rest = &p[1..];
    let mut nsp = "/";
    if rest.starts_with('/') {
        let end = rest.find(',').unwrap_or(rest.len());
        nsp = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or("");
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = if digits > 0 {
        rest[..digits].parse().ok()
    } else {
        None
    };
    Some(Packet {
        kind,
        nsp,
        id,
        data: &rest[digits..],
    })
}

/// What goes before the ack id in a packet for namespace `ns` (nothing for the main one).
pub(super) fn nsp_prefix(ns: &str) -> String {
    if ns == "/" {
        String::new()
    } else {
        format!("{ns},")
    }
}

fn subscribe_payload(id: &str, pattern: &str, options: &crate::SubscriptionOptions) -> Value {
    json!({
        "pattern": pattern,
        "filter": options.filter,
        "options": options,
        "subscriptionId": id,
    })
}

/// The `subscribe` payload announcing subscription `info` to the hub.
pub(crate) fn subscription_payload(info: &crate::SubscriptionInfo) -> Value {
    subscribe_payload(&info.id, &info.pattern, &info.options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use serde_json::json;

    #[test]
    fn parses_socketio_packets() {
        let p = parse_packet(r#"2["event",{"a":1}]"#).unwrap();
        assert_eq!(
            (p.kind, p.nsp, p.id, p.data),
            (2, "/", None, r#"["event",{"a":1}]"#)
        );
        let p = parse_packet(r#"312[{"success":true}]"#).unwrap();
        assert_eq!(
            (p.kind, p.id, p.data),
            (3, Some(12), r#"[{"success":true}]"#)
        );
        let p = parse_packet(r#"2/admin,7["x"]"#).unwrap();
        assert_eq!((p.nsp, p.id, p.data), ("/admin", Some(7), r#"["x"]"#));
        let p = parse_packet(r#"0{"sid":"s"}"#).unwrap();
        assert_eq!((p.kind, p.data), (0, r#"{"sid":"s"}"#));
        let p = parse_packet("1/admin,").unwrap();
        assert_eq!((p.kind, p.nsp, p.data), (1, "/admin", ""));
        assert!(parse_packet("").is_none());
    }

    #[test]
    fn refuses_packets_that_do_not_start_with_a_digit() {
        // Found by fuzzing: a leading multi-byte character made `&p[1..]` panic.
        for p in ["é2[\"x\"]", "😀", "\u{80}", "a2", ":1", "\u{7f}0"] {
            assert!(parse_packet(p).is_none(), "{p:?}");
        }
        let p = parse_packet("2é").unwrap();
        assert_eq!((p.kind, p.data), (2, "é"));
    }

    #[test]
    fn acks_become_results() {
        assert!(check_ack("join_room", "r", &json!({"success": true})).is_ok());
        let e = check_ack(
            "join_room",
            "r",
            &json!({"success": false, "error": "full"}),
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(
            e.message()
                .contains("refused join_room for room \"r\": full"),
            "{e}"
        );
        assert!(check_ack("leave_room", "r", &json!("ok")).is_err());
    }
}
