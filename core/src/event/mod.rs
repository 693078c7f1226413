//! The wire format: the compatibility contract with every other face and with services still
//! on the TS package.
//!
//! An event on the wire is one JSON object `{id, type, data, metadata}` with `metadata`
//! `{source, timestamp, traceId, correlationId?, userId?, version, ...extra}`. The jobs:
//! - [`encode`](encode()): the outgoing envelope, written in the TS package's key order with
//!   the data copied through as raw JSON (a Node or C caller's `JSON.stringify` output is
//!   never re-parsed), and the channel it goes to ([`channel_for`]);
//! - [`Delivery`]: a received message decoded; decoding accepts every message the TS package
//!   writes, unknown extra fields and missing optional metadata;
//! - this file: what both sides share (the wire version, the reserved metadata keys, event
//!   ids and timestamps).

mod decode;
mod encode;

pub use crate::options::PublishOptions;
pub use decode::{Delivery, DeliveryInfo, EventMetadata};
pub use encode::{channel_for, encode, push_json_str, OutgoingEvent};

/// `metadata.version` written by every publisher.
pub const WIRE_VERSION: &str = "1.0.0";

/// Metadata keys written by the library; extra metadata may not reuse them.
pub const RESERVED_METADATA_KEYS: [&str; 6] = [
    "source",
    "timestamp",
    "traceId",
    "correlationId",
    "userId",
    "version",
];

/// `toISOString()` form of now: `2026-11-27T04:28:49.612Z`.
pub fn now_iso() -> String {
    iso_ms(chrono::Utc::now())
}

/// `%Y-%m-%dT%H:%M:%S%.3fZ` written digit by digit: every publish stamps its event, and
/// chrono's `format()` parses its format string on every call.
fn iso_ms(t: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    }
    fn two(b: &mut [u8], v: u32) {
        b[0] = b'0' + (v / 10) as u8;
        b[1] = b'0' + (v % 10) as u8;
    }
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let y = year as u32;
    two(&mut b[0..2], y / 100);
    two(&mut b[2..4], y % 100);
    two(&mut b[5..7], t.month());
    two(&mut b[8..10], t.day());
    two(&mut b[11..13], t.hour());
    two(&mut b[14..16], t.minute());
    two(&mut b[17..19], t.second());
    // Same as chrono's `%.3f`: a leap second's nanoseconds (>= 1e9) wrap.
    let ms = t.nanosecond() % 1_000_000_000 / 1_000_000;
    b[20] = b'0' + (ms / 100) as u8;
    two(&mut b[21..23], ms % 100);
    String::from_utf8(b.to_vec()).expect("ASCII")
}

/// A new UUID v4 string.
pub fn new_id() -> String {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::new_v4()
        .hyphenated()
        .encode_lower(&mut buf)
        .to_string()
}

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn iso_matches_chrono_format() {
        use chrono::TimeZone;
        for (secs, nanos) in [
            (0i64, 0u32),
            (1_795_000_000, 612_999_999),
            (1_795_000_000, 5_000_000),
            (253_402_300_799, 999_000_000),
            (-62_135_596_800, 1_000_000),
        ] {
            let t = chrono::Utc.timestamp_opt(secs, nanos).unwrap();
            assert_eq!(iso_ms(t), t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
        }
        assert_eq!(now_iso().len(), 24);
    }
}
