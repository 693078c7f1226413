//! The captured Redis 7 glob vectors (`tests/fixtures/vectors/glob-redis7.jsonl`: pattern,
//! channel, and whether Redis delivered), checked against a matcher.

#[derive(serde::Deserialize)]
struct Row {
    pattern: String,
    channel: String,
    #[serde(rename = "match")]
    matched: bool,
}

/// Assert that `matches(pattern, channel)` gives Redis's answer for every captured vector.
pub fn assert_all(matches: impl Fn(&[u8], &[u8]) -> bool) {
    let text = include_str!("../../../tests/fixtures/vectors/glob-redis7.jsonl");
    let mut n = 0;
    let mut bad = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let row: Row = serde_json::from_str(line).unwrap();
        if matches(row.pattern.as_bytes(), row.channel.as_bytes()) != row.matched {
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
