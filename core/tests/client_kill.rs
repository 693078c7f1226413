//! CLIENT KILL on the shared server, aimed at this client's own subscriber connection only
//! (found by its CLIENT SETNAME in CLIENT LIST): resubscribed within 500 ms.

mod common;

use std::time::{Duration, Instant};

use common::*;
use event_bus::EventBusClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_subscriber_killed_by_id_resubscribes_within_500ms() {
    let service = unique("ckill");
    let bus = EventBusClient::from_json(&config(&service, &shared_url(), "", "")).unwrap();
    bus.connect().await.unwrap();
    let states = StateLog::attach(&bus);
    let chan = unique("ckill.chan");
    let pat = format!("{}.*", unique("ckill.pat"));
    let col = Collector::new();
    bus.subscribe(&chan, col.handler(), Default::default())
        .await
        .unwrap();
    bus.subscribe(&pat, col.handler(), Default::default())
        .await
        .unwrap();
    let mut admin = raw_conn(&shared_url());
    assert_eq!(numsub(&mut admin, &chan), 1);

    let sub_name = format!("{service}:sub");
    let find = |admin: &mut redis::Connection| -> Vec<String> {
        client_list(admin)
            .into_iter()
            .filter(|c| c.get("name") == Some(&sub_name))
            .map(|c| c["id"].clone())
            .collect()
    };
    let ids = find(&mut admin);
    assert_eq!(ids.len(), 1, "exactly one connection named {sub_name}");
    let old = ids[0].clone();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&old)
        .query(&mut admin)
        .unwrap();
    assert_eq!(killed, 1);
    let t0 = Instant::now();
    // Resubscribed: the channel has our subscriber again, on a new connection.
    let mut resub = None;
    while t0.elapsed() < Duration::from_secs(5) {
        if numsub(&mut admin, &chan) == 1 {
            resub = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let resub = resub.expect("resubscribed");
    println!("resubscribed {} ms after CLIENT KILL ID", resub.as_millis());
    assert!(resub <= Duration::from_millis(500), "took {resub:?}");
    let new = find(&mut admin);
    assert_eq!(new.len(), 1);
    assert_ne!(new[0], old, "a new connection");
    // The pattern is back too, and events flow.
    assert!(wait_until(Duration::from_secs(2), || bus.subscriptions().len() == 2).await);
    let data = raw(r#"{"x":1}"#);
    let r = bus
        .publish(&chan, &data, &Default::default())
        .await
        .unwrap();
    assert_eq!(r.delivered_to, 1);
    let pch = pat.trim_end_matches('*').to_string() + "x";
    let r = bus.publish(&pch, &data, &Default::default()).await.unwrap();
    assert_eq!(r.delivered_to, 1);
    assert_eq!(col.wait_for(2, Duration::from_secs(5)).await, 2);
    assert!(
        states.has("disconnected") && states.has("gap"),
        "{:?}",
        states.names()
    );
    // The publisher connection was not touched.
    let pubs: Vec<_> = client_list(&mut admin)
        .into_iter()
        .filter(|c| c.get("name") == Some(&format!("{service}:pub")))
        .collect();
    assert_eq!(pubs.len(), 1);
    bus.disconnect().await.unwrap();
}
