//! A reconnect that keeps failing says why, once: the first failed attempt of each link is
//! reported (warn log and an `error` state event naming the cause), and the same failure is
//! not reported again on every attempt (at most once a minute).

mod common;

use std::time::{Duration, Instant};

use common::*;
use event_bus::{EventBusClient, Link, StateEvent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_reconnect_is_reported_once_with_its_cause() {
    let mut server = RedisServer::start();
    let cfg = config(
        &unique("refail"),
        &server.url(),
        r#""reconnectDelay":20,"reconnectDelayMax":40,"heartbeatInterval":500"#,
        "",
    );
    let bus = EventBusClient::from_json(&cfg).unwrap();
    bus.connect().await.unwrap();
    let states = StateLog::attach(&bus);
    bus.subscribe(
        &format!("{}.*", unique("refail")),
        Collector::new().handler(),
        Default::default(),
    )
    .await
    .unwrap();

    server.kill();
    let attempts = |link: Link| {
        states.count(
            |e| matches!(e, StateEvent::Reconnecting { connection, .. } if *connection == link),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while (attempts(Link::Publisher) < 6 || attempts(Link::Subscriber) < 6)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        attempts(Link::Publisher) >= 6 && attempts(Link::Subscriber) >= 6,
        "{:?}",
        states.names()
    );

    let errors = |link: Link| -> Vec<String> {
        states
            .events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, e)| match e {
                StateEvent::Error {
                    connection,
                    message,
                    ..
                } if *connection == link => Some(message.clone()),
                _ => None,
            })
            .collect()
    };
    for (link, name) in [
        (Link::Publisher, "publisher"),
        (Link::Subscriber, "subscriber"),
    ] {
        let said = errors(link);
        assert_eq!(
            said.len(),
            1,
            "one report for {name} over several failed attempts: {said:?}"
        );
        let m = &said[0];
        assert!(
            m.starts_with(&format!("Redis {name} reconnect failed (attempt 1): ")),
            "{m}"
        );
        assert!(
            m.contains(&server.url()) && m.contains("refused"),
            "names the cause: {m}"
        );
    }

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    let reconnected = || {
        states.count(|e| {
            matches!(
                e,
                StateEvent::Connected {
                    reconnect: true,
                    ..
                }
            )
        })
    };
    while reconnected() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(reconnected(), 2, "{:?}", states.names());
    bus.disconnect().await.unwrap();
}
