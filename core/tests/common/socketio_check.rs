//! What must hold for any text the Socket.IO / Engine.IO parsers are given, shared by
//! `tests/prop_socketio.rs` and the `socketio_packet` fuzz target (included with `#[path]`).

use event_bus::socketio_hooks as sio;

/// Parse `bytes` (lossily as text, the way a WebSocket text frame or a polling body arrives)
/// as a Socket.IO packet, an Engine.IO open packet, a polling payload and a hub URL.
pub fn check(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let text = text.as_ref();
    // Polling bodies carry several packets separated by the record separator.
    for packet in text.split('\x1e') {
        packet_parts(packet);
        // Engine.IO message packets carry a Socket.IO packet after the `4`.
        if let Some(sio_packet) = packet.strip_prefix('4') {
            packet_parts(sio_packet);
        }
    }
    if let Ok((sid, limit)) = sio::parse_open(text) {
        let _ = (sid.len(), limit.as_millis());
    }
    if let Ok((_tls, host, _port, ns)) = sio::parse_hub_url(text) {
        assert!(!host.is_empty(), "empty host from {text:?}");
        assert!(ns.starts_with('/'), "namespace {ns:?} from {text:?}");
    }
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = sio::check_ack("join_room", "r", &v);
    }
}

fn packet_parts(packet: &str) {
    let Some(p) = sio::parse_packet(packet) else {
        assert!(
            packet.is_empty() || !packet.as_bytes()[0].is_ascii_digit(),
            "refused a packet that starts with a digit: {packet:?}"
        );
        return;
    };
    assert!(p.kind <= 9, "kind {} from {packet:?}", p.kind);
    assert_eq!(packet.as_bytes()[0], b'0' + p.kind);
    assert!(packet.ends_with(p.data), "data is not the packet's tail");
    assert!(
        p.nsp.starts_with('/') && !p.nsp.contains(','),
        "nsp {:?}",
        p.nsp
    );
    // The header after the type digit: `<nsp>,` unless it is the main one, the ack id digits.
    let header = &packet[1..packet.len() - p.data.len()];
    if let Some(id) = p.id {
        let digits = header.len() - header.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let tail = &header[header.len() - digits..];
        assert_eq!(tail.trim_start_matches('0').parse::<u64>().unwrap_or(0), id);
    }
    assert!(!p.data.starts_with(|c: char| c.is_ascii_digit()) || p.data.is_empty());
    let _ = sio::nsp_prefix(p.nsp);
}
