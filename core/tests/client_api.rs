//! The client API on Redis (shared server, names unique to the test) and on the memory
//! transport: every check runs on both.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use event_bus::{
    BatchItem, Delivery, ErrorKind, EventBusClient, HandlerError, PublishOptions,
    SubscriptionOptions,
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum T {
    Redis,
    Memory,
}

fn cfg(t: T, service: &str, top_extra: &str) -> String {
    match t {
        T::Redis => config(service, &shared_url(), "", top_extra),
        T::Memory => {
            let broker = unique("broker");
            let t = if top_extra.is_empty() {
                String::new()
            } else {
                format!(",{top_extra}")
            };
            format!(
                r#"{{"serviceName":"{service}","logLevel":"error","transport":"memory","redis":{{"url":"memory://{broker}"}}{t}}}"#
            )
        }
    }
}

async fn client(t: T, extra: &str) -> EventBusClient {
    let bus = EventBusClient::from_json(&cfg(t, &unique("api"), extra)).unwrap();
    bus.connect().await.unwrap();
    bus
}

/// How many receivers Redis (or the broker) has for `channel`: a throwaway raw publish on
/// Redis; on memory, the count a publish reports.
async fn receivers(t: T, bus: &EventBusClient, channel: &str) -> u64 {
    match t {
        T::Redis => raw_publish(&mut raw_conn(&shared_url()), channel, b"probe") as u64,
        T::Memory => {
            bus.publish(channel, &raw("0"), &Default::default())
                .await
                .unwrap()
                .delivered_to
        }
    }
}

macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$name(super::T::Redis).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$name(super::T::Memory).await
            }
        }
    };
}

both!(publish_family_and_delivered_to);
async fn publish_family_and_delivered_to(t: T) {
    let bus = client(t, "").await;
    let tag = unique("pf");
    let col = Collector::new();
    let room_c = Collector::new();
    let user_c = Collector::new();
    let bc = Collector::new();
    bus.subscribe(&format!("{tag}.x"), col.handler(), Default::default())
        .await
        .unwrap();
    bus.subscribe(&format!("room:{tag}"), room_c.handler(), Default::default())
        .await
        .unwrap();
    bus.subscribe(&format!("user:{tag}"), user_c.handler(), Default::default())
        .await
        .unwrap();
    bus.subscribe("broadcast", bc.handler(), Default::default())
        .await
        .unwrap();
    let data = raw(r#"{"k":"v"}"#);
    let opts = PublishOptions {
        correlation_id: Some("c1".into()),
        trace_id: Some("t1".into()),
        ..Default::default()
    };
    let r = bus
        .publish(&format!("{tag}.x"), &data, &opts)
        .await
        .unwrap();
    assert_eq!(r.delivered_to, 1);
    assert_eq!(r.channel, format!("{tag}.x"));
    assert!(uuid::Uuid::parse_str(&r.event_id).is_ok());
    // Nobody listening: delivered to 0, still a success.
    let r0 = bus
        .publish(&format!("{tag}.none"), &data, &opts)
        .await
        .unwrap();
    assert_eq!(r0.delivered_to, 0);
    let r = bus
        .publish_to_room(&tag, "chat.message", &data, &opts)
        .await
        .unwrap();
    // >= 1: a Socket.IO hub on the shared server (the rooms tests start one) listens on
    // `room:*` too.
    assert_eq!(r.channel, format!("room:{tag}"));
    assert!(r.delivered_to >= 1, "{r:?}");
    let r = bus
        .publish_to_user(&tag, "notify.x", &data, &opts)
        .await
        .unwrap();
    // >= 1: a Socket.IO hub on the shared server (the rooms tests start one) listens on
    // `user:*` too.
    assert_eq!(r.channel, format!("user:{tag}"));
    assert!(r.delivered_to >= 1, "{r:?}");
    // Options on publish: room wins over user.
    let both = PublishOptions {
        room: Some(tag.clone()),
        user_id: Some(tag.clone()),
        ..Default::default()
    };
    let r = bus.publish("chat.message", &data, &both).await.unwrap();
    assert_eq!(r.channel, format!("room:{tag}"));
    let bt = format!("{tag}.bcast");
    let r = bus
        .broadcast(&bt, &data, &Default::default())
        .await
        .unwrap();
    assert_eq!(r.channel, "broadcast");
    assert!(r.delivered_to >= 1); // other clients of the shared server may listen too
    assert_eq!(col.wait_for(1, Duration::from_secs(5)).await, 1);
    assert_eq!(room_c.wait_for(2, Duration::from_secs(5)).await, 2);
    assert_eq!(user_c.wait_for(1, Duration::from_secs(5)).await, 1);
    assert!(
        wait_until(Duration::from_secs(5), || bc
            .all()
            .iter()
            .any(|d| d.event_type() == bt))
        .await
    );
    let d = &col.all()[0];
    assert_eq!(d.metadata().correlation_id.as_deref(), Some("c1"));
    assert_eq!(d.metadata().trace_id.as_deref(), Some("t1"));
    assert_eq!(d.id(), bus_event_id_of(&col, 0));
    let u = &user_c.all()[0];
    assert_eq!(u.metadata().user_id.as_deref(), Some(tag.as_str()));
    // Validation failure resolves as a failure with the TS message, counted.
    let f = bus.publish("bad type!", &data, &opts).await.unwrap_err();
    assert_eq!(f.error.kind(), ErrorKind::Validation);
    assert_eq!(
        f.error.message(),
        "Event type can only contain alphanumeric characters, dots, hyphens, and underscores"
    );
    assert!(bus.stats().events_failed >= 1);
    bus.disconnect().await.unwrap();
}

fn bus_event_id_of(c: &Collector, i: usize) -> String {
    c.all()[i].id().to_string()
}

both!(publish_batch_outcomes_in_order);
async fn publish_batch_outcomes_in_order(t: T) {
    let bus = client(t, "").await;
    let tag = unique("pb");
    let col = Collector::new();
    bus.subscribe(&format!("{tag}.*"), col.handler(), Default::default())
        .await
        .unwrap();
    let item = |ty: String, d: &str| BatchItem {
        event_type: ty,
        data: raw(d),
        options: Default::default(),
    };
    let items = vec![
        item(format!("{tag}.a"), "1"),
        item("bad type".into(), "2"),
        item(format!("{tag}.b"), "null"),
        item(format!("{tag}.c"), r#"{"n":3}"#),
    ];
    let out = bus.publish_batch(&items).await;
    assert_eq!(out.len(), 4);
    assert_eq!(out[0].as_ref().unwrap().delivered_to, 1);
    assert_eq!(
        out[1].as_ref().unwrap_err().error.kind(),
        ErrorKind::Validation
    );
    assert_eq!(
        out[2].as_ref().unwrap_err().error.message(),
        "Event data is required"
    );
    assert_eq!(out[3].as_ref().unwrap().channel, format!("{tag}.c"));
    assert_eq!(col.wait_for(2, Duration::from_secs(5)).await, 2);
    let types: Vec<String> = col
        .all()
        .iter()
        .map(|d| d.event_type().to_string())
        .collect();
    assert_eq!(types, [format!("{tag}.a"), format!("{tag}.c")]);
    assert!(bus.publish_batch(&[]).await.is_empty());
    bus.disconnect().await.unwrap();
}

both!(exactly_once_per_subscription);
async fn exactly_once_per_subscription(t: T) {
    let bus = client(t, "").await;
    let tag = unique("eo");
    let exact = Collector::new();
    let pat = Collector::new();
    let pat2 = Collector::new();
    let q = Collector::new();
    bus.subscribe(&format!("{tag}.x.y"), exact.handler(), Default::default())
        .await
        .unwrap();
    bus.subscribe(&format!("{tag}.*"), pat.handler(), Default::default())
        .await
        .unwrap();
    bus.subscribe(&format!("{tag}.*"), pat2.handler(), Default::default())
        .await
        .unwrap();
    bus.subscribe(&format!("{tag}.?.y"), q.handler(), Default::default())
        .await
        .unwrap();
    let r = bus
        .publish(&format!("{tag}.x.y"), &raw("1"), &Default::default())
        .await
        .unwrap();
    // Redis counts one receiver per matching (p)subscription of the connection: the channel,
    // `tag.*` once (two subscriptions share it) and `tag.?.y`.
    assert_eq!(r.delivered_to, 3);
    for c in [&exact, &pat, &pat2, &q] {
        assert_eq!(c.wait_for(1, Duration::from_secs(5)).await, 1);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for c in [&exact, &pat, &pat2, &q] {
        assert_eq!(c.len(), 1, "exactly once");
    }
    assert_eq!(exact.all()[0].pattern(), None);
    assert_eq!(pat.all()[0].pattern(), Some(format!("{tag}.*").as_str()));
    assert_eq!(q.all()[0].pattern(), Some(format!("{tag}.?.y").as_str()));
    assert_eq!(exact.all()[0].channel(), format!("{tag}.x.y"));
    let st = bus.stats();
    assert_eq!(st.events_delivered, 4);
    bus.disconnect().await.unwrap();
}

both!(unsubscribe_refcounting);
async fn unsubscribe_refcounting(t: T) {
    let bus = client(t, "").await;
    let tag = unique("rc");
    let pattern = format!("{tag}.*");
    let chan = format!("{tag}-chan");
    let (a, b, c1, c2) = (
        Collector::new(),
        Collector::new(),
        Collector::new(),
        Collector::new(),
    );
    let sa = bus
        .subscribe(&pattern, a.handler(), Default::default())
        .await
        .unwrap();
    let sb = bus
        .subscribe(&pattern, b.handler(), Default::default())
        .await
        .unwrap();
    let sc1 = bus
        .subscribe(&chan, c1.handler(), Default::default())
        .await
        .unwrap();
    let sc2 = bus
        .subscribe(&chan, c2.handler(), Default::default())
        .await
        .unwrap();
    assert!(sa.active && sa.pattern == pattern && sa.id != sb.id);
    assert_eq!(bus.stats().active_subscriptions, 4);
    let probe = format!("{tag}.probe");
    assert_eq!(
        receivers(t, &bus, &probe).await,
        1,
        "one PSUBSCRIBE for two subscriptions"
    );
    assert_eq!(
        receivers(t, &bus, &chan).await,
        1,
        "one SUBSCRIBE for two subscriptions"
    );
    if t == T::Redis {
        assert_eq!(numsub(&mut raw_conn(&shared_url()), &chan), 1);
    }
    assert!(bus.unsubscribe(&sa.id).await.unwrap());
    assert!(
        !bus.unsubscribe(&sa.id).await.unwrap(),
        "second unsubscribe is false"
    );
    assert!(bus.unsubscribe(&sc1.id).await.unwrap());
    assert_eq!(
        receivers(t, &bus, &probe).await,
        1,
        "the other subscription keeps the pattern"
    );
    assert_eq!(receivers(t, &bus, &chan).await, 1);
    if t == T::Redis {
        assert_eq!(numsub(&mut raw_conn(&shared_url()), &chan), 1);
    }
    let before = a.len();
    bus.publish(&format!("{tag}.ev"), &raw("1"), &Default::default())
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || b
            .all()
            .iter()
            .any(|d| d.event_type().ends_with(".ev")))
        .await
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(a.len(), before, "unsubscribed handler gets nothing");
    assert!(bus.unsubscribe(&sb.id).await.unwrap());
    assert!(bus.unsubscribe(&sc2.id).await.unwrap());
    assert_eq!(
        receivers(t, &bus, &probe).await,
        0,
        "last one gone: PUNSUBSCRIBE"
    );
    assert_eq!(receivers(t, &bus, &chan).await, 0);
    if t == T::Redis {
        assert_eq!(numsub(&mut raw_conn(&shared_url()), &chan), 0);
    }
    assert_eq!(bus.stats().active_subscriptions, 0);
    assert_eq!(bus.stats().total_subscriptions, 4);
    bus.disconnect().await.unwrap();
}

both!(order_with_concurrency_one);
async fn order_with_concurrency_one(t: T) {
    let bus = client(t, "").await;
    let ch = unique("ord");
    let seen: Arc<Mutex<Vec<u64>>> = Arc::default();
    let s = seen.clone();
    bus.subscribe(
        &ch,
        Arc::new(move |d: Delivery| {
            let s = s.clone();
            async move {
                let n = d.data()["n"].as_u64().unwrap();
                // Uneven handler times must not reorder.
                if n.is_multiple_of(7) {
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
                s.lock().unwrap().push(n);
                Ok::<(), HandlerError>(())
            }
        }),
        Default::default(),
    )
    .await
    .unwrap();
    let items = numbered_items(&ch, 0..300);
    for r in bus.publish_batch(&items).await {
        r.unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(10), || seen.lock().unwrap().len()
            == 300)
        .await
    );
    assert_eq!(*seen.lock().unwrap(), (0..300).collect::<Vec<u64>>());
    bus.disconnect().await.unwrap();
}

both!(concurrency_runs_handlers_in_parallel);
async fn concurrency_runs_handlers_in_parallel(t: T) {
    let bus = client(t, "").await;
    let ch = unique("conc");
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (f, p) = (in_flight.clone(), peak.clone());
    bus.subscribe(
        &ch,
        Arc::new(move |_d: Delivery| {
            let (f, p) = (f.clone(), p.clone());
            async move {
                let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                // Hold until 4 run at once (or give up): proves parallelism without timing.
                let deadline = Instant::now() + Duration::from_secs(5);
                while p.load(Ordering::SeqCst) < 4 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                f.fetch_sub(1, Ordering::SeqCst);
                Ok::<(), HandlerError>(())
            }
        }),
        SubscriptionOptions {
            concurrency: Some(4),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for i in 0..12 {
        bus.publish(&ch, &raw(&format!("{i}")), &Default::default())
            .await
            .unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(15), || bus.stats().events_delivered
            == 12)
        .await
    );
    assert_eq!(
        peak.load(Ordering::SeqCst),
        4,
        "never more than concurrency, and reached it"
    );
    bus.disconnect().await.unwrap();
}

both!(max_pending_drops_and_counts);
async fn max_pending_drops_and_counts(t: T) {
    let bus = client(t, "").await;
    let ch = unique("mp");
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let (g, s) = (gate.clone(), started.clone());
    let sub = bus
        .subscribe(
            &ch,
            Arc::new(move |_d: Delivery| {
                s.fetch_add(1, Ordering::SeqCst);
                let g = g.clone();
                async move {
                    g.acquire().await.unwrap().forget();
                    Ok::<(), HandlerError>(())
                }
            }),
            SubscriptionOptions {
                max_pending: Some(5),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    bus.publish(&ch, &raw("0"), &Default::default())
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || started.load(Ordering::SeqCst)
            == 1)
        .await
    );
    for i in 1..20 {
        bus.publish(&ch, &raw(&format!("{i}")), &Default::default())
            .await
            .unwrap();
    }
    assert!(wait_until(Duration::from_secs(5), || bus.stats().events_received == 20).await);
    assert_eq!(bus.pending_events(&sub.id), Some(5));
    assert_eq!(bus.stats().events_dropped, 14);
    gate.add_permits(100);
    assert!(wait_until(Duration::from_secs(5), || bus.stats().events_delivered == 6).await);
    bus.disconnect().await.unwrap();
}

both!(timeout_and_retries_with_backoff);
async fn timeout_and_retries_with_backoff(t: T) {
    let bus = client(t, "").await;
    // Timeout: a handler slower than its timeout fails; the next event is handled.
    let ch = unique("to");
    let done = Arc::new(AtomicUsize::new(0));
    let d2 = done.clone();
    bus.subscribe(
        &ch,
        Arc::new(move |d: Delivery| {
            let d2 = d2.clone();
            async move {
                if d.data() == serde_json::json!("slow") {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                d2.fetch_add(1, Ordering::SeqCst);
                Ok::<(), HandlerError>(())
            }
        }),
        SubscriptionOptions {
            timeout: Some(100),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    bus.publish(&ch, &raw(r#""slow""#), &Default::default())
        .await
        .unwrap();
    bus.publish(&ch, &raw(r#""fast""#), &Default::default())
        .await
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || done.load(Ordering::SeqCst) == 1).await);
    let st = bus.stats();
    assert_eq!(st.events_delivered, 1);
    assert_eq!(st.events_failed, 1, "the timed-out run counts as failed");

    // Retries: fails twice then succeeds; delays double from retryDelay.
    let ch = unique("retry");
    let attempts: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let a = attempts.clone();
    bus.subscribe(
        &ch,
        Arc::new(move |_d: Delivery| {
            let n = {
                let mut a = a.lock().unwrap();
                a.push(Instant::now());
                a.len()
            };
            async move {
                if n < 3 {
                    Err(HandlerError::new("boom"))
                } else {
                    Ok(())
                }
            }
        }),
        SubscriptionOptions {
            retry_on_error: Some(true),
            max_retries: Some(3),
            retry_delay: Some(40),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    bus.publish(&ch, &raw("1"), &Default::default())
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || attempts.lock().unwrap().len()
            == 3)
        .await
    );
    assert!(wait_until(Duration::from_secs(5), || bus.stats().events_delivered == 2).await);
    let at = attempts.lock().unwrap().clone();
    assert!(
        at[1] - at[0] >= Duration::from_millis(40),
        "{:?}",
        at[1] - at[0]
    );
    assert!(
        at[2] - at[1] >= Duration::from_millis(80),
        "backoff doubles: {:?}",
        at[2] - at[1]
    );

    // Always failing: 1 + maxRetries attempts, then one failure counted.
    let ch = unique("retryfail");
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    bus.subscribe(
        &ch,
        Arc::new(move |_d: Delivery| {
            n2.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(HandlerError::new("always")) }
        }),
        SubscriptionOptions {
            retry_on_error: Some(true),
            max_retries: Some(2),
            retry_delay: Some(5),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let failed_before = bus.stats().events_failed;
    bus.publish(&ch, &raw("1"), &Default::default())
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || bus.stats().events_failed
            == failed_before + 1)
        .await
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(n.load(Ordering::SeqCst), 3);
    // Without retryOnError: one attempt.
    let ch = unique("noretry");
    let m = Arc::new(AtomicUsize::new(0));
    let m2 = m.clone();
    bus.subscribe(
        &ch,
        Arc::new(move |_d: Delivery| {
            m2.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(HandlerError::new("once")) }
        }),
        Default::default(),
    )
    .await
    .unwrap();
    bus.publish(&ch, &raw("1"), &Default::default())
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || bus.stats().events_failed
            == failed_before + 2)
        .await
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(m.load(Ordering::SeqCst), 1);
    bus.disconnect().await.unwrap();
}

both!(filter_conditions);
async fn filter_conditions(t: T) {
    let bus = client(t, "").await;
    let tag = unique("flt");
    let and_c = Collector::new();
    let or_c = Collector::new();
    let opts: SubscriptionOptions = serde_json::from_value(serde_json::json!({
        "filter": {"conditions": [
            {"field": "data.userId", "operator": "equals", "value": "u1"},
            {"field": "data.size", "operator": "greaterThan", "value": 10}
        ], "operator": "AND"}
    }))
    .unwrap();
    bus.subscribe(&format!("{tag}.*"), and_c.handler(), opts)
        .await
        .unwrap();
    let opts: SubscriptionOptions = serde_json::from_value(serde_json::json!({
        "filter": {"conditions": [
            {"field": "data.userId", "operator": "in", "value": ["u2"]},
            {"field": "metadata.correlationId", "operator": "equals", "value": "c9"}
        ], "operator": "OR"}
    }))
    .unwrap();
    bus.subscribe(&format!("{tag}.*"), or_c.handler(), opts)
        .await
        .unwrap();
    let bad: SubscriptionOptions = serde_json::from_value(serde_json::json!({
        "filter": {"conditions": [{"field": "x", "operator": "like", "value": 1}]}
    }))
    .unwrap();
    let e = bus
        .subscribe(&format!("{tag}.*"), and_c.handler(), bad)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    let ty = format!("{tag}.ev");
    for (d, corr) in [
        (r#"{"userId":"u1","size":20}"#, None),
        (r#"{"userId":"u1","size":5}"#, None),
        (r#"{"userId":"u2","size":50}"#, None),
        (r#"{"userId":"u3","size":50}"#, Some("c9")),
    ] {
        let o = PublishOptions {
            correlation_id: corr.map(Into::into),
            ..Default::default()
        };
        bus.publish(&ty, &raw(d), &o).await.unwrap();
    }
    assert_eq!(or_c.wait_for(2, Duration::from_secs(5)).await, 2);
    assert_eq!(and_c.wait_for(1, Duration::from_secs(5)).await, 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(and_c.len(), 1);
    assert_eq!(and_c.all()[0].data()["size"], 20);
    let users: Vec<String> = or_c
        .all()
        .iter()
        .map(|d| d.data()["userId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(users, ["u2", "u3"]);
    assert_eq!(bus.stats().events_filtered, 3 + 2);
    bus.disconnect().await.unwrap();
}

both!(stats_and_health_have_real_values);
async fn stats_and_health_have_real_values(t: T) {
    let bus = client(t, "").await;
    let ch = unique("st");
    let col = Collector::new();
    bus.subscribe(&ch, col.handler(), Default::default())
        .await
        .unwrap();
    let h = bus.health_check().await;
    assert_eq!(h.status, "healthy");
    assert_eq!(h.checks["redis"]["status"], "pass");
    assert!(h.checks["redis"]["duration"].as_f64().unwrap() >= 0.0);
    assert_eq!(h.version, event_bus::VERSION);
    for i in 0..20 {
        bus.publish(&ch, &raw(&format!("{i}")), &Default::default())
            .await
            .unwrap();
    }
    assert_eq!(col.wait_for(20, Duration::from_secs(5)).await, 20);
    // messagesPerSecond counts full seconds of a recent window.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let st = bus.stats();
    assert_eq!(st.events_published, 20);
    assert_eq!(st.events_received, 20);
    assert!(
        wait_until(Duration::from_secs(2), || bus.stats().events_delivered
            == 20)
        .await
    );
    assert_eq!(st.events_failed, 0);
    assert_eq!(st.active_subscriptions, 1);
    assert_eq!(st.total_subscriptions, 1);
    assert_eq!(st.active_connections, 2);
    assert!(st.average_latency > 0.0 && st.p99_latency >= st.p95_latency);
    assert!(st.messages_per_second > 0.0, "{st:?}");
    assert!(st.uptime >= 1000);
    assert!(st.memory_usage.rss > 0);
    assert_eq!(st.error_rate, 0.0);
    let h = bus.health_check().await;
    assert!(h.uptime >= 1000);
    bus.disconnect().await.unwrap();
    let h = bus.health_check().await;
    assert_eq!(h.status, "unhealthy");
    assert_eq!(bus.stats().active_connections, 0);
}

both!(disconnect_drains_and_releases);
async fn disconnect_drains_and_releases(t: T) {
    let bus = client(t, "").await;
    let ch = unique("dr");
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let marker = Arc::new(());
    let m = marker.clone();
    bus.subscribe(
        &ch,
        Arc::new(move |_e: Delivery| {
            let d = d.clone();
            let _m = m.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                d.fetch_add(1, Ordering::SeqCst);
                Ok::<(), HandlerError>(())
            }
        }),
        Default::default(),
    )
    .await
    .unwrap();
    for i in 0..3 {
        bus.publish(&ch, &raw(&format!("{i}")), &Default::default())
            .await
            .unwrap();
    }
    assert!(wait_until(Duration::from_secs(5), || bus.stats().events_received == 3).await);
    bus.disconnect().await.unwrap();
    assert_eq!(
        done.load(Ordering::SeqCst),
        3,
        "queued and running handlers drained"
    );
    assert!(!bus.is_connected());
    assert_eq!(Arc::strong_count(&marker), 1, "handler released");
    bus.disconnect().await.unwrap(); // idempotent
    let f = bus
        .publish(&ch, &raw("1"), &Default::default())
        .await
        .unwrap_err();
    assert_eq!(f.error.kind(), ErrorKind::NotConnected);
    assert_eq!(f.error.message(), "Not connected to Event Bus");

    // A handler that outlives disconnectTimeout is abandoned at the timeout.
    let bus = client(t, r#""disconnectTimeout":200"#).await;
    let ch = unique("dr2");
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    bus.subscribe(
        &ch,
        Arc::new(move |_e: Delivery| {
            s.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<(), HandlerError>(())
            }
        }),
        Default::default(),
    )
    .await
    .unwrap();
    bus.publish(&ch, &raw("1"), &Default::default())
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || started.load(Ordering::SeqCst)
            == 1)
        .await
    );
    let t0 = Instant::now();
    bus.disconnect().await.unwrap();
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(
        took < Duration::from_secs(30),
        "abandoned at the timeout, not after the handler: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_connections_are_named_and_released() {
    let service = unique("named");
    let bus = EventBusClient::from_json(&config(&service, &shared_url(), "", "")).unwrap();
    bus.connect().await.unwrap();
    let mut admin = raw_conn(&shared_url());
    let names: Vec<String> = client_list(&mut admin)
        .into_iter()
        .filter_map(|c| c.get("name").cloned())
        .filter(|n| n.starts_with(&service))
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, [format!("{service}:pub"), format!("{service}:sub")]);
    bus.disconnect().await.unwrap();
    let gone = wait_until(Duration::from_secs(5), || {
        !client_list(&mut admin)
            .iter()
            .any(|c| c.get("name").is_some_and(|n| n.starts_with(&service)))
    })
    .await;
    assert!(gone, "both connections closed by disconnect()");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_unreachable_port_names_the_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bus = EventBusClient::from_json(&config(
        "unreach",
        &format!("redis://127.0.0.1:{port}"),
        r#""connectTimeout":2000"#,
        "",
    ))
    .unwrap();
    let e = bus.connect().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(!bus.is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_before_connect_fail_not_connected() {
    for t in [T::Redis, T::Memory] {
        let bus = EventBusClient::from_json(&cfg(t, "early", "")).unwrap();
        let f = bus
            .publish("a.b", &raw("1"), &Default::default())
            .await
            .unwrap_err();
        assert_eq!(f.error.message(), "Not connected to Event Bus");
        let c = Collector::new();
        let e = bus
            .subscribe("a.*", c.handler(), Default::default())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotConnected);
        assert_eq!(bus.health_check().await.status, "unhealthy");
        bus.disconnect().await.unwrap();
    }
}
