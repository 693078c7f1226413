//! Sharded pub/sub (`redis.shardedPubSub`) on a private 3-master / 3-replica Redis Cluster
//! (`scripts/redis-topology.sh`): each channel is `SSUBSCRIBE`d on its slot's owner (seen in
//! `PUBSUB SHARDNUMSUB` there), `SPUBLISH` reaches it there, a slot migrated under a live
//! subscription (`CLUSTER SETSLOT` + `MIGRATE`) keeps delivering, and a pattern is refused.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::topology::Topology;
use common::*;
use event_bus::{ErrorKind, EventBusClient};

fn sharded_config(seeds: &[String], service: &str) -> String {
    let seeds: Vec<String> = seeds.iter().map(|a| format!(r#""redis://{a}""#)).collect();
    format!(
        r#"{{"serviceName":"{service}","logLevel":"error","redis":{{"cluster":[{}],
            "shardedPubSub":true,"reconnectDelay":50,"reconnectDelayMax":500,
            "heartbeatInterval":1000}}}}"#,
        seeds.join(",")
    )
}

fn keyslot(node: &str, name: &str) -> u16 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(name)
        .query(&mut Topology::conn(node))
        .unwrap()
}

/// One channel per slot range of the three masters.
fn channels_in_every_range(node: &str, prefix: &str) -> Vec<String> {
    let mut by_range: BTreeMap<u16, String> = BTreeMap::new();
    for i in 0.. {
        let ch = format!("{prefix}.{i}");
        by_range.entry(keyslot(node, &ch) / 5462).or_insert(ch);
        if by_range.len() == 3 {
            break;
        }
    }
    by_range.into_values().collect()
}

/// `host:port` of the master serving `slot`, from `CLUSTER SLOTS` on `node`.
fn owner(node: &str, slot: u16) -> String {
    let v: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query(&mut Topology::conn(node))
        .unwrap();
    for r in v {
        let redis::Value::Array(r) = r else { continue };
        let (Some(redis::Value::Int(a)), Some(redis::Value::Int(b)), Some(redis::Value::Array(m))) =
            (r.first(), r.get(1), r.get(2))
        else {
            continue;
        };
        if (*a as u16) <= slot && slot <= (*b as u16) {
            let host: String = redis::from_redis_value(m[0].clone()).unwrap();
            let port: i64 = redis::from_redis_value(m[1].clone()).unwrap();
            return format!("{host}:{port}");
        }
    }
    panic!("no owner for slot {slot}")
}

fn shardnumsub(node: &str, ch: &str) -> i64 {
    let v: Vec<redis::Value> = redis::cmd("PUBSUB")
        .arg("SHARDNUMSUB")
        .arg(ch)
        .query(&mut Topology::conn(node))
        .unwrap();
    match v.get(1) {
        Some(redis::Value::Int(n)) => *n,
        other => panic!("unexpected SHARDNUMSUB reply {other:?}"),
    }
}

fn myid(node: &str) -> String {
    redis::cmd("CLUSTER")
        .arg("MYID")
        .query(&mut Topology::conn(node))
        .unwrap()
}

/// Publish `{"n": 0..count}` on `ch`, each awaited and received by exactly one subscriber.
async fn publish_numbered(publisher: &EventBusClient, ch: &str, count: u64, when: &str) {
    for n in 0..count {
        let r = publisher
            .publish(ch, &raw(&format!(r#"{{"n":{n}}}"#)), &Default::default())
            .await
            .unwrap_or_else(|f| panic!("publish {n} {when}: {}", f.error));
        assert_eq!(r.delivered_to, 1, "publish {n} {when}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_subscribed_on_their_owners_and_patterns_are_refused() {
    let t = Topology::start("cluster");
    let masters = t.addrs("REDIS_CLUSTER_MASTERS");
    let prefix = unique("shd");
    let channels = channels_in_every_range(&masters[0], &prefix);
    let subscriber =
        EventBusClient::from_json(&sharded_config(&masters[..1], &unique("shd-sub"))).unwrap();
    let publisher =
        EventBusClient::from_json(&sharded_config(&masters[..1], &unique("shd-pub"))).unwrap();
    subscriber.connect().await.unwrap();
    publisher.connect().await.unwrap();
    let e = subscriber
        .subscribe(
            &format!("{prefix}.*"),
            Collector::new().handler(),
            Default::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(
        e.message().contains("sharded pub/sub has no patterns"),
        "{e}"
    );
    assert!(subscriber.subscriptions().is_empty());
    let mut cols = Vec::new();
    for ch in &channels {
        let col = Collector::new();
        subscriber
            .subscribe(ch, col.handler(), Default::default())
            .await
            .unwrap();
        cols.push(col);
    }
    for ch in &channels {
        let own = owner(&masters[0], keyslot(&masters[0], ch));
        for m in &masters {
            let want = i64::from(*m == own);
            assert_eq!(shardnumsub(m, ch), want, "{ch} on {m} (owner {own})");
        }
    }
    for n in 0..20u64 {
        for ch in &channels {
            let r = publisher
                .publish(ch, &raw(&format!(r#"{{"n":{n}}}"#)), &Default::default())
                .await
                .unwrap_or_else(|f| panic!("SPUBLISH to {ch}: {}", f.error));
            // SPUBLISH counts the subscribers of the owner: the one subscriber there.
            assert_eq!(r.delivered_to, 1, "{ch}");
        }
    }
    for (ch, col) in channels.iter().zip(&cols) {
        assert_eq!(col.wait_for(20, Duration::from_secs(20)).await, 20, "{ch}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (ch, col) in channels.iter().zip(&cols) {
        let got = col.numbers();
        assert_eq!(
            got,
            (0..20).collect::<Vec<_>>(),
            "{ch}: each once, in order"
        );
    }
    // Unsubscribing removes it from the owner.
    let id = subscriber.subscriptions()[0].id.clone();
    let ch = subscriber.subscriptions()[0].pattern.clone();
    assert!(subscriber.unsubscribe(&id).await.unwrap());
    let own = owner(&masters[0], keyslot(&masters[0], &ch));
    assert!(wait_until(Duration::from_secs(10), || shardnumsub(&own, &ch) == 0).await);
    publisher.disconnect().await.unwrap();
    subscriber.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_migrated_under_a_live_subscription_keeps_delivering() {
    let t = Topology::start("cluster");
    let masters = t.addrs("REDIS_CLUSTER_MASTERS");
    let ch = unique("shm.chan");
    let slot = keyslot(&masters[0], &ch);
    let src = owner(&masters[0], slot);
    let dst = masters.iter().find(|m| **m != src).unwrap().clone();
    let subscriber =
        EventBusClient::from_json(&sharded_config(&masters, &unique("shm-sub"))).unwrap();
    let publisher =
        EventBusClient::from_json(&sharded_config(&masters, &unique("shm-pub"))).unwrap();
    subscriber.connect().await.unwrap();
    publisher.connect().await.unwrap();
    let states = StateLog::attach(&subscriber);
    let col = Collector::new();
    subscriber
        .subscribe(&ch, col.handler(), Default::default())
        .await
        .unwrap();
    assert_eq!(shardnumsub(&src, &ch), 1);
    let r = publisher
        .publish(&ch, &raw(r#"{"n":-1}"#), &Default::default())
        .await
        .unwrap();
    assert_eq!(r.delivered_to, 1);
    assert_eq!(col.wait_for(1, Duration::from_secs(10)).await, 1);

    // Move the slot (with a key in it) from src to dst, as redis-cli --cluster reshard does.
    let (src_id, dst_id) = (myid(&src), myid(&dst));
    let mut s = Topology::conn(&src);
    let mut d = Topology::conn(&dst);
    let _: () = redis::cmd("SET")
        .arg(&ch)
        .arg("a key in the slot")
        .query(&mut s)
        .unwrap();
    let _: () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg("IMPORTING")
        .arg(&src_id)
        .query(&mut d)
        .unwrap();
    let _: () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg("MIGRATING")
        .arg(&dst_id)
        .query(&mut s)
        .unwrap();
    let (dh, dp) = dst.rsplit_once(':').unwrap();
    let _: redis::Value = redis::cmd("MIGRATE")
        .arg(dh)
        .arg(dp)
        .arg("")
        .arg(0)
        .arg(5000)
        .arg("KEYS")
        .arg(&ch)
        .query(&mut s)
        .unwrap();
    for node in [&dst, &src] {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("NODE")
            .arg(&dst_id)
            .query(&mut Topology::conn(node))
            .unwrap();
    }
    for m in masters.iter().filter(|m| **m != src && **m != dst) {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("NODE")
            .arg(&dst_id)
            .query(&mut Topology::conn(m))
            .unwrap();
    }
    // The old owner dropped the subscription (its unrequested SUNSUBSCRIBE); the client
    // subscribed again on the new owner.
    assert!(
        wait_until(Duration::from_secs(30), || shardnumsub(&dst, &ch) == 1).await,
        "not resubscribed on {dst}: src {} dst {}",
        shardnumsub(&src, &ch),
        shardnumsub(&dst, &ch)
    );
    assert_eq!(shardnumsub(&src, &ch), 0);
    assert_eq!(owner(&dst, slot), dst);
    // Publishes go to the new owner (the first one after the move is redirected) and arrive.
    publish_numbered(&publisher, &ch, 20, "after the migration").await;
    assert_eq!(col.wait_for(21, Duration::from_secs(20)).await, 21);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = col.numbers();
    assert_eq!(got, (0..20).collect::<Vec<_>>(), "each once, in order");
    assert!(states.has("gap"), "{:?}", states.names());
    // The moved channel and the redirected publish are counted; the subscriber is on dst.
    assert!(subscriber.stats().redirects >= 1);
    assert!(publisher.stats().redirects >= 1);
    let st = serde_json::to_value(subscriber.stats()).unwrap();
    assert_eq!(st["topology"]["mode"], "cluster-sharded");
    assert_eq!(
        st["topology"]["connections"]["subscriber"],
        serde_json::json!([dst]),
        "{st}"
    );
    publisher.disconnect().await.unwrap();
    subscriber.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_a_channels_owner_moves_the_subscription_to_the_promoted_replica() {
    let t = Topology::start("cluster");
    let masters = t.addrs("REDIS_CLUSTER_MASTERS");
    let all = t.addrs("REDIS_CLUSTER_NODES");
    let ch = unique("shk.chan");
    let slot = keyslot(&masters[0], &ch);
    let old = owner(&masters[0], slot);
    let subscriber =
        EventBusClient::from_json(&sharded_config(&masters, &unique("shk-sub"))).unwrap();
    let publisher =
        EventBusClient::from_json(&sharded_config(&masters, &unique("shk-pub"))).unwrap();
    subscriber.connect().await.unwrap();
    publisher.connect().await.unwrap();
    let states = StateLog::attach(&subscriber);
    let col = Collector::new();
    subscriber
        .subscribe(&ch, col.handler(), Default::default())
        .await
        .unwrap();
    assert_eq!(shardnumsub(&old, &ch), 1);
    t.kill(common::topology::port(&old));
    let alive: Vec<String> = all.iter().filter(|n| **n != old).cloned().collect();
    // The replica takes the slot over, and the subscription follows it there.
    let new_owner = || {
        let o = owner(&alive[0], slot);
        (o != old).then_some(o)
    };
    assert!(
        wait_until(Duration::from_secs(60), || new_owner().is_some()).await,
        "no failover of {old}"
    );
    let new = new_owner().unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || shardnumsub(&new, &ch) == 1).await,
        "not resubscribed on {new}"
    );
    assert!(
        wait_until(Duration::from_secs(30), || states.has("gap")).await,
        "{:?}",
        states.names()
    );
    // Every publish from here is delivered once (the publisher finds the new owner too).
    publish_numbered(&publisher, &ch, 20, "after the failover").await;
    assert_eq!(col.wait_for(20, Duration::from_secs(20)).await, 20);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = col.numbers();
    assert_eq!(got, (0..20).collect::<Vec<_>>(), "each once, in order");
    // Healthy again: every master answers, and the dead node is no longer one of them.
    for bus in [&publisher, &subscriber] {
        let mut last = serde_json::Value::Null;
        for _ in 0..60 {
            last = serde_json::to_value(bus.health_check().await).unwrap();
            if last["status"] == "healthy" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(last["status"], "healthy", "{last}");
        let nodes = last["checks"]["redis"]["details"]["nodes"].to_string();
        assert!(!nodes.contains(&old), "{nodes}");
    }
    publisher.disconnect().await.unwrap();
    subscriber.disconnect().await.unwrap();
}
