//! The incoming message decoder (`Delivery::decode`) on arbitrary bytes: it never panics, and
//! what it accepts re-encodes stably (the handler JSON is one JSON object that decodes to the
//! same event, and publishing the decoded event again gives back the same type and data).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../core/tests/common/decode_check.rs"]
mod decode_check;

fuzz_target!(|data: &[u8]| {
    decode_check::check(data);
});
