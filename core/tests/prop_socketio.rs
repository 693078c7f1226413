//! The Socket.IO packet parser, the Engine.IO open packet and the hub URL parser on generated
//! packets and arbitrary text. The checks are `common/socketio_check.rs`, shared with the
//! `socketio_packet` fuzz target.
#![cfg(feature = "socketio")]

use event_bus::socketio_hooks as sio;
use proptest::prelude::*;

#[path = "common/socketio_check.rs"]
mod socketio_check;

/// `<type>[<nsp>,][<ack id>][<json>]` with each part present or not.
fn packet() -> impl Strategy<Value = String> {
    (
        prop_oneof![8 => (0u8..7).prop_map(|d| (b'0' + d) as char), 1 => any::<char>()],
        prop::option::of("/[a-zé0-9]{0,5}"),
        any::<bool>(),
        prop::option::of(prop_oneof![
            (0u64..1000).prop_map(|n| n.to_string()),
            "[0-9]{18,24}"
        ]),
        prop_oneof![
            Just(String::new()),
            Just(r#"["event",{"id":"e"}]"#.to_string()),
            Just(r#"[{"success":true}]"#.to_string()),
            "\\PC{0,12}",
        ],
    )
        .prop_map(|(t, nsp, comma, id, data)| {
            let mut s = t.to_string();
            if let Some(n) = nsp {
                s.push_str(&n);
                if comma {
                    s.push(',');
                }
            }
            if let Some(i) = id {
                s.push_str(&i);
            }
            s.push_str(&data);
            s
        })
}

fn open_packet() -> impl Strategy<Value = String> {
    let num = prop_oneof![
        Just(u64::MAX.to_string()),
        Just((u64::MAX - 1).to_string()),
        Just("-1".to_string()),
        Just("1e400".to_string()),
        (0u64..100_000).prop_map(|n| n.to_string()),
    ];
    (
        prop_oneof![Just("0"), Just("4"), Just("")],
        num.clone(),
        num,
    )
        .prop_map(|(p, i, t)| {
            format!(r#"{p}{{"sid":"s","upgrades":[],"pingInterval":{i},"pingTimeout":{t}}}"#)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(800))]

    #[test]
    fn packets_parse_consistently(p in packet()) {
        socketio_check::check(p.as_bytes());
    }

    #[test]
    fn open_packets_never_overflow(p in open_packet()) {
        socketio_check::check(p.as_bytes());
    }

    #[test]
    fn urls_never_panic(u in prop_oneof![
        "(http|https|ws|wss|ftp)://\\PC{0,16}",
        "http://\\[[0-9a-fé:]{0,6}\\]?(:[0-9é]{0,6})?(/\\PC{0,4})?",
    ]) {
        socketio_check::check(u.as_bytes());
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..48)) {
        socketio_check::check(&b);
    }
}

#[test]
fn regression_non_ascii_packet_start_is_refused() {
    // Found by fuzzing: parse_packet sliced at byte 1 of a packet that started with a
    // multi-byte character, and panicked.
    // And any other byte above '0' was taken as a packet type (`ws://...` as type 71).
    for p in [
        "é",
        "é2[\"x\"]",
        "😀0",
        "\u{80}",
        "ws://[::1]:81/ns",
        ":0",
        "~",
    ] {
        assert!(sio::parse_packet(p).is_none(), "{p:?}");
        socketio_check::check(p.as_bytes());
    }
    let p = sio::parse_packet("2/ns,12[\"é\"]").unwrap();
    assert_eq!(
        (p.kind, p.nsp, p.id, p.data),
        (2, "/ns", Some(12), "[\"é\"]")
    );
}

#[test]
fn regression_huge_ping_values_saturate() {
    // Found by fuzzing: pingInterval + pingTimeout overflowed u64 and panicked.
    let max = u64::MAX;
    let (sid, limit) = sio::parse_open(&format!(
        r#"0{{"sid":"s","pingInterval":{max},"pingTimeout":{max}}}"#
    ))
    .unwrap();
    assert_eq!(sid, "s");
    assert_eq!(limit, std::time::Duration::from_millis(max));
    let (_, limit) =
        sio::parse_open(r#"0{"sid":"s","pingInterval":300,"pingTimeout":200}"#).unwrap();
    assert_eq!(limit, std::time::Duration::from_millis(500));
}
