//! The glob matcher against the reference port of Redis 7.0's `stringmatchlen`
//! (`common/stringmatch.rs`, the oracle the `glob_diff` fuzz target uses too): the oracle is
//! checked against the captured Redis vectors, then random patterns and channels over the
//! glob alphabet must get the same answer from both.

use proptest::prelude::*;

#[path = "common/stringmatch.rs"]
mod stringmatch;

use stringmatch::stringmatchlen;

#[path = "common/glob_vectors.rs"]
mod glob_vectors;

#[test]
fn the_oracle_agrees_with_every_captured_vector() {
    glob_vectors::assert_all(stringmatchlen);
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
