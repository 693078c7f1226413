//! The per-subscription queue bound: a blocked handler and 100,000 events. The queue never
//! exceeds maxPending, the drop counter equals the real drops, memory stays flat.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use event_bus::{BatchItem, Delivery, HandlerError, SubscriptionOptions};

const TOTAL: usize = 100_000;
const MAX_PENDING: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_handler_queue_bound_and_drop_count() {
    let bus = shared_client(&unique("qbound")).await;
    let chan = unique("qbound.chan");
    let started = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let (s, r) = (started.clone(), release.clone());
    let handler = Arc::new(move |_d: Delivery| {
        s.fetch_add(1, Ordering::SeqCst);
        let r = r.clone();
        async move {
            r.notified().await; // blocked until the test releases it
            Ok::<(), HandlerError>(())
        }
    });
    let sub = bus
        .subscribe(
            &chan,
            handler,
            SubscriptionOptions {
                max_pending: Some(MAX_PENDING),
                timeout: Some(600_000),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let data = raw(&format!(r#"{{"pad":"{}"}}"#, "p".repeat(900)));
    let mut max_seen = 0;
    let mut rss_after_first = 0;
    let mut sent = 0;
    while sent < TOTAL {
        let items: Vec<BatchItem> = (0..500)
            .map(|_| BatchItem {
                event_type: chan.clone(),
                data: data.clone(),
                options: Default::default(),
            })
            .collect();
        for r in bus.publish_batch(&items).await {
            assert_eq!(r.unwrap().delivered_to, 1);
        }
        sent += items.len();
        let q = bus.pending_events(&sub.id).unwrap();
        max_seen = max_seen.max(q);
        assert!(q <= MAX_PENDING, "queue {q} > maxPending");
        if sent == 10_000 {
            wait_until(Duration::from_secs(30), || {
                bus.stats().events_received as usize == sent
            })
            .await;
            rss_after_first = bus.stats().memory_usage.rss;
        }
    }
    assert!(
        wait_until(Duration::from_secs(60), || bus.stats().events_received
            as usize
            == TOTAL)
        .await,
        "received {} of {TOTAL}",
        bus.stats().events_received
    );
    let st = bus.stats();
    let queued = bus.pending_events(&sub.id).unwrap();
    let in_handler = started.load(Ordering::SeqCst);
    println!(
        "queued {queued} (max seen {max_seen}), in handler {in_handler}, dropped {}, rss {} -> {} KiB",
        st.events_dropped,
        rss_after_first / 1024,
        st.memory_usage.rss / 1024
    );
    assert_eq!(in_handler, 1, "the handler is blocked on the first event");
    assert_eq!(queued, MAX_PENDING, "the queue is full, not over");
    assert_eq!(st.events_delivered, 0);
    // published - handled (or being handled) - queued = dropped
    assert_eq!(
        st.events_dropped as usize,
        TOTAL - in_handler - queued,
        "drop counter equals the real drops"
    );
    // 90,000 events of ~1 KB went by after the first measurement; a leak would show as ~90 MB.
    let growth = st.memory_usage.rss.saturating_sub(rss_after_first);
    assert!(
        growth < 48 * 1024 * 1024,
        "RSS grew by {} KiB",
        growth / 1024
    );

    // Unblock: the queue drains and the handler sees exactly the kept events.
    let drain = tokio::spawn({
        let release = release.clone();
        let started = started.clone();
        async move {
            while started.load(Ordering::SeqCst) < 1 + MAX_PENDING {
                release.notify_one();
                tokio::task::yield_now().await;
            }
            release.notify_one();
        }
    });
    assert!(
        wait_until(Duration::from_secs(30), || bus.stats().events_delivered
            as usize
            == 1 + MAX_PENDING)
        .await
    );
    drain.await.unwrap();
    assert_eq!(bus.pending_events(&sub.id), Some(0));
    bus.disconnect().await.unwrap();
}
