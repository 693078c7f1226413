//! Classic pub/sub on a private 3-master / 3-replica Redis Cluster
//! (`scripts/redis-topology.sh`): exact and pattern subscriptions over channels in all three
//! slot ranges get every event exactly once, wherever the links landed (the cluster bus carries
//! messages between nodes); after SIGKILL of a master, the replica takes over, every publish
//! made meanwhile settles with an outcome, and afterwards every publish reaches every
//! subscription once.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::topology::Topology;
use common::*;
use event_bus::EventBusClient;

fn cluster_config(seeds: &[String], service: &str) -> String {
    let seeds: Vec<String> = seeds.iter().map(|a| format!(r#""redis://{a}""#)).collect();
    format!(
        r#"{{"serviceName":"{service}","logLevel":"error","redis":{{"cluster":[{}],
            "reconnectDelay":50,"reconnectDelayMax":500,"heartbeatInterval":1000}}}}"#,
        seeds.join(",")
    )
}

/// One channel name per slot range of the three masters, all under `prefix.`.
fn channels_in_every_range(node: &str, prefix: &str) -> Vec<String> {
    let mut c = Topology::conn(node);
    let mut by_range: BTreeMap<u32, String> = BTreeMap::new();
    for i in 0.. {
        let ch = format!("{prefix}.{i}");
        let slot: u32 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&ch)
            .query(&mut c)
            .unwrap();
        by_range.entry(slot * 3 / 16384).or_insert(ch);
        if by_range.len() == 3 {
            break;
        }
    }
    by_range.into_values().collect()
}

/// Node (`host:port`) of every connection named `name`, over `nodes`.
fn where_named(nodes: &[String], name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for n in nodes {
        let Ok(client) = redis::Client::open(format!("redis://{n}")) else {
            continue;
        };
        let Ok(mut c) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
            continue;
        };
        let Ok(text) = redis::cmd("CLIENT").arg("LIST").query::<String>(&mut c) else {
            continue;
        };
        for l in text.lines() {
            if l.split(' ').any(|kv| kv == format!("name={name}")) {
                out.push(n.clone());
            }
        }
    }
    out
}

/// Every slot is served by a master that is not failed, seen from `node`.
fn cluster_ok(node: &str, dead: &str) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://{node}")) else {
        return false;
    };
    let Ok(mut c) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
        return false;
    };
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query(&mut c)
        .unwrap_or_default();
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut c)
        .unwrap_or_default();
    let dead_is_master_with_slots = nodes.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 8 && f[1].starts_with(&format!("{dead}@")) && f[2].contains("master")
    });
    info.contains("cluster_state:ok") && !dead_is_master_with_slots
}

struct Subs {
    exact: Vec<(String, Collector)>,
    pattern: Collector,
}

async fn subscribe_all(bus: &EventBusClient, prefix: &str, channels: &[String]) -> Subs {
    let mut exact = Vec::new();
    for ch in channels {
        let col = Collector::new();
        bus.subscribe(ch, col.handler(), Default::default())
            .await
            .unwrap();
        exact.push((ch.clone(), col));
    }
    let pattern = Collector::new();
    bus.subscribe(
        &format!("{prefix}.*"),
        pattern.handler(),
        Default::default(),
    )
    .await
    .unwrap();
    Subs { exact, pattern }
}

/// Publish `n` events (data `{"round": round, "n": i}`) to every channel, each must succeed;
/// then every exact subscription has each of its channel's events once and the pattern each
/// event once.
async fn publish_and_check_once(bus: &EventBusClient, subs: &Subs, round: u64, n: u64) {
    for i in 0..n {
        for (ch, _) in &subs.exact {
            bus.publish(
                ch,
                &raw(&format!(r#"{{"round":{round},"n":{i}}}"#)),
                &Default::default(),
            )
            .await
            .unwrap_or_else(|f| panic!("publish to {ch} failed: {}", f.error));
        }
    }
    let of_round = |c: &Collector| -> Vec<(String, u64)> {
        c.all()
            .iter()
            .filter(|d| d.data()["round"].as_u64() == Some(round))
            .map(|d| (d.channel().to_string(), d.data()["n"].as_u64().unwrap()))
            .collect()
    };
    let total = n as usize * subs.exact.len();
    assert!(
        wait_until(Duration::from_secs(20), || of_round(&subs.pattern).len()
            >= total)
        .await,
        "pattern got {} of {total}",
        of_round(&subs.pattern).len()
    );
    for (ch, col) in &subs.exact {
        assert!(
            wait_until(Duration::from_secs(20), || of_round(col).len()
                >= n as usize)
            .await,
            "{ch} got {} of {n}",
            of_round(col).len()
        );
    }
    // Nothing more arrives: each event once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let p = of_round(&subs.pattern);
    assert_eq!(p.len(), total, "pattern: each event once");
    assert_eq!(p.iter().collect::<HashSet<_>>().len(), total);
    for (ch, col) in &subs.exact {
        let got = of_round(col);
        let want: Vec<(String, u64)> = (0..n).map(|i| (ch.clone(), i)).collect();
        assert_eq!(got, want, "{ch}: each event once, in order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_and_exact_subscriptions_over_all_slot_ranges_get_each_event_once() {
    let t = Topology::start("cluster");
    let masters = t.addrs("REDIS_CLUSTER_MASTERS");
    let all = t.addrs("REDIS_CLUSTER_NODES");
    let prefix = unique("clu");
    let channels = channels_in_every_range(&masters[0], &prefix);
    // One seed is enough: the rest of the cluster is read from it.
    let sub_service = unique("clu-sub");
    let pub_service = unique("clu-pub");
    let subscriber =
        EventBusClient::from_json(&cluster_config(&masters[..1], &sub_service)).unwrap();
    let publisher =
        EventBusClient::from_json(&cluster_config(&masters[..1], &pub_service)).unwrap();
    subscriber.connect().await.unwrap();
    publisher.connect().await.unwrap();
    let subs = subscribe_all(&subscriber, &prefix, &channels).await;
    // Every connection is named, once, on some node; the links of a client spread over masters.
    for s in [&sub_service, &pub_service] {
        let p = where_named(&all, &format!("{s}:pub"));
        let q = where_named(&all, &format!("{s}:sub"));
        assert_eq!((p.len(), q.len()), (1, 1), "{s}: {p:?} {q:?}");
        assert!(masters.contains(&p[0]) && masters.contains(&q[0]));
        assert_ne!(p[0], q[0], "{s}: both links on one node");
    }
    // getStats().topology says where each link is; healthCheck() PINGs every master.
    let topo = serde_json::to_value(subscriber.stats()).unwrap()["topology"].clone();
    assert_eq!(topo["mode"], "cluster");
    let mut got_masters: Vec<String> = serde_json::from_value(topo["masters"].clone()).unwrap();
    got_masters.sort();
    let mut want_masters = masters.clone();
    want_masters.sort();
    assert_eq!(got_masters, want_masters);
    assert_eq!(
        topo["connections"]["subscriber"],
        serde_json::json!(where_named(&all, &format!("{sub_service}:sub")))
    );
    let health = serde_json::to_value(subscriber.health_check().await).unwrap();
    assert_eq!(health["status"], "healthy", "{health}");
    let nodes = health["checks"]["redis"]["details"]["nodes"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(nodes.len(), 3, "{health}");
    assert!(nodes.iter().all(|n| n["status"] == "pass"), "{health}");
    publish_and_check_once(&publisher, &subs, 0, 20).await;
    // The subscriber's own publisher reaches its own subscriptions too.
    publish_and_check_once(&subscriber, &subs, 1, 5).await;
    publisher.disconnect().await.unwrap();
    subscriber.disconnect().await.unwrap();
}

/// SIGKILL the master that holds `victim`'s link (`pub` or `sub`) of the publishing or
/// subscribing client, publishing all along.
async fn sigkill_of_a_master(victim: &str) {
    let t = Topology::start("cluster");
    let masters = t.addrs("REDIS_CLUSTER_MASTERS");
    let all = t.addrs("REDIS_CLUSTER_NODES");
    let prefix = unique("clk");
    let channels = channels_in_every_range(&masters[0], &prefix);
    let sub_service = unique("clk-sub");
    let pub_service = unique("clk-pub");
    let subscriber = EventBusClient::from_json(&cluster_config(&masters, &sub_service)).unwrap();
    let publisher = EventBusClient::from_json(&cluster_config(&masters, &pub_service)).unwrap();
    subscriber.connect().await.unwrap();
    publisher.connect().await.unwrap();
    let states = StateLog::attach(&subscriber);
    let subs = subscribe_all(&subscriber, &prefix, &channels).await;
    publish_and_check_once(&publisher, &subs, 0, 5).await;

    let name = match victim {
        "pub" => format!("{pub_service}:pub"),
        _ => format!("{sub_service}:sub"),
    };
    let node = where_named(&all, &name);
    assert_eq!(node.len(), 1, "{name}: {node:?}");
    let node = node[0].clone();

    let stop = Arc::new(AtomicBool::new(false));
    let outcomes: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let bg = {
        let (publisher, stop, outcomes, ch) = (
            publisher.clone(),
            stop.clone(),
            outcomes.clone(),
            channels[0].clone(),
        );
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let data = raw(&format!(r#"{{"during":{n}}}"#));
                let k = match publisher.publish(&ch, &data, &Default::default()).await {
                    Ok(_) => "ok".to_string(),
                    Err(f) => f.error.kind().code().to_string(),
                };
                *outcomes.lock().unwrap().entry(k).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    t.kill(common::topology::port(&node));
    let alive: Vec<String> = all.iter().filter(|n| **n != node).cloned().collect();
    assert!(
        wait_until(Duration::from_secs(60), || cluster_ok(&alive[0], &node)).await,
        "no failover of {node}"
    );
    // Both clients' links are on live nodes again.
    let wanted = [
        format!("{pub_service}:pub"),
        format!("{pub_service}:sub"),
        format!("{sub_service}:pub"),
        format!("{sub_service}:sub"),
    ];
    assert!(
        wait_until(Duration::from_secs(60), || wanted
            .iter()
            .all(|n| where_named(&alive, n).len() == 1))
        .await,
        "links not back: {:?}",
        wanted
            .iter()
            .map(|n| (n, where_named(&alive, n)))
            .collect::<Vec<_>>()
    );
    stop.store(true, Ordering::Relaxed);
    let made = bg.await.unwrap();
    let seen: usize = outcomes.lock().unwrap().values().sum();
    assert_eq!(seen as u64, made, "every publish settled");
    println!(
        "SIGKILL of the {victim} node {node}: {made} publishes during the failover, outcomes {:?}",
        outcomes.lock().unwrap()
    );
    if victim == "sub" {
        // Emitted once the subscriber resubscribed on its new node.
        assert!(
            wait_until(Duration::from_secs(30), || states.has("gap")).await,
            "{:?}",
            states.names()
        );
    }
    // Resubscribed (the registry's four keys) and delivering: each event once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    publish_and_check_once(&publisher, &subs, 1, 20).await;
    // The link that lost its node counts a failover and no longer uses the dead node.
    let moved = if victim == "pub" {
        &publisher
    } else {
        &subscriber
    };
    let st = serde_json::to_value(moved.stats()).unwrap();
    assert!(st["failovers"].as_u64().unwrap() >= 1, "{st}");
    let link = if victim == "pub" {
        "publisher"
    } else {
        "subscriber"
    };
    assert_ne!(
        st["topology"]["connections"][link][0],
        serde_json::json!(node),
        "{st}"
    );
    // Both clients are healthy again, and check the new masters, not the dead node.
    for bus in [&publisher, &subscriber] {
        let h = serde_json::to_value(bus.health_check().await).unwrap();
        assert_eq!(h["status"], "healthy", "{h}");
        let nodes = h["checks"]["redis"]["details"]["nodes"].to_string();
        assert!(!nodes.contains(&node), "{nodes}");
    }
    publisher.disconnect().await.unwrap();
    subscriber.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_publishers_master_fails_over_and_every_publish_settles() {
    sigkill_of_a_master("pub").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_subscribers_master_fails_over_and_delivery_recovers() {
    sigkill_of_a_master("sub").await;
}
