//! The core's async methods are safe to call from any thread and any executor: they hop onto
//! the core's runtime themselves where they need it (timers, sockets, spawned tasks). Faces rely
//! on this instead of wrapping every call in a spawn of their own.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use event_bus::{Delivery, EventBusClient, HandlerError, PublishOptions};

/// The smallest executor there is: poll on this thread, park until woken. No tokio anywhere.
fn plain_block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

fn redis_config(service: &str) -> String {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    format!(r#"{{"serviceName":"{service}","redis":{{"url":"{url}"}}}}"#)
}

async fn round_trip(bus: EventBusClient, channel: String) {
    bus.connect().await.unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let tx = std::sync::Mutex::new(tx);
    let handler = Arc::new(move |ev: Delivery| {
        let _ = tx.lock().unwrap().send(ev.data_json().to_string());
        async { Ok::<(), HandlerError>(()) }
    });
    let sub = bus
        .subscribe(&channel, handler, Default::default())
        .await
        .unwrap();
    let data = serde_json::value::RawValue::from_string(r#"{"n":1}"#.into()).unwrap();
    let receipt = bus
        .publish(&channel, &data, &PublishOptions::default())
        .await
        .unwrap();
    assert_eq!(receipt.delivered_to, 1);
    assert_eq!(
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap(),
        r#"{"n":1}"#
    );
    assert!(bus.unsubscribe(&sub.id).await.unwrap());
    let _ = bus.health_check().await;
    bus.disconnect().await.unwrap();
}

#[test]
fn every_call_works_from_a_thread_without_a_runtime() {
    let channel = format!("any-runtime.plain.{}", std::process::id());
    let bus = EventBusClient::from_json(&redis_config("any-runtime-plain")).unwrap();
    plain_block_on(round_trip(bus, channel));
}

#[test]
fn every_call_works_from_another_tokio_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let channel = format!("any-runtime.other.{}", std::process::id());
    let bus = EventBusClient::from_json(&redis_config("any-runtime-other")).unwrap();
    rt.block_on(round_trip(bus, channel));
    // The caller's runtime can go away: nothing of the client lives on it.
    drop(rt);
}
