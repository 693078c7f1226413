//! Latency histograms in `stats()` and the Prometheus exposition of `metrics()`, against the
//! shared Redis and the memory transport.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use event_bus::{Delivery, EventBusClient, HandlerError, PublishOptions, SubscriptionOptions};

/// `name{labels} value` lines of an exposition, keyed by `name{labels}`; every other line
/// must be a `# HELP` or `# TYPE` comment.
fn samples(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let v = if value == "+Inf" {
            f64::INFINITY
        } else {
            value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line}"))
        };
        assert!(
            out.insert(series.to_string(), v).is_none(),
            "repeated {series}"
        );
    }
    out
}

fn sleeping_handler(ms: u64) -> Arc<dyn event_bus::Handler> {
    Arc::new(move |_d: Delivery| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<(), HandlerError>(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histograms_count_every_event_and_exposition_names_each_subscription() {
    let service = unique("metrics");
    let bus = shared_client(&service).await;
    let ty = unique("metrics.evt");
    let ok = bus
        .subscribe(&ty, sleeping_handler(20), SubscriptionOptions::default())
        .await
        .unwrap();
    let bad_ty = format!("{ty}.bad");
    let failing = bus
        .subscribe(
            &bad_ty,
            Arc::new(|_d: Delivery| async { Err::<(), _>(HandlerError::new("no")) }),
            SubscriptionOptions::from_json(
                r#"{"retryOnError":true,"maxRetries":1,"retryDelay":1}"#,
            )
            .unwrap(),
        )
        .await
        .unwrap();

    for n in 0..30 {
        bus.publish(
            &ty,
            &raw(&format!(r#"{{"n":{n}}}"#)),
            &PublishOptions::default(),
        )
        .await
        .unwrap();
    }
    bus.publish(&bad_ty, &raw("1"), &PublishOptions::default())
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || {
            let s = bus.stats();
            s.events_delivered == 30 && s.events_failed == 1
        })
        .await,
        "{:?}",
        bus.stats()
    );

    let st = bus.stats();
    assert_eq!(st.latency.publish.count, 31);
    assert_eq!(st.latency.delivery.count, 31);
    // 30 successful calls + the failing one's first call and its retry.
    assert_eq!(st.latency.handler.count, 32);
    for s in [st.latency.publish, st.latency.delivery, st.latency.handler] {
        assert!(s.p50 <= s.p95 && s.p95 <= s.p99 && s.p99 <= s.max, "{s:?}");
        assert!(s.p50 > 0.0, "{s:?}");
    }
    // Every handler of `ok` sleeps 20 ms, so at least 30 of 32 calls took that long.
    assert!(st.latency.handler.p50 >= 20.0, "{:?}", st.latency.handler);
    assert_eq!(st.average_latency, st.latency.delivery.mean);
    assert_eq!(st.p99_latency, st.latency.delivery.p99);

    let text = bus.metrics();
    let m = samples(&text);
    let base = format!(r#"service="{service}",transport="single""#);
    let sub =
        |id: &str, pattern: &str| format!(r#"{base},subscription="{id}",pattern="{pattern}""#);
    let okl = sub(&ok.id, &ty);
    let badl = sub(&failing.id, &bad_ty);
    let get = |k: String| *m.get(&k).unwrap_or_else(|| panic!("no {k} in\n{text}"));
    assert_eq!(
        get(format!("eventbus_events_published_total{{{base}}}")),
        31.0
    );
    assert_eq!(
        get(format!("eventbus_events_delivered_total{{{base}}}")),
        30.0
    );
    assert_eq!(get(format!("eventbus_connected{{{base}}}")), 1.0);
    assert_eq!(get(format!("eventbus_subscriptions_active{{{base}}}")), 2.0);
    assert_eq!(
        get(format!("eventbus_publish_duration_seconds_count{{{base}}}")),
        31.0
    );
    assert_eq!(
        get(format!(
            r#"eventbus_publish_duration_seconds_bucket{{{base},le="+Inf"}}"#
        )),
        31.0
    );
    assert_eq!(
        get(format!("eventbus_subscription_delivered_total{{{okl}}}")),
        30.0
    );
    assert_eq!(
        get(format!("eventbus_subscription_failed_total{{{okl}}}")),
        0.0
    );
    assert_eq!(
        get(format!("eventbus_subscription_failed_total{{{badl}}}")),
        1.0
    );
    assert_eq!(
        get(format!("eventbus_subscription_retries_total{{{badl}}}")),
        1.0
    );
    assert_eq!(get(format!("eventbus_subscription_pending{{{okl}}}")), 0.0);
    // The 20 ms handler: nothing at or below 10 ms, everything below 30 s.
    assert_eq!(
        get(format!(
            r#"eventbus_handler_duration_seconds_bucket{{{okl},le="0.01"}}"#
        )),
        0.0
    );
    assert_eq!(
        get(format!(
            r#"eventbus_handler_duration_seconds_bucket{{{okl},le="30"}}"#
        )),
        30.0
    );
    assert_eq!(
        get(format!("eventbus_handler_duration_seconds_count{{{okl}}}")),
        30.0
    );
    assert!(get(format!("eventbus_handler_duration_seconds_sum{{{okl}}}")) >= 0.6);
    assert_eq!(
        get(format!("eventbus_delivery_latency_seconds_count{{{badl}}}")),
        1.0
    );

    // Buckets are cumulative in every histogram series.
    let mut by_series: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
    for (k, v) in &m {
        if let Some((name, rest)) = k.split_once("_bucket{") {
            let (labels, le) = rest.rsplit_once(",le=\"").unwrap();
            let le = le.trim_end_matches("\"}");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            by_series
                .entry(format!("{name}{labels}"))
                .or_default()
                .push((le, *v));
        }
    }
    assert_eq!(by_series.len(), 5); // publish + 2 per subscription
    for (s, mut b) in by_series {
        b.sort_by(|x, y| x.0.total_cmp(&y.0));
        assert!(b.windows(2).all(|w| w[0].1 <= w[1].1), "{s}: {b:?}");
    }

    // An unsubscribed subscription's series go away.
    assert!(bus.unsubscribe(&failing.id).await.unwrap());
    assert!(!bus.metrics().contains(&failing.id));
    bus.disconnect().await.unwrap();
    assert!(bus
        .metrics()
        .contains(&format!("eventbus_connected{{{base}}} 0\n")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_values_are_escaped_and_transport_is_named() {
    let bus = EventBusClient::from_json(&format!(
        r#"{{"serviceName":"{}","logLevel":"error","transport":"memory","redis":{{"url":"memory://{}"}}}}"#,
        "svc-\\\"quoted\\\"",
        unique("m")
    ))
    .unwrap();
    // Not connected yet: the mode comes from the configuration.
    assert!(bus
        .metrics()
        .contains(r#"eventbus_connected{service="svc-\"quoted\"",transport="memory"} 0"#));
    bus.connect().await.unwrap();
    let c = Collector::new();
    let pattern = "weird.\"x\"\\*";
    bus.subscribe(pattern, c.handler(), SubscriptionOptions::default())
        .await
        .unwrap();
    let text = bus.metrics();
    assert!(text.contains(r#"pattern="weird.\"x\"\\*""#), "{text}");
    samples(&text);
    bus.disconnect().await.unwrap();
}
