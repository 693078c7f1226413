//! Sentinel mode on a private master + replica + 3 sentinels (`scripts/redis-topology.sh`):
//! the client finds the master through the sentinels, and after a failover (`SENTINEL
//! FAILOVER`, or SIGKILL of the master) both the publisher and the subscriber move to the new
//! master; every publish made during the failover settles with an outcome, and everything
//! published once both links are on the new master is delivered, once.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::topology::{port, Topology};
use common::*;
use event_bus::{ErrorKind, EventBusClient};

fn sentinel_config(t: &Topology, service: &str) -> String {
    let sentinels: Vec<String> = t
        .addrs("REDIS_SENTINELS")
        .iter()
        .map(|a| format!(r#"{{"host":"127.0.0.1","port":{}}}"#, port(a)))
        .collect();
    format!(
        r#"{{"serviceName":"{service}","logLevel":"error","redis":{{"sentinels":[{}],
            "name":"{}","reconnectDelay":50,"reconnectDelayMax":500,"heartbeatInterval":1000}}}}"#,
        sentinels.join(","),
        t.env["REDIS_SENTINEL_NAME"]
    )
}

fn master_of(t: &Topology) -> Option<String> {
    for s in t.addrs("REDIS_SENTINELS") {
        let Ok(client) = redis::Client::open(format!("redis://{s}")) else {
            continue;
        };
        let Ok(mut c) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
            continue;
        };
        let r: redis::RedisResult<(String, String)> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&t.env["REDIS_SENTINEL_NAME"])
            .query(&mut c);
        if let Ok((h, p)) = r {
            return Some(format!("{h}:{p}"));
        }
    }
    None
}

/// The names of the connections on `addr` (CLIENT LIST).
fn names_on(addr: &str) -> Vec<String> {
    let Ok(client) = redis::Client::open(format!("redis://{addr}")) else {
        return vec![];
    };
    let Ok(mut c) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
        return vec![];
    };
    let Ok(text) = redis::cmd("CLIENT").arg("LIST").query::<String>(&mut c) else {
        return vec![];
    };
    text.lines()
        .filter_map(|l| l.split(' ').find_map(|kv| kv.strip_prefix("name=")))
        .map(str::to_string)
        .collect()
}

/// Outcomes of publishes made in the background, by kind.
#[derive(Default, Clone)]
struct Outcomes(Arc<Mutex<BTreeMap<String, usize>>>);

impl Outcomes {
    fn add(&self, k: &str) {
        *self.0.lock().unwrap().entry(k.to_string()).or_default() += 1;
    }
    fn total(&self) -> usize {
        self.0.lock().unwrap().values().sum()
    }
}

async fn failover_moves_both_links(how: &str) {
    let t = Topology::start("sentinel");
    let old = t.env["REDIS_MASTER"].clone();
    assert_eq!(master_of(&t).as_deref(), Some(old.as_str()));
    let pub_service = unique("sent-pub");
    let sub_service = unique("sent-sub");
    let publisher = EventBusClient::from_json(&sentinel_config(&t, &pub_service)).unwrap();
    let subscriber = EventBusClient::from_json(&sentinel_config(&t, &sub_service)).unwrap();
    publisher.connect().await.unwrap();
    subscriber.connect().await.unwrap();
    let states = StateLog::attach(&subscriber);
    let chan = unique("sent.chan");
    let pat = format!("{}.*", unique("sent.pat"));
    let exact = Collector::new();
    let pattern = Collector::new();
    subscriber
        .subscribe(&chan, exact.handler(), Default::default())
        .await
        .unwrap();
    subscriber
        .subscribe(&pat, pattern.handler(), Default::default())
        .await
        .unwrap();
    let pch = pat.trim_end_matches('*').to_string() + "x";
    // All four connections are on the master the sentinels named, named as usual.
    let names = names_on(&old);
    for n in [
        format!("{pub_service}:pub"),
        format!("{pub_service}:sub"),
        format!("{sub_service}:pub"),
        format!("{sub_service}:sub"),
    ] {
        assert!(names.contains(&n), "{n} not on {old}: {names:?}");
    }
    let r = publisher
        .publish(&chan, &raw(r#"{"n":-1}"#), &Default::default())
        .await
        .unwrap();
    assert_eq!(r.delivered_to, 1);
    assert_eq!(exact.wait_for(1, Duration::from_secs(10)).await, 1);

    // Publish all through the failover; each publish is awaited, so each settles.
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Outcomes::default();
    let bg = {
        let (publisher, stop, outcomes, chan) = (
            publisher.clone(),
            stop.clone(),
            outcomes.clone(),
            chan.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let data = raw(&format!(r#"{{"during":{n}}}"#));
                match publisher.publish(&chan, &data, &Default::default()).await {
                    Ok(_) => outcomes.add("ok"),
                    Err(f) => outcomes.add(f.error.kind().code()),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    match how {
        "command" => {
            let s = &t.addrs("REDIS_SENTINELS")[0];
            let mut c = Topology::conn(s);
            let _: () = redis::cmd("SENTINEL")
                .arg("FAILOVER")
                .arg(&t.env["REDIS_SENTINEL_NAME"])
                .query(&mut c)
                .unwrap();
        }
        _ => t.kill(port(&old)),
    }
    // The sentinels name the replica, and both clients' links land there.
    let new = t.env["REDIS_REPLICA"].clone();
    assert!(
        wait_until(Duration::from_secs(60), || master_of(&t).as_deref()
            == Some(new.as_str()))
        .await,
        "no failover to {new}; the sentinels say {:?}",
        master_of(&t)
    );
    let wanted = [
        format!("{pub_service}:pub"),
        format!("{pub_service}:sub"),
        format!("{sub_service}:pub"),
        format!("{sub_service}:sub"),
    ];
    let moved = wait_until(Duration::from_secs(60), || {
        let names = names_on(&new);
        wanted.iter().all(|n| names.contains(n))
    })
    .await;
    assert!(moved, "links not all on {new}: {:?}", names_on(&new));
    // And nothing of ours is left on the old master (when it still runs).
    assert!(
        wait_until(Duration::from_secs(30), || {
            let names = names_on(&old);
            !wanted.iter().any(|n| names.contains(n))
        })
        .await,
        "still on {old}: {:?}",
        names_on(&old)
    );
    stop.store(true, Ordering::Relaxed);
    let made = bg.await.unwrap();
    assert_eq!(outcomes.total() as u64, made, "every publish settled");
    println!(
        "publishes during the failover ({how}): {made}, outcomes {:?}",
        outcomes.0.lock().unwrap()
    );

    // Resubscribed on the new master: exactly our two keys.
    assert!(
        wait_until(Duration::from_secs(30), || {
            let mut c = Topology::conn(&new);
            numsub(&mut c, &chan) == 1
        })
        .await,
        "not resubscribed on {new}"
    );
    // Everything published from here on is delivered, each event once per subscription.
    let before_exact = exact.len();
    let before_pattern = pattern.len();
    for n in 0..50u64 {
        let r = publisher
            .publish(&chan, &raw(&format!(r#"{{"n":{n}}}"#)), &Default::default())
            .await
            .unwrap_or_else(|f| panic!("publish {n} after the switch failed: {}", f.error));
        assert_eq!(r.delivered_to, 1, "publish {n}");
        let r = publisher
            .publish(&pch, &raw(&format!(r#"{{"n":{n}}}"#)), &Default::default())
            .await
            .unwrap();
        assert_eq!(r.delivered_to, 1);
    }
    assert_eq!(
        exact
            .wait_for(before_exact + 50, Duration::from_secs(20))
            .await,
        before_exact + 50
    );
    assert_eq!(
        pattern
            .wait_for(before_pattern + 50, Duration::from_secs(20))
            .await,
        before_pattern + 50
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = exact.numbers();
    assert_eq!(after, (0..50).collect::<Vec<_>>(), "each once, in order");
    assert!(states.has("gap"), "{:?}", states.names());
    assert!(subscriber.stats().reconnects >= 1);
    // getStats().topology names the new master for both links; the switch was counted when
    // the watcher saw it (a SIGKILL may also be seen as a plain reconnect first).
    let st = serde_json::to_value(subscriber.stats()).unwrap();
    assert_eq!(st["topology"]["mode"], "sentinel");
    assert_eq!(st["topology"]["masters"], serde_json::json!([new]), "{st}");
    assert_eq!(
        st["topology"]["connections"]["publisher"],
        serde_json::json!([new])
    );
    assert_eq!(
        st["topology"]["connections"]["subscriber"],
        serde_json::json!([new])
    );
    if how == "command" {
        assert!(st["failovers"].as_u64().unwrap() >= 1, "{st}");
    }
    let health = serde_json::to_value(subscriber.health_check().await).unwrap();
    let nodes = health["checks"]["redis"]["details"]["nodes"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(nodes.len(), 4, "three sentinels and the master: {health}");
    assert_eq!(health["status"], "healthy", "{health}");
    assert!(nodes.iter().all(|n| n["status"] == "pass"), "{health}");
    // The publisher's own background publishes never failed silently: any failure has a kind.
    assert!(outcomes.0.lock().unwrap().keys().all(|k| k == "ok"
        || k == ErrorKind::OutcomeUnknown.code()
        || k == ErrorKind::Timeout.code()
        || k == ErrorKind::QueueFull.code()
        || k == ErrorKind::Connection.code()
        || k == ErrorKind::Protocol.code()));
    publisher.disconnect().await.unwrap();
    subscriber.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_command_moves_publisher_and_subscriber() {
    failover_moves_both_links("command").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_master_moves_publisher_and_subscriber() {
    failover_moves_both_links("kill").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_master_name_fails_connect_with_a_clear_error() {
    let t = Topology::start("sentinel");
    let cfg = sentinel_config(&t, &unique("sent-bad")).replace(
        &format!(r#""name":"{}""#, t.env["REDIS_SENTINEL_NAME"]),
        r#""name":"no-such-master""#,
    );
    let bus = EventBusClient::from_json(&cfg).unwrap();
    let e = bus.connect().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert!(
        e.message().contains("no-such-master") && e.message().contains("does not know"),
        "{e}"
    );
}
