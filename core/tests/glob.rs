//! The glob matcher against Redis 7 ground truth: every captured vector, plus a differential
//! property test of random patterns and channels against the live server.

use event_bus::matches_pattern;
use proptest::prelude::*;

#[path = "common/glob_vectors.rs"]
mod glob_vectors;

#[test]
fn every_captured_vector() {
    // The public API takes text; every vector is UTF-8.
    let text = |b: &[u8]| std::str::from_utf8(b).unwrap().to_owned();
    glob_vectors::assert_all(|p, c| matches_pattern(&text(p), &text(c)));
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Redis's own answer through PUBSUB: subscribe a pattern on one connection, publish the
/// channel on another, see whether it arrives. Cheaper and exact: PUBLISH's receiver count from
/// a connection that PSUBSCRIBEd only that pattern.
fn redis_matches(
    pubc: &mut redis::Connection,
    subc: &mut redis::Connection,
    pattern: &[u8],
    channel: &[u8],
) -> bool {
    subc.send_packed_command(&redis::cmd("PSUBSCRIBE").arg(pattern).get_packed_command())
        .unwrap();
    let _confirm = subc.recv_response().unwrap();
    let n: i64 = redis::cmd("PUBLISH")
        .arg(channel)
        .arg("x")
        .query(pubc)
        .unwrap();
    if n > 0 {
        let _msg = subc.recv_response().unwrap();
    }
    subc.send_packed_command(&redis::cmd("PUNSUBSCRIBE").arg(pattern).get_packed_command())
        .unwrap();
    let _confirm = subc.recv_response().unwrap();
    n > 0
}

fn alphabet() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::sample::select(vec![
            b'a', b'b', b'.', b'*', b'?', b'[', b']', b'^', b'-', b'\\', b'c', 0xc3, 0xa9,
        ]),
        0..8,
    )
}

fn chan() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::sample::select(vec![b'a', b'b', b'c', b'.', b'-', b']', b'*', 0xc3, 0xa9]),
        0..8,
    )
}

#[test]
fn differential_against_live_redis() {
    let client = redis::Client::open(redis_url()).unwrap();
    let pubc = std::cell::RefCell::new(client.get_connection().unwrap());
    let subc = std::cell::RefCell::new(client.get_connection().unwrap());
    // A unique prefix keeps other clients' subscriptions on the shared server out of the count.
    let prefix = format!("globdiff{}:", std::process::id());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(400));
    runner
        .run(&(alphabet(), chan()), |(p, c)| {
            let mut pattern = prefix.clone().into_bytes();
            pattern.extend(&p);
            let mut channel = prefix.clone().into_bytes();
            channel.extend(&c);
            let ours = event_bus::glob::matches_bytes(&pattern, &channel);
            let theirs = redis_matches(
                &mut pubc.borrow_mut(),
                &mut subc.borrow_mut(),
                &pattern,
                &channel,
            );
            prop_assert_eq!(
                ours,
                theirs,
                "pattern {:?} channel {:?}",
                String::from_utf8_lossy(&pattern),
                String::from_utf8_lossy(&channel)
            );
            Ok(())
        })
        .unwrap();
}
