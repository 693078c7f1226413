//! Differential: the core's glob matcher against the reference port of Redis 7.0's
//! `stringmatchlen` (shared with the property tests). Any disagreement is a crash.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[path = "../../core/tests/common/stringmatch.rs"]
mod stringmatch;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    pattern: &'a [u8],
    channel: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    // Deep `*` recursion is exponential in both matchers (Redis 7.0 has no depth limit either):
    // keep inputs short enough that libFuzzer measures matching, not timeouts.
    if input.pattern.len() > 256 || input.channel.len() > 256 {
        return;
    }
    let ours = event_bus::glob::matches_bytes(input.pattern, input.channel);
    let redis = stringmatch::stringmatchlen(input.pattern, input.channel);
    assert_eq!(
        ours,
        redis,
        "pattern {:?} channel {:?}",
        String::from_utf8_lossy(input.pattern),
        String::from_utf8_lossy(input.channel)
    );
    if let (Ok(p), Ok(c)) = (
        std::str::from_utf8(input.pattern),
        std::str::from_utf8(input.channel),
    ) {
        assert_eq!(event_bus::matches_pattern(p, c), redis);
    }
});
