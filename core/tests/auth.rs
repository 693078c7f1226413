//! Authentication against a private `redis-server` with `requirepass` and an ACL user limited
//! to `allowed.*` channels: the password and the user work (config fields and URL), wrong
//! credentials fail `connect()` clearly, and what the ACL refuses fails alone.

mod common;

use std::time::Duration;

use common::*;
use event_bus::{ErrorKind, EventBusClient, PublishOptions};

fn server() -> RedisServer {
    RedisServer::start_with(&[
        "--requirepass",
        "s3cret",
        "--user",
        "alice",
        "on",
        ">wonderland",
        "~*",
        "&allowed.*",
        "+@all",
    ])
}

async fn round_trip(bus: &EventBusClient, channel: &str) {
    let col = Collector::new();
    bus.subscribe(channel, col.handler(), Default::default())
        .await
        .unwrap();
    let r = bus
        .publish(channel, &raw(r#"{"n":1}"#), &PublishOptions::default())
        .await
        .unwrap();
    assert_eq!(r.delivered_to, 1);
    assert_eq!(col.wait_for(1, Duration::from_secs(5)).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_in_config_and_acl_user_in_url_both_work() {
    let srv = server();
    let by_password = EventBusClient::from_json(&config(
        &unique("auth"),
        &srv.url(),
        r#""password":"s3cret""#,
        "",
    ))
    .unwrap();
    by_password.connect().await.unwrap();
    round_trip(&by_password, "any.channel").await;
    by_password.disconnect().await.unwrap();

    let url = format!("redis://alice:wonderland@127.0.0.1:{}", srv.port);
    let alice = EventBusClient::from_json(&config(&unique("auth"), &url, "", "")).unwrap();
    alice.connect().await.unwrap();
    round_trip(&alice, "allowed.one").await;
    alice.disconnect().await.unwrap();

    let by_fields = EventBusClient::from_json(&config(
        &unique("auth"),
        &srv.url(),
        r#""username":"alice","password":"wonderland""#,
        "",
    ))
    .unwrap();
    by_fields.connect().await.unwrap();
    round_trip(&by_fields, "allowed.two").await;
    by_fields.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_credentials_fail_connect_without_the_password_in_the_message() {
    let srv = server();
    for extra in [r#""password":"nope-not-it""#, ""] {
        let bus =
            EventBusClient::from_json(&config(&unique("auth"), &srv.url(), extra, "")).unwrap();
        let e = tokio::time::timeout(Duration::from_secs(20), bus.connect())
            .await
            .expect("connect() gave up in time")
            .expect_err("connect() must fail");
        assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
        let text = format!("{e} {e:?}");
        assert!(text.contains(&format!("127.0.0.1:{}", srv.port)), "{text}");
        assert!(!text.contains("nope-not-it"), "password leaked: {text}");
        assert!(!bus.is_connected());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_acl_refuses_fails_alone() {
    let srv = server();
    let url = format!("redis://alice:wonderland@127.0.0.1:{}", srv.port);
    let bus = EventBusClient::from_json(&config(&unique("auth"), &url, "", "")).unwrap();
    bus.connect().await.unwrap();
    let ok = Collector::new();
    bus.subscribe("allowed.x", ok.handler(), Default::default())
        .await
        .unwrap();

    // A refused subscription is an error for that call only, and leaves nothing behind.
    let denied = Collector::new();
    let e = bus
        .subscribe("denied.x", denied.handler(), Default::default())
        .await
        .expect_err("the ACL refuses denied.*");
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(
        e.message().starts_with(
            "Redis refused SUBSCRIBE on \"denied.x\": permission denied by the ACL of this \
             client's user (NOPERM "
        ),
        "{e}"
    );
    assert_eq!(bus.subscriptions().len(), 1, "{:?}", bus.subscriptions());

    // A refused publish fails alone; the connection and the allowed subscription go on.
    let opts = PublishOptions::default();
    let f = bus
        .publish("denied.y", &raw("1"), &opts)
        .await
        .expect_err("the ACL refuses PUBLISH on denied.*");
    assert_eq!(f.error.kind(), ErrorKind::PermissionDenied, "{}", f.error);
    assert_eq!(f.error.kind().code(), "PERMISSION_DENIED");
    assert!(
        f.error
            .message()
            .starts_with("Redis refused PUBLISH on \"denied.y\": permission denied"),
        "{}",
        f.error
    );
    assert!(!f.error.message().contains("ServerError"), "{}", f.error);
    let r = bus.publish("allowed.x", &raw("2"), &opts).await.unwrap();
    assert_eq!(r.delivered_to, 1);
    assert_eq!(ok.wait_for(1, Duration::from_secs(5)).await, 1);
    assert_eq!(bus.stats().reconnects, 0);
    bus.disconnect().await.unwrap();
}

/// A resubscribe that Redis refuses is reported as an error event and retried until it
/// succeeds. Revoking alice's channel permission makes Redis (7.0+) drop her subscriber
/// connection; the resubscribe on the new one is refused (NOPERM) until the permission is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_resubscribe_is_reported_and_retried_until_allowed() {
    let srv = server();
    let url = format!("redis://alice:wonderland@127.0.0.1:{}", srv.port);
    let bus = EventBusClient::from_json(&config(
        &unique("auth"),
        &url,
        r#""reconnectDelay":50,"reconnectDelayMax":200"#,
        "",
    ))
    .unwrap();
    bus.connect().await.unwrap();
    let states = StateLog::attach(&bus);
    let col = Collector::new();
    bus.subscribe("allowed.resub", col.handler(), Default::default())
        .await
        .unwrap();
    let mut admin = srv.conn();
    let _: () = redis::cmd("AUTH").arg("s3cret").query(&mut admin).unwrap();
    let acl = |admin: &mut redis::Connection, channels: &str| {
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("alice")
            .arg("resetchannels")
            .arg(channels)
            .query(admin)
            .unwrap();
    };

    acl(&mut admin, "&other.*");
    let refused = || {
        states.count(|e| {
            matches!(e, event_bus::StateEvent::Error { message, code, .. }
                if message.contains("Resubscribe failed") && message.to_lowercase().contains("noperm")
                    && code.as_deref() == Some("PERMISSION_DENIED"))
        })
    };
    // Refused more than once: the client keeps trying, it does not give up after one error.
    assert!(
        wait_until(Duration::from_secs(20), || refused() >= 2).await,
        "states: {:?}",
        states.names()
    );
    assert!(!states.has("gap"), "no gap notice while still refused");
    assert_eq!(
        bus.health_check().await.status,
        "degraded",
        "degraded while the subscriber is not back"
    );

    acl(&mut admin, "&allowed.*");
    assert!(
        wait_until(Duration::from_secs(20), || states.has("gap")).await,
        "resubscribed once allowed again: {:?}",
        states.names()
    );
    assert_eq!(numsub(&mut admin, "allowed.resub"), 1);
    let r = bus
        .publish("allowed.resub", &raw("3"), &PublishOptions::default())
        .await
        .unwrap();
    assert_eq!(r.delivered_to, 1);
    assert_eq!(col.wait_for(1, Duration::from_secs(5)).await, 1);
    bus.disconnect().await.unwrap();
}

/// `ACL SETUSER` taking `+publish` away mid-run: publishes fail with PERMISSION_DENIED naming
/// the channel (nothing is resent, the connection stays up), and giving it back heals the
/// client without a restart or a reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_permission_taken_away_and_given_back_mid_run() {
    let srv = server();
    let url = format!("redis://alice:wonderland@127.0.0.1:{}", srv.port);
    let bus = EventBusClient::from_json(&config(&unique("auth"), &url, "", "")).unwrap();
    bus.connect().await.unwrap();
    let col = Collector::new();
    bus.subscribe("allowed.acl", col.handler(), Default::default())
        .await
        .unwrap();
    let mut admin = srv.conn();
    let _: () = redis::cmd("AUTH").arg("s3cret").query(&mut admin).unwrap();
    let set = |admin: &mut redis::Connection, rule: &str| {
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("alice")
            .arg(rule)
            .query(admin)
            .unwrap();
    };
    let opts = PublishOptions::default();
    let publish = |n: u64| {
        let bus = bus.clone();
        let opts = opts.clone();
        async move {
            bus.publish("allowed.acl", &raw(&format!(r#"{{"n":{n}}}"#)), &opts)
                .await
        }
    };
    assert_eq!(publish(1).await.unwrap().delivered_to, 1);

    set(&mut admin, "-publish");
    for n in 2..5 {
        let f = publish(n).await.expect_err("publish is no longer allowed");
        assert_eq!(f.error.kind(), ErrorKind::PermissionDenied, "{}", f.error);
        assert!(
            f.error.message().starts_with(
                "Redis refused PUBLISH on \"allowed.acl\": permission denied by the ACL of \
                 this client's user (NOPERM this user has no permissions to run the 'publish' \
                 command)"
            ),
            "{}",
            f.error
        );
    }

    set(&mut admin, "+publish");
    assert_eq!(publish(5).await.unwrap().delivered_to, 1);
    assert_eq!(col.wait_for(2, Duration::from_secs(5)).await, 2);
    assert_eq!(
        col.numbers(),
        vec![1, 5],
        "refused publishes are not resent later"
    );
    assert_eq!(
        bus.stats().reconnects,
        0,
        "a refusal is not a lost connection"
    );
    bus.disconnect().await.unwrap();
}
