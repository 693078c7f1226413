//! Faces that take several queued events per crossing (`Handler::batched`): order is kept,
//! every event is handled once, and a failed event is still retried per the policy.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_bus::{
    Delivery, EventBusClient, Handler, HandlerError, HandlerFuture, OutcomeReporter,
    SubscriptionOptions,
};
use serde_json::value::RawValue;

#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(u64, bool)>>, // (seq, via batch)
    batches: Mutex<Vec<usize>>,
}

struct BatchHandler(Arc<Recorder>);

impl Recorder {
    /// Seq 7 fails the first time it is seen, whichever path it comes through.
    fn outcome(&self, s: u64, via_batch: bool) -> Result<(), HandlerError> {
        let mut seen = self.seen.lock().unwrap();
        let first_seven = s == 7 && !seen.iter().any(|(x, _)| *x == 7);
        seen.push((s, via_batch));
        if first_seven {
            Err(HandlerError::new("seven fails once"))
        } else {
            Ok(())
        }
    }
}

fn seq(ev: &Delivery) -> u64 {
    ev.data()["seq"].as_u64().unwrap()
}

impl Handler for BatchHandler {
    fn call(&self, event: Delivery) -> HandlerFuture {
        let r = self.0.clone();
        Box::pin(async move {
            let s = seq(&event);
            if s == 0 {
                // Slow first event: the rest queue up and arrive as a batch.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            r.outcome(s, false)
        })
    }
    fn batched(&self) -> bool {
        true
    }
    /// Runs them all now, in order, as a host would in one wake-up, claiming each first.
    fn run_batch(&self, events: Vec<Delivery>, outcomes: OutcomeReporter) {
        self.0.batches.lock().unwrap().push(events.len());
        for (i, ev) in events.iter().enumerate() {
            if !outcomes.claim(i) {
                break;
            }
            outcomes.report(i, self.0.outcome(seq(ev), true));
        }
        outcomes.flush();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_handler_keeps_order_and_retries() {
    let bus = EventBusClient::from_json(
        r#"{"serviceName":"hb","transport":"memory","redis":{"url":"memory://handler-batch"}}"#,
    )
    .unwrap();
    bus.connect().await.unwrap();
    let rec = Arc::new(Recorder::default());
    let opts = SubscriptionOptions {
        retry_on_error: Some(true),
        retry_delay: Some(1),
        max_retries: Some(2),
        ..Default::default()
    };
    bus.subscribe("hb.*", Arc::new(BatchHandler(rec.clone())), opts)
        .await
        .unwrap();
    for i in 0..50u64 {
        let d = RawValue::from_string(format!(r#"{{"seq":{i}}}"#)).unwrap();
        bus.publish("hb.ev", &d, &Default::default()).await.unwrap();
    }
    for _ in 0..200 {
        if bus.stats().events_delivered >= 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = rec.seen.lock().unwrap().clone();
    // Every event once in order, plus one retry of 7 through `call`.
    let sevens: Vec<usize> = seen
        .iter()
        .enumerate()
        .filter(|(_, (s, _))| *s == 7)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(sevens.len(), 2, "7 runs twice (first run fails): {seen:?}");
    assert_eq!(
        seen[sevens[1]],
        (7, false),
        "the retry goes through call(): {seen:?}"
    );
    let mut without_retry: Vec<u64> = seen.iter().map(|(s, _)| *s).collect();
    without_retry.remove(sevens[1]);
    assert_eq!(
        without_retry,
        (0..50).collect::<Vec<u64>>(),
        "in order, once each"
    );
    assert!(
        rec.batches.lock().unwrap().iter().any(|n| *n > 1),
        "events were batched"
    );
    let st = bus.stats();
    assert_eq!(st.events_delivered, 50);
    assert_eq!(st.events_failed, 0);
    bus.disconnect().await.unwrap();
}

/// A host like the Python and Node faces: a batch runs on the host's own thread, one handler
/// after another, and the run ends at the first event it cannot claim; seq 1's handler blocks
/// until released.
struct SequentialHost {
    seen: Arc<Mutex<Vec<(u64, bool)>>>, // (seq, via batch)
    gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
}

impl SequentialHost {
    fn run(
        seen: &Mutex<Vec<(u64, bool)>>,
        gate: &(Mutex<bool>, std::sync::Condvar),
        s: u64,
        via_batch: bool,
    ) {
        seen.lock().unwrap().push((s, via_batch));
        if s == 1 {
            let (open, cv) = gate;
            let mut g = open.lock().unwrap();
            while !*g {
                g = cv.wait(g).unwrap();
            }
        } else if s == 0 {
            // Slow first event: the rest queue up and arrive as one batch.
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Handler for SequentialHost {
    fn call(&self, event: Delivery) -> HandlerFuture {
        let (seen, gate) = (self.seen.clone(), self.gate.clone());
        Box::pin(async move {
            let s = seq(&event);
            tokio::task::spawn_blocking(move || SequentialHost::run(&seen, &gate, s, false))
                .await
                .map_err(|e| HandlerError::new(e.to_string()))
        })
    }
    fn batched(&self) -> bool {
        true
    }
    /// Claims each event before running it, as the Node and Python faces do.
    fn run_batch(&self, events: Vec<Delivery>, outcomes: OutcomeReporter) {
        let (seen, gate) = (self.seen.clone(), self.gate.clone());
        std::thread::spawn(move || {
            for (i, ev) in events.iter().enumerate() {
                if !outcomes.claim(i) {
                    break;
                }
                SequentialHost::run(&seen, &gate, seq(ev), true);
                outcomes.report(i, Ok(()));
            }
            outcomes.flush();
        });
    }
}

/// A client on its own memory broker with a [`SequentialHost`] subscribed (`timeout` 100 ms)
/// and seqs 0-5 published; returns the client, what the host saw and its gate.
async fn timed_out_batch(
    name: &str,
) -> (
    EventBusClient,
    Arc<Mutex<Vec<(u64, bool)>>>,
    Arc<(Mutex<bool>, std::sync::Condvar)>,
) {
    let bus = EventBusClient::from_json(&format!(
        r#"{{"serviceName":"hb","transport":"memory","redis":{{"url":"memory://{name}"}}}}"#
    ))
    .unwrap();
    bus.connect().await.unwrap();
    let host = SequentialHost {
        seen: Arc::default(),
        gate: Arc::default(),
    };
    let (seen, gate) = (host.seen.clone(), host.gate.clone());
    let opts = SubscriptionOptions {
        timeout: Some(100),
        ..Default::default()
    };
    bus.subscribe("hbt.*", Arc::new(host), opts).await.unwrap();
    for i in 0..6u64 {
        let d = RawValue::from_string(format!(r#"{{"seq":{i}}}"#)).unwrap();
        bus.publish("hbt.ev", &d, &Default::default())
            .await
            .unwrap();
    }
    (bus, seen, gate)
}

/// Poll `cond` every 10 ms for up to 5 s.
async fn wait(mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn open(gate: &(Mutex<bool>, std::sync::Condvar)) {
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
}

/// The seqs seen, sorted.
fn sorted(seen: &[(u64, bool)]) -> Vec<u64> {
    let mut seqs: Vec<u64> = seen.iter().map(|(s, _)| *s).collect();
    seqs.sort();
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_handler_does_not_fail_the_rest_of_its_batch() {
    // Seq 1 times out while the host is still running it; seqs 2-5, batched behind it, must
    // still run once each and count as delivered, not wait behind it and time out unstarted.
    let (bus, seen, gate) = timed_out_batch("handler-batch-timeout").await;
    // Seq 1 stays blocked until everything else was delivered.
    wait(|| bus.stats().events_delivered >= 5).await;
    let delivered_while_blocked = bus.stats().events_delivered;
    open(&gate);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(delivered_while_blocked, 5, "{seen:?}");
    assert!(seen.contains(&(1, true)), "seq 1 ran in a batch: {seen:?}");
    assert_eq!(
        sorted(&seen),
        (0..6).collect::<Vec<u64>>(),
        "once each: {seen:?}"
    );
    let st = bus.stats();
    assert_eq!((st.events_failed, st.events_delivered), (1, 5));
    bus.disconnect().await.unwrap();
}
