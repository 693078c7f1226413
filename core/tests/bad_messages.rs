//! Bad messages published by a raw client: counted as invalid, never delivered, and the next
//! good event still arrives.

mod common;

use std::time::Duration;

use common::*;

fn good(id: &str) -> String {
    format!(
        r#"{{"id":"{id}","type":"bad.test","data":{{"ok":true}},"metadata":{{"source":"raw","timestamp":"{}","traceId":"t","version":"1.0.0"}}}}"#,
        event_bus::event::now_iso()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_are_counted_not_delivered() {
    let bus = shared_client(&unique("badmsg")).await;
    let chan = unique("badmsg.chan");
    let pat = format!("{}.*", unique("badmsg.pat"));
    let pchan = pat.trim_end_matches('*').to_string() + "x";
    let col = Collector::new();
    bus.subscribe(&chan, col.handler(), Default::default())
        .await
        .unwrap();
    bus.subscribe(&pat, col.handler(), Default::default())
        .await
        .unwrap();
    let two_mib_valid = {
        // A well-formed event whose size is over the 1 MiB event limit.
        let big = "x".repeat(2 * 1024 * 1024);
        format!(r#"{{"id":"big","type":"bad.test","data":"{big}","metadata":{{"source":"raw"}}}}"#)
    };
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"hello world".to_vec()),
        (
            "JSON array",
            br#"[{"id":"1","type":"a","data":1,"metadata":{}}]"#.to_vec(),
        ),
        ("missing fields", br#"{"id":"1","type":"a"}"#.to_vec()),
        (
            "null data",
            br#"{"id":"1","type":"a","data":null,"metadata":{}}"#.to_vec(),
        ),
        (
            "invalid UTF-8",
            b"{\"id\":\"\xff\xfe\",\"type\":\"a\",\"data\":1,\"metadata\":{}}".to_vec(),
        ),
        ("empty", Vec::new()),
        ("2 MiB", two_mib_valid.into_bytes()),
        ("2 MiB garbage", vec![b'{'; 2 * 1024 * 1024]),
    ];
    let mut c = raw_conn(&shared_url());
    let mut expected_invalid = 0;
    for (i, (what, payload)) in bad.iter().enumerate() {
        for ch in [&chan, &pchan] {
            let n = col.len() + 1;
            assert_eq!(raw_publish(&mut c, ch, payload), 1, "{what}");
            expected_invalid += 1;
            // The next good event arrives.
            let id = format!("good-{i}-{ch}");
            assert_eq!(raw_publish(&mut c, ch, good(&id).as_bytes()), 1);
            assert_eq!(
                col.wait_for(n, Duration::from_secs(5)).await,
                n,
                "after {what}"
            );
            assert_eq!(col.all().last().unwrap().id(), id, "after {what}");
        }
    }
    assert!(
        wait_until(Duration::from_secs(5), || bus.stats().invalid_messages
            == expected_invalid)
        .await,
        "invalid {} want {expected_invalid}",
        bus.stats().invalid_messages
    );
    let st = bus.stats();
    assert_eq!(st.invalid_messages, expected_invalid);
    assert!(st.events_failed >= expected_invalid);
    assert_eq!(st.events_received, col.len() as u64);
    assert!(col.all().iter().all(|d| d.id().starts_with("good-")));
    assert_eq!(bus.health_check().await.status, "healthy");
    bus.disconnect().await.unwrap();
}
