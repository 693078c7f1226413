//! The captured Redis 7 glob vectors (`tests/fixtures/vectors/glob-redis7.jsonl`: pattern,
//! channel, and whether Redis delivered), checked against a matcher.

#[derive(serde::Deserialize)]
pub struct Row {
    pub pattern: String,
    pub channel: String,
    /// Whether Redis delivered a publish on `channel` to a subscriber of `pattern`.
    #[serde(rename = "match")]
    pub matched: bool,
}

/// Every captured vector, in file order.
pub fn rows() -> Vec<Row> {
    include_str!("../../../tests/fixtures/vectors/glob-redis7.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Assert that `matches(pattern, channel)` gives Redis's answer for every captured vector.
#[allow(dead_code)] // memory.rs takes the rows only
pub fn assert_all(matches: impl Fn(&[u8], &[u8]) -> bool) {
    let mut n = 0;
    let mut bad = Vec::new();
    for row in rows() {
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
