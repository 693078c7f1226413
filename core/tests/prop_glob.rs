//! The glob matcher against the reference port of Redis 7.0's `stringmatchlen`
//! (`common/stringmatch.rs`, the oracle the `glob_diff` fuzz target uses too): the oracle is
//! checked against the captured Redis vectors, then random patterns and channels over the
//! glob alphabet must get the same answer from both.

use proptest::prelude::*;

#[path = "common/stringmatch.rs"]
mod stringmatch;

use stringmatch::stringmatchlen;

#[derive(serde::Deserialize)]
struct Row {
    pattern: String,
    channel: String,
    #[serde(rename = "match")]
    matched: bool,
}

#[test]
fn the_oracle_agrees_with_every_captured_vector() {
    let text = include_str!("../../tests/fixtures/vectors/glob-redis7.jsonl");
    let mut n = 0;
    let mut bad = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let row: Row = serde_json::from_str(line).unwrap();
        if stringmatchlen(row.pattern.as_bytes(), row.channel.as_bytes()) != row.matched {
            bad.push(format!(
                "{:?} vs {:?}: redis says {}",
                row.pattern, row.channel, row.matched
            ));
        }
        n += 1;
    }
    assert!(n > 700, "expected the full vector file, read {n} rows");
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn quirks_the_oracle_keeps() {
    // An unterminated class matches as if closed; a trailing backslash is a literal.
    assert!(stringmatchlen(b"a[bc", b"ab"));
    assert!(stringmatchlen(b"a\\", b"a\\"));
    // Reversed ranges are swapped; bytes >= 0x80 compare as signed chars.
    assert!(stringmatchlen(b"[z-a]", b"m"));
    assert!(!stringmatchlen(b"[\xff-a]", b"\x80"));
    assert!(stringmatchlen(b"[\x80-a]", b"\xff"));
    // `*` never matches an empty string (the loop does not run).
    assert!(!stringmatchlen(b"*", b""));
    assert!(stringmatchlen(b"", b""));
}

fn glob_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            8 => prop::sample::select(
                b"ab.*?[]^-\\".to_vec()
            ),
            1 => any::<u8>(),
        ],
        0..12,
    )
}

fn channel_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            8 => prop::sample::select(b"ab.-]*\\".to_vec()),
            1 => any::<u8>(),
        ],
        0..12,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn core_matcher_equals_the_oracle(p in glob_bytes(), c in channel_bytes()) {
        prop_assert_eq!(
            event_bus::glob::matches_bytes(&p, &c),
            stringmatchlen(&p, &c),
            "pattern {:?} channel {:?}", String::from_utf8_lossy(&p), String::from_utf8_lossy(&c)
        );
    }

    #[test]
    fn a_literal_pattern_matches_only_itself(c in channel_bytes()) {
        // Escape every byte: the pattern then means exactly `c`.
        let escaped: Vec<u8> = c.iter().flat_map(|&b| [b'\\', b]).collect();
        prop_assert!(stringmatchlen(&escaped, &c));
        prop_assert_eq!(event_bus::glob::matches_bytes(&escaped, &c), stringmatchlen(&escaped, &c));
    }
}
