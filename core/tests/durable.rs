//! Durable delivery on Redis Streams, against real Redis: persistent publishes reach
//! consumer groups whether or not a member was listening; a member that dies leaves its
//! entries to the others; poison events are dead-lettered after `maxDeliveries`; trimming is
//! counted; refusals are typed. Tests that kill Redis or need special config start their own
//! `redis-server`.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::topology::Topology;
use common::*;
use event_bus::{
    Delivery, ErrorKind, EventBusClient, HandlerError, PublishOptions, StateEvent,
    SubscriptionOptions, SubscriptionTarget,
};

const LONG: Duration = Duration::from_secs(30);

fn persistent() -> PublishOptions {
    PublishOptions {
        persistent: Some(true),
        ..Default::default()
    }
}

/// Options with `durable` = `durable_json` (and `extra` top-level keys).
fn durable_opts(durable_json: &str, extra: &str) -> SubscriptionOptions {
    let e = if extra.is_empty() {
        String::new()
    } else {
        format!(",{extra}")
    };
    SubscriptionOptions::from_json(&format!(r#"{{"durable":{durable_json}{e}}}"#)).unwrap()
}

async fn client(url: &str, service: &str, top: &str) -> EventBusClient {
    let bus = EventBusClient::from_json(&config(
        service,
        url,
        r#""reconnectDelay":50,"reconnectDelayMax":500"#,
        top,
    ))
    .unwrap();
    bus.connect().await.unwrap();
    bus
}

async fn publish_n(bus: &EventBusClient, t: &str, from: u64, to: u64) {
    for n in from..to {
        bus.publish(t, &raw(&format!(r#"{{"n":{n}}}"#)), &persistent())
            .await
            .unwrap_or_else(|f| panic!("publish {n}: {}", f.error));
    }
}

fn xpending(c: &mut redis::Connection, key: &str, group: &str) -> i64 {
    let v: redis::Value = redis::cmd("XPENDING").arg(key).arg(group).query(c).unwrap();
    match v {
        redis::Value::Array(a) => match a.first() {
            Some(redis::Value::Int(n)) => *n,
            _ => -1,
        },
        _ => -1,
    }
}

fn sorted_counts(ns: &[u64]) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for n in ns {
        *m.entry(*n).or_insert(0) += 1;
    }
    m
}

fn del(keys: &[String]) {
    let mut c = raw_conn(&shared_url());
    for k in keys {
        let _: () = redis::cmd("DEL").arg(k).query(&mut c).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_away_gets_everything_once_and_two_groups_each_get_all() {
    let t = unique("dur.away");
    let key = format!("events:{{{t}}}");
    let pubr = client(&shared_url(), &unique("pub"), "").await;
    // Both groups exist before the publishes (created at "new"), then their members leave.
    let (a, b) = (Collector::new(), Collector::new());
    let ga = client(&shared_url(), "ga", "").await;
    let gb = client(&shared_url(), "gb", "").await;
    let oa = durable_opts(r#"{"group":"A","consumer":"a1"}"#, "");
    let ob = durable_opts(r#"{"group":"B","consumer":"b1"}"#, "");
    ga.subscribe_target(
        SubscriptionTarget::Pattern(t.clone()),
        a.handler(),
        oa.clone(),
    )
    .await
    .unwrap();
    gb.subscribe_target(
        SubscriptionTarget::Pattern(t.clone()),
        b.handler(),
        ob.clone(),
    )
    .await
    .unwrap();
    ga.disconnect().await.unwrap();
    gb.disconnect().await.unwrap();

    // A plain subscriber still gets persistent events live.
    let live = Collector::new();
    pubr.subscribe(&t, live.handler(), Default::default())
        .await
        .unwrap();
    publish_n(&pubr, &t, 0, 500).await;
    assert_eq!(live.wait_for(500, LONG).await, 500);
    assert_eq!(pubr.stats().persistent_published, 500);

    let ga = client(&shared_url(), "ga", "").await;
    let gb = client(&shared_url(), "gb", "").await;
    ga.subscribe_target(SubscriptionTarget::Pattern(t.clone()), a.handler(), oa)
        .await
        .unwrap();
    gb.subscribe_target(SubscriptionTarget::Types(vec![t.clone()]), b.handler(), ob)
        .await
        .unwrap();
    assert_eq!(a.wait_for(500, LONG).await, 500);
    assert_eq!(b.wait_for(500, LONG).await, 500);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for c in [&a, &b] {
        let counts = sorted_counts(&c.numbers());
        assert_eq!(counts.len(), 500);
        assert!(counts.values().all(|v| *v == 1), "duplicates: {counts:?}");
    }
    let d = a.all()[0]
        .delivery()
        .cloned()
        .expect("durable delivery info");
    assert_eq!((d.group.as_str(), d.attempt), ("A", 1));
    assert!(a.all()[0]
        .to_json_with_channel()
        .contains(r#""delivery":{"attempt":1,"streamId":""#));
    assert!(live.all()[0].delivery().is_none());
    let mut c = raw_conn(&shared_url());
    assert!(
        wait_until(LONG, || xpending(&mut c, &key, "A") == 0
            && xpending(&mut c, &key, "B") == 0)
        .await
    );
    for bus in [ga, gb, pubr] {
        bus.disconnect().await.unwrap();
    }
    del(&[key]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_killed_mid_work_has_its_entries_finished_by_another() {
    let t = unique("dur.kill");
    let key = format!("events:{{{t}}}");
    let stuck_calls = Arc::new(AtomicUsize::new(0));
    let sc = stuck_calls.clone();
    // The member that dies: its handler never returns; it is disconnected without an ack.
    let dying = client(&shared_url(), "dying", r#""disconnectTimeout":100"#).await;
    let never: Arc<dyn event_bus::Handler> = Arc::new(move |_d: Delivery| {
        sc.fetch_add(1, Ordering::SeqCst);
        async {
            futures_never().await;
            Ok::<(), HandlerError>(())
        }
    });
    let opts = |consumer: &str| {
        durable_opts(
            &format!(
                r#"{{"group":"W","consumer":"{consumer}","minIdleTime":300,"claimInterval":100,"count":5}}"#
            ),
            r#""timeout":600000,"concurrency":5"#,
        )
    };
    dying
        .subscribe_target(t.as_str().into(), never, opts("dying"))
        .await
        .unwrap();
    let pubr = client(&shared_url(), &unique("pub"), "").await;
    publish_n(&pubr, &t, 0, 20).await;
    assert!(wait_until(LONG, || stuck_calls.load(Ordering::SeqCst) >= 5).await);
    dying.disconnect().await.unwrap();
    let mut c = raw_conn(&shared_url());
    assert!(xpending(&mut c, &key, "W") >= 5, "entries left pending");

    let got = Collector::new();
    let alive = client(&shared_url(), "alive", "").await;
    alive
        .subscribe_target(t.as_str().into(), got.handler(), opts("alive"))
        .await
        .unwrap();
    assert!(wait_until(LONG, || sorted_counts(&got.numbers()).len() == 20).await);
    assert!(wait_until(LONG, || xpending(&mut c, &key, "W") == 0).await);
    assert!(
        alive.stats().events_reclaimed >= 5,
        "{:?}",
        alive.stats().events_reclaimed
    );
    let reclaimed: Vec<u32> = got
        .all()
        .iter()
        .filter_map(|d| d.delivery().map(|i| i.attempt))
        .filter(|a| *a > 1)
        .collect();
    assert!(
        reclaimed.len() >= 5,
        "claimed entries carry their delivery count"
    );
    let st = alive.stats();
    assert_eq!(st.durable.len(), 1);
    assert_eq!(st.durable[0].group, "W");
    assert_eq!(st.durable[0].consumer, "alive");
    alive.disconnect().await.unwrap();
    pubr.disconnect().await.unwrap();
    del(&[key]);
}

async fn futures_never() {
    std::future::pending::<()>().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_dead_lettered_after_max_deliveries_then_replayed_and_purged() {
    let t = unique("dur.poison");
    let key = format!("events:{{{t}}}");
    let dead = format!("{key}:dead");
    let calls = Arc::new(Mutex::new(BTreeMap::<u64, usize>::new()));
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (c2, f2) = (calls.clone(), fail.clone());
    let handler: Arc<dyn event_bus::Handler> = Arc::new(move |d: Delivery| {
        let n = d.data()["n"].as_u64().unwrap();
        *c2.lock().unwrap().entry(n).or_insert(0) += 1;
        let poison = n == 3 && f2.load(Ordering::SeqCst);
        async move {
            if poison {
                Err(HandlerError::new("poison"))
            } else {
                Ok(())
            }
        }
    });
    let bus = client(&shared_url(), "poison", "").await;
    let log = StateLog::attach(&bus);
    bus.subscribe_target(
        t.as_str().into(),
        handler,
        durable_opts(
            r#"{"group":"P","consumer":"p1","maxDeliveries":3,"minIdleTime":100,"claimInterval":50}"#,
            "",
        ),
    )
    .await
    .unwrap();
    publish_n(&bus, &t, 0, 10).await;
    assert!(wait_until(LONG, || bus.stats().events_dead_lettered == 1).await);
    tokio::time::sleep(Duration::from_millis(500)).await; // no further delivery after that
    {
        let calls = calls.lock().unwrap();
        assert_eq!(
            calls[&3], 3,
            "exactly maxDeliveries deliveries of the poison event"
        );
        assert!(
            (0..10).filter(|n| *n != 3).all(|n| calls[&n] == 1),
            "{calls:?}"
        );
    }
    assert!(
        log.count(|e| matches!(e, StateEvent::Error { code: Some(c), .. } if c == "DEAD_LETTERED"))
            == 1
    );
    let mut c = raw_conn(&shared_url());
    assert_eq!(xpending(&mut c, &key, "P"), 0);
    let letters = bus.dead_letters(&t, "P", None).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].deliveries, 3);
    assert_eq!(letters[0].event["data"]["n"], 3);
    assert_eq!(letters[0].error["message"], "poison");
    assert!(bus
        .dead_letters(&t, "other", None)
        .await
        .unwrap()
        .is_empty());
    let json: serde_json::Value =
        serde_json::from_str(&bus.dead_letters_json(&t, "P", Some(10)).await.unwrap()).unwrap();
    assert_eq!(json[0]["originalId"], letters[0].original_id.as_str());
    assert!(json[0]["failedAt"].as_u64().unwrap() > 0);

    // Replay: the group gets it again as a new entry, and now it succeeds.
    fail.store(false, Ordering::SeqCst);
    assert_eq!(bus.replay_dead_letters(&t, "P", None).await.unwrap(), 1);
    assert!(wait_until(LONG, || calls.lock().unwrap()[&3] == 4).await);
    assert!(bus.dead_letters(&t, "P", None).await.unwrap().is_empty());

    // Purge: dead letters of the group are deleted, another group's stay.
    let mut raw_c = raw_conn(&shared_url());
    for g in ["P", "P", "Q"] {
        let _: String = redis::cmd("XADD")
            .arg(&dead)
            .arg("*")
            .arg("event")
            .arg("{}")
            .arg("error")
            .arg(r#"{"message":"x"}"#)
            .arg("deliveries")
            .arg(1)
            .arg("failedAt")
            .arg(1)
            .arg("streamId")
            .arg("1-0")
            .arg("group")
            .arg(g)
            .query(&mut raw_c)
            .unwrap();
    }
    assert_eq!(bus.purge_dead_letters(&t, "P").await.unwrap(), 2);
    assert_eq!(bus.dead_letters(&t, "Q", None).await.unwrap().len(), 1);
    assert!(bus.dead_letters(&t, "P", None).await.unwrap().is_empty());
    bus.disconnect().await.unwrap();
    del(&[key, dead]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_skips_a_duplicate_event_id() {
    let t = unique("dur.idem");
    let key = format!("events:{{{t}}}");
    let bus = client(&shared_url(), "idem", "").await;
    let got = Collector::new();
    bus.subscribe_target(
        t.as_str().into(),
        got.handler(),
        durable_opts(
            r#"{"group":"I","consumer":"i1","idempotent":true,"block":200}"#,
            "",
        ),
    )
    .await
    .unwrap();
    publish_n(&bus, &t, 0, 1).await;
    assert_eq!(got.wait_for(1, LONG).await, 1);
    // The same envelope again (a publisher that retried): skipped.
    let payload = got.all()[0].payload().to_string();
    let mut c = raw_conn(&shared_url());
    let _: String = redis::cmd("XADD")
        .arg(&key)
        .arg("*")
        .arg("event")
        .arg(&payload)
        .query(&mut c)
        .unwrap();
    publish_n(&bus, &t, 1, 2).await;
    assert_eq!(got.wait_for(2, LONG).await, 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(got.numbers(), vec![0, 1]);
    assert!(wait_until(LONG, || xpending(&mut c, &key, "I") == 0).await);
    let seen: Vec<String> = redis::cmd("KEYS")
        .arg(format!("events:{{{t}}}:seen:I:*"))
        .query(&mut c)
        .unwrap();
    assert_eq!(seen.len(), 2);
    bus.disconnect().await.unwrap();
    let mut keys = seen;
    keys.push(key);
    del(&keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_typed() {
    let bus = client(&shared_url(), "refuse", "").await;
    let h = Collector::new();
    let e = bus
        .subscribe_target(
            SubscriptionTarget::Pattern("orders.*".into()),
            h.handler(),
            durable_opts(r#"{"group":"G"}"#, ""),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(
        e.to_string()
            .contains("a stream is a key, not a channel pattern"),
        "{e}"
    );
    let e = bus
        .subscribe_target(
            SubscriptionTarget::Types(vec!["a".into(), "b".into()]),
            h.handler(),
            Default::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert_eq!(
        e.message(),
        "a list of event types needs durable; subscribe once per pattern otherwise"
    );
    let e = bus
        .subscribe_target(
            "a".into(),
            h.handler(),
            durable_opts(r#"{"consumer":"x"}"#, ""),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.to_string().contains("durable.group is required"), "{e}");
    let e = SubscriptionOptions::from_json(r#"{"durable":{"group":"g","maxDeliveries":-1}}"#)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    let e = PublishOptions::from_json(r#"{"persistent":"yes"}"#).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.to_string().contains("persistent"), "{e}");
    let o = SubscriptionOptions::from_json(r#"{"durable":{"group":"g","grop":1}}"#).unwrap();
    assert_eq!(o.unknown_keys, vec!["durable.grop".to_string()]);
    let e = PublishOptions::from_json(r#"{"ttl":0}"#).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    let e = PublishOptions::from_json(r#"{"ttl":-5}"#).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    bus.disconnect().await.unwrap();

    assert_eq!(
        SubscriptionTarget::from_json_or_pattern(r#"["a","b"]"#),
        SubscriptionTarget::Types(vec!["a".into(), "b".into()])
    );
    assert_eq!(
        SubscriptionTarget::from_json_or_pattern("[ab]*"),
        SubscriptionTarget::Pattern("[ab]*".into())
    );
    assert_eq!(
        SubscriptionTarget::from_json_or_pattern("[1,2]"),
        SubscriptionTarget::Pattern("[1,2]".into())
    );

    let mem = EventBusClient::from_json(r#"{"serviceName":"m","transport":"memory"}"#).unwrap();
    mem.connect().await.unwrap();
    let e = mem
        .subscribe_target(
            "a".into(),
            h.handler(),
            durable_opts(r#"{"group":"G"}"#, ""),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert_eq!(e.message(), "durable subscriptions need Redis");
    mem.disconnect().await.unwrap();
}

fn aof_server() -> (RedisServer, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(unique("event-bus-aof"));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_string_lossy().to_string();
    let s = RedisServer::start_with(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        &d,
        "--stream-node-max-entries",
        "4",
    ]);
    (s, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_with_aof_loses_no_acknowledged_publish() {
    let (mut server, dir) = aof_server();
    let t = unique("dur.aof");
    let worker = client(&server.url(), "aof-w", "").await;
    let got = Collector::new();
    worker
        .subscribe_target(
            t.as_str().into(),
            got.handler(),
            durable_opts(r#"{"group":"K","consumer":"k1","block":200,"claimInterval":200,"minIdleTime":500}"#, ""),
        )
        .await
        .unwrap();
    let pubr = client(&server.url(), "aof-p", "").await;
    let mut acked = Vec::new();
    for n in 0..100u64 {
        if n == 50 {
            server.kill();
            server.restart();
        }
        // Publishes while the server is down fail; those are not promised.
        let r = pubr
            .publish(&t, &raw(&format!(r#"{{"n":{n}}}"#)), &persistent())
            .await;
        if r.is_ok() {
            acked.push(n);
        }
    }
    assert!(acked.len() >= 50, "{acked:?}");
    assert!(
        wait_until(Duration::from_secs(60), || {
            let have = sorted_counts(&got.numbers());
            acked.iter().all(|n| have.contains_key(n))
        })
        .await,
        "acknowledged {acked:?}, delivered {:?}",
        sorted_counts(&got.numbers()).keys().collect::<Vec<_>>()
    );
    worker.disconnect().await.unwrap();
    pubr.disconnect().await.unwrap();
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_replicas_without_enough_replicas_is_outcome_unknown() {
    let server = RedisServer::start();
    let t = unique("dur.wait");
    let bus = client(
        &server.url(),
        "wait",
        r#""durable":{"waitReplicas":1,"waitTimeout":100}"#,
    )
    .await;
    let f = bus
        .publish(&t, &raw(r#"{"n":1}"#), &persistent())
        .await
        .unwrap_err();
    assert_eq!(f.error.kind(), ErrorKind::OutcomeUnknown, "{}", f.error);
    assert!(
        f.error.to_string().contains("0 of 1 replicas"),
        "{}",
        f.error
    );
    // Stored on the master all the same.
    let len: i64 = redis::cmd("XLEN")
        .arg(format!("events:{{{t}}}"))
        .query(&mut server.conn())
        .unwrap();
    assert_eq!(len, 1);
    bus.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimming_by_max_len_and_ttl_works_and_unread_trimmed_entries_are_counted() {
    let (server, dir) = aof_server();
    let t = unique("dur.trim");
    let key = format!("events:{{{t}}}");
    let pubr = client(&server.url(), "trim-p", r#""durable":{"maxLen":10}"#).await;
    let reader = client(&server.url(), "trim-r", "").await;
    let log = StateLog::attach(&reader);
    let got = Collector::new();
    let opts = durable_opts(
        r#"{"group":"T","consumer":"t1","block":200,"claimInterval":100}"#,
        "",
    );
    let sub = reader
        .subscribe_target(t.as_str().into(), got.handler(), opts.clone())
        .await
        .unwrap();
    publish_n(&pubr, &t, 0, 5).await;
    assert_eq!(got.wait_for(5, LONG).await, 5);
    reader.unsubscribe(&sub.id).await.unwrap();
    // 200 more while nobody reads: the stream keeps about 10 of them.
    publish_n(&pubr, &t, 5, 205).await;
    let mut c = server.conn();
    let len: i64 = redis::cmd("XLEN").arg(&key).query(&mut c).unwrap();
    assert!(len < 50, "MAXLEN ~ 10 trims (len {len})");
    reader
        .subscribe_target(t.as_str().into(), got.handler(), opts)
        .await
        .unwrap();
    assert!(wait_until(LONG, || got.len() as i64 == 5 + len).await);
    let trimmed = reader.stats().events_trimmed_unread;
    assert_eq!(trimmed as i64, 200 - len, "trimmed-unread counted");
    assert!(
        log.count(
            |e| matches!(e, StateEvent::Error { code: Some(c), .. } if c == "EVENTS_TRIMMED")
        ) >= 1
    );

    // ttl: entries older than it are trimmed by the next persistent publish with a ttl.
    let t2 = unique("dur.ttl");
    let key2 = format!("events:{{{t2}}}");
    publish_n(&pubr, &t2, 0, 40).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let o = PublishOptions {
        persistent: Some(true),
        ttl: Some(100),
        ..Default::default()
    };
    pubr.publish(&t2, &raw(r#"{"n":40}"#), &o).await.unwrap();
    let len2: i64 = redis::cmd("XLEN").arg(&key2).query(&mut c).unwrap();
    assert!(
        len2 < 40,
        "MINID ~ trims entries older than the ttl (len {len2})"
    );
    reader.disconnect().await.unwrap();
    pubr.disconnect().await.unwrap();
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_routes_each_type_to_its_slot() {
    let topo = Topology::start("cluster");
    let seeds = topo.addrs("REDIS_CLUSTER_MASTERS");
    let seeds_json: Vec<String> = seeds.iter().map(|a| format!(r#""redis://{a}""#)).collect();
    let cfg = |svc: &str| {
        format!(
            r#"{{"serviceName":"{svc}","logLevel":"error","redis":{{"cluster":[{}],"keyPrefix":"kp:"}}}}"#,
            seeds_json.join(",")
        )
    };
    let pubr = EventBusClient::from_json(&cfg("cl-p")).unwrap();
    pubr.connect().await.unwrap();
    let worker = EventBusClient::from_json(&cfg("cl-w")).unwrap();
    worker.connect().await.unwrap();
    // Several types: their hash tags land on different masters.
    let types: Vec<String> = (0..6).map(|i| unique(&format!("cl{i}"))).collect();
    let got = Collector::new();
    worker
        .subscribe_target(
            SubscriptionTarget::Types(types.clone()),
            got.handler(),
            durable_opts(r#"{"group":"C","consumer":"c1","block":200}"#, ""),
        )
        .await
        .unwrap();
    for (i, t) in types.iter().enumerate() {
        publish_n(&pubr, t, i as u64 * 10, i as u64 * 10 + 10).await;
    }
    assert!(wait_until(LONG, || sorted_counts(&got.numbers()).len() == 60).await);
    assert!(sorted_counts(&got.numbers()).values().all(|v| *v == 1));
    // The prefix is on the key, on the node of the type's slot.
    let mut found = 0;
    for m in &seeds {
        let mut c = Topology::conn(m);
        for t in &types {
            let n: i64 = redis::cmd("EXISTS")
                .arg(format!("kp:events:{{{t}}}"))
                .query(&mut c)
                .unwrap_or(0);
            found += n;
        }
    }
    assert_eq!(found, 6);
    worker.disconnect().await.unwrap();
    pubr.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_readers_follow_the_master() {
    let topo = Topology::start("sentinel");
    let sentinels: Vec<String> = topo
        .addrs("REDIS_SENTINELS")
        .iter()
        .map(|a| {
            format!(
                r#"{{"host":"127.0.0.1","port":{}}}"#,
                common::topology::port(a)
            )
        })
        .collect();
    let name = topo.env["REDIS_SENTINEL_NAME"].clone();
    let cfg = |svc: &str| {
        format!(
            r#"{{"serviceName":"{svc}","logLevel":"error","redis":{{"sentinels":[{}],"name":"{name}",
                "reconnectDelay":50,"reconnectDelayMax":500,"heartbeatInterval":1000}},
                "durable":{{"waitReplicas":1,"waitTimeout":2000}}}}"#,
            sentinels.join(",")
        )
    };
    let pubr = EventBusClient::from_json(&cfg("sd-p")).unwrap();
    pubr.connect().await.unwrap();
    let worker = EventBusClient::from_json(&cfg("sd-w")).unwrap();
    worker.connect().await.unwrap();
    let t = unique("dur.sent");
    let got = Collector::new();
    worker
        .subscribe_target(
            t.as_str().into(),
            got.handler(),
            durable_opts(
                r#"{"group":"S","consumer":"s1","block":200,"claimInterval":200,"minIdleTime":500}"#,
                "",
            ),
        )
        .await
        .unwrap();
    publish_n(&pubr, &t, 0, 20).await;
    assert!(wait_until(LONG, || sorted_counts(&got.numbers()).len() == 20).await);
    // Replication is asynchronous; durable.waitReplicas made each publish above wait until
    // the replica had it, so the failover loses none of them.
    let mut s = Topology::conn(&topo.addrs("REDIS_SENTINELS")[0]);
    let _: () = redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg(&name)
        .query(&mut s)
        .unwrap();
    let new = topo.env["REDIS_REPLICA"].clone();
    assert!(
        wait_until(Duration::from_secs(60), || {
            let r: redis::RedisResult<(String, String)> = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(&name)
                .query(&mut s);
            r.map(|(h, p)| format!("{h}:{p}") == new).unwrap_or(false)
        })
        .await,
        "no failover to {new}"
    );
    // Publishes go on after the switch; each is tried until it is acknowledged (at least
    // once: a publish whose outcome was unknown may be stored twice).
    for n in 20..40u64 {
        let mut tries = 0;
        while pubr
            .publish(&t, &raw(&format!(r#"{{"n":{n}}}"#)), &persistent())
            .await
            .is_err()
        {
            tries += 1;
            assert!(tries < 600, "publish {n} never acknowledged");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(
        wait_until(Duration::from_secs(60), || sorted_counts(&got.numbers())
            .len()
            == 40)
        .await,
        "delivered {:?}",
        sorted_counts(&got.numbers()).keys().collect::<Vec<_>>()
    );
    worker.disconnect().await.unwrap();
    pubr.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_and_room_targets_store_persistent_events_in_the_type_stream() {
    let t = unique("dur.batch");
    let key = format!("events:{{{t}}}");
    let bus = client(&shared_url(), "batch", "").await;
    let got = Collector::new();
    bus.subscribe_target(
        t.as_str().into(),
        got.handler(),
        durable_opts(r#"{"group":"B","consumer":"b1","block":200}"#, ""),
    )
    .await
    .unwrap();
    let item = |n: u64, p: bool| event_bus::BatchItem {
        event_type: t.clone(),
        data: raw(&format!(r#"{{"n":{n}}}"#)),
        options: PublishOptions {
            persistent: Some(p),
            ..Default::default()
        },
    };
    let out = bus
        .publish_batch(&[item(0, true), item(1, false), item(2, true)])
        .await;
    assert!(out.iter().all(|o| o.is_ok()));
    let out = bus.queue_batch(vec![item(3, true), item(4, false)]).await;
    assert!(out.iter().all(|o| o.is_ok()));
    bus.publish_to_room("lobby", &t, &raw(r#"{"n":5}"#), &persistent())
        .await
        .unwrap();
    assert!(wait_until(LONG, || got.len() == 4).await);
    let mut ns = got.numbers();
    ns.sort();
    assert_eq!(ns, vec![0, 2, 3, 5]);
    let room_event = got.all().into_iter().find(|d| d.data()["n"] == 5).unwrap();
    assert_eq!(room_event.event_type(), t);
    assert_eq!(bus.stats().persistent_published, 4);
    bus.disconnect().await.unwrap();
    del(&[key]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_from_all_reads_what_the_stream_holds_and_new_groups_start_at_the_end() {
    let (server, dir) = aof_server();
    let t = unique("dur.all");
    let pubr = client(&server.url(), "all-p", r#""durable":{"maxLen":10}"#).await;
    // 100 entries before any group: the stream keeps about 10.
    publish_n(&pubr, &t, 0, 100).await;
    let len: i64 = redis::cmd("XLEN")
        .arg(format!("events:{{{t}}}"))
        .query(&mut server.conn())
        .unwrap();
    let (all, new) = (Collector::new(), Collector::new());
    let worker = client(&server.url(), "all-w", "").await;
    worker
        .subscribe_target(
            t.as_str().into(),
            all.handler(),
            durable_opts(
                r#"{"group":"ALL","startFrom":"all","block":200,"claimInterval":50}"#,
                "",
            ),
        )
        .await
        .unwrap();
    worker
        .subscribe_target(
            t.as_str().into(),
            new.handler(),
            durable_opts(r#"{"group":"NEW","block":200}"#, ""),
        )
        .await
        .unwrap();
    assert!(wait_until(LONG, || all.len() as i64 == len).await);
    publish_n(&pubr, &t, 100, 101).await;
    assert!(wait_until(LONG, || new.len() == 1 && all.len() as i64 == len + 1).await);
    assert_eq!(new.numbers(), vec![100]);
    // Entries trimmed before the group existed are not counted as lost to it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(worker.stats().events_trimmed_unread, 0);
    worker.disconnect().await.unwrap();
    pubr.disconnect().await.unwrap();
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_publish_waits_for_redis_up_to_the_publish_timeout() {
    // While Redis cannot be reached, a persistent publish waits for it as a plain publish
    // waits in the offline queue: stored once Redis is back within publishTimeout, else
    // TIMEOUT (never sent), not a CONNECTION_ERROR at once.
    let mut server = RedisServer::start();
    let t = unique("dur.wait");
    let patient = EventBusClient::from_json(&config(
        "wait-long",
        &server.url(),
        r#""reconnectDelay":50,"reconnectDelayMax":200,"publishTimeout":30000"#,
        "",
    ))
    .unwrap();
    patient.connect().await.unwrap();
    let hasty = EventBusClient::from_json(&config(
        "wait-short",
        &server.url(),
        r#""reconnectDelay":50,"reconnectDelayMax":200,"publishTimeout":300"#,
        "",
    ))
    .unwrap();
    hasty.connect().await.unwrap();
    patient
        .publish(&t, &raw(r#"{"n":0}"#), &persistent())
        .await
        .unwrap();

    server.kill();
    let err = hasty
        .publish(&t, &raw(r#"{"n":9}"#), &persistent())
        .await
        .unwrap_err()
        .error;
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.message().contains("was not sent"), "{err}");

    let waiting = {
        let (bus, t) = (patient.clone(), t.clone());
        tokio::spawn(async move { bus.publish(&t, &raw(r#"{"n":1}"#), &persistent()).await })
    };
    // Failing at once would have ended it by now; it is still waiting for Redis.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "the publish ended while Redis was down: {:?}",
        waiting.await
    );
    server.restart();
    let r = waiting.await.unwrap();
    assert!(r.is_ok(), "stored once Redis was back: {r:?}");

    let mut c = raw_conn(&server.url());
    let entries: Vec<redis::Value> = redis::cmd("XRANGE")
        .arg(format!("events:{{{t}}}"))
        .arg("-")
        .arg("+")
        .query(&mut c)
        .unwrap();
    // The server kept nothing across the kill (no AOF): only what was stored after it.
    assert_eq!(entries.len(), 1, "{entries:?}");
    patient.disconnect().await.unwrap();
    hasty.disconnect().await.unwrap();
}
