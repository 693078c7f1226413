//! The Socket.IO packet parser, the Engine.IO open packet (and the silence limit computed from
//! it) and the hub URL parser on arbitrary text: never panic, and what parses is consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../core/tests/common/socketio_check.rs"]
mod socketio_check;

fuzz_target!(|data: &[u8]| {
    socketio_check::check(data);
});
