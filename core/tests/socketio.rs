//! Rooms over Socket.IO against the test hub (`tests/fixtures/socketio-hub/hub.js`, on the
//! official npm socket.io server): join/leave/members, room events reaching exactly the
//! members, one delivery per subscription when an event comes by Redis and by Socket.IO, the
//! hub restarted mid-test, a wrong token, an unreachable hub, and the polling transport.
#![cfg(feature = "socketio")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{raw, shared_url, unique, wait_until, Collector, StateLog};
use event_bus::{ErrorKind, EventBusClient, PublishOptions, SubscriptionOptions};
use serde_json::Value;

const TOKEN: &str = "hub-secret";

/// The test hub as a child process; killed on drop.
struct Hub {
    child: Option<Child>,
    port: u16,
    extra: Vec<String>,
}

fn hub_script() -> std::path::PathBuf {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/socketio-hub");
    assert!(
        dir.join("node_modules/socket.io").exists(),
        "the test hub's dependencies are missing: run `npm ci --prefix tests/fixtures/socketio-hub`"
    );
    dir.join("hub.js")
}

impl Hub {
    fn start(extra: &[&str]) -> Hub {
        Self::start_on(0, extra)
    }

    fn start_on(port: u16, extra: &[&str]) -> Hub {
        let mut hub = Hub {
            child: None,
            port,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        hub.spawn();
        hub
    }

    fn spawn(&mut self) {
        let mut child = Command::new("node")
            .arg(hub_script())
            .args(["--port", &self.port.to_string(), "--token", TOKEN])
            .args(["--redis", &shared_url()])
            .args(&self.extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs the hub");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("hub did not start: {line:?}"));
        self.port = port.parse().unwrap();
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn http(&self, method: &str, path: &str) -> Value {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
    }

    /// The hub's view of the socket of `service`.
    fn socket_of(&self, service: &str) -> Option<Value> {
        let state = self.http("GET", "/state");
        state["sockets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["serviceName"] == service)
            .cloned()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill();
    }
}

fn config(service: &str, client: &str, top: &str) -> String {
    format!(
        r#"{{"serviceName":"{service}","redis":{{"url":"{}"}},"client":{{{client}}}{top},"logLevel":"error"}}"#,
        shared_url()
    )
}

fn hub_client(hub: &Hub, token: &str) -> String {
    format!(
        r#""url":"{}","authToken":"{token}","reconnectionDelay":50,"reconnectionDelayMax":200,"timeout":3000"#,
        hub.url()
    )
}

async fn connected(service: &str, hub: &Hub) -> EventBusClient {
    let bus = EventBusClient::from_json(&config(service, &hub_client(hub, TOKEN), "")).unwrap();
    bus.connect().await.unwrap();
    bus
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_leave_and_members() {
    let hub = Hub::start(&[]);
    let (a_name, b_name) = (unique("svc-a"), unique("svc-b"));
    let a = connected(&a_name, &hub).await;
    let b = connected(&b_name, &hub).await;
    let room = unique("room");
    a.join_room(&room).await.unwrap();
    b.join_room(&room).await.unwrap();
    assert_eq!(
        sorted(a.get_room_members(&room).await.unwrap()),
        sorted(vec![a_name.clone(), b_name.clone()])
    );
    assert_eq!(a.stats().active_rooms, 1);
    assert_eq!(a.joined_rooms(), vec![room.clone()]);
    a.leave_room(&room).await.unwrap();
    assert_eq!(
        b.get_room_members(&room).await.unwrap(),
        vec![b_name.clone()]
    );
    assert_eq!(a.stats().active_rooms, 0);
    // The hub's own rejection comes back as a precise error.
    let e = a.join_room("").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    let h = a.health_check().await;
    assert_eq!(h.status, "healthy", "{h:?}");
    assert_eq!(h.checks["socketio"]["status"], "pass");
    assert_eq!(h.checks["socketio"]["details"]["transport"], "websocket");
    assert_eq!(a.stats().active_connections, 3);
    a.disconnect().await.unwrap();
    b.disconnect().await.unwrap();
    assert!(wait_until(Duration::from_secs(5), || hub.socket_of(&a_name).is_none()).await);
    // After disconnect, rooms fail as without a hub.
    let e = a.join_room(&room).await.unwrap_err();
    assert_eq!(e.message(), "Socket.IO not connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_events_reach_exactly_the_members_once() {
    let hub = Hub::start(&[]);
    let tag = unique("chat");
    let room = format!("{tag}-room");
    let ty = format!("{tag}.sent");
    let sender = connected(&unique("sender"), &hub).await;
    let mut members = Vec::new();
    for i in 0..2 {
        let bus = connected(&unique(&format!("member{i}")), &hub).await;
        bus.join_room(&room).await.unwrap();
        let by_type = Collector::new();
        bus.subscribe(
            &format!("{}.*", ty.split('.').next().unwrap()),
            by_type.handler(),
            SubscriptionOptions::default(),
        )
        .await
        .unwrap();
        // Matches the Redis channel (room:<tag>-room) and the type (<tag>.sent): it must
        // still run once per event. (Not `*`: other clients share this Redis.)
        let both = Collector::new();
        bus.subscribe(
            &format!("*{tag}*"),
            both.handler(),
            SubscriptionOptions::default(),
        )
        .await
        .unwrap();
        members.push((bus, by_type, both));
    }
    let outsider = connected(&unique("outsider"), &hub).await;
    let outside = Collector::new();
    outsider
        .subscribe(&ty, outside.handler(), SubscriptionOptions::default())
        .await
        .unwrap();

    for i in 0..5 {
        let r = sender
            .publish_to_room(
                &room,
                &ty,
                &raw(&format!(r#"{{"n":{i}}}"#)),
                &PublishOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(r.channel, format!("room:{room}"));
    }
    for (_, by_type, both) in &members {
        assert_eq!(by_type.wait_for(5, Duration::from_secs(5)).await, 5);
        assert_eq!(both.wait_for(5, Duration::from_secs(5)).await, 5);
    }
    // Let any duplicate arrive before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (_, by_type, both) in &members {
        let got = by_type.all();
        assert_eq!(got.len(), 5);
        let ns: Vec<i64> = got
            .iter()
            .map(|d| d.data()["n"].as_i64().unwrap())
            .collect();
        assert_eq!(ns, vec![0, 1, 2, 3, 4], "in order");
        assert_eq!(
            got[0].channel(),
            ty,
            "Socket.IO events carry their type as channel"
        );
        assert_eq!(
            both.len(),
            5,
            "an event by Redis and by Socket.IO runs a handler once"
        );
    }
    assert_eq!(outside.len(), 0, "not a member: nothing");
    for (bus, ..) in members {
        bus.disconnect().await.unwrap();
    }
    sender.disconnect().await.unwrap();
    outsider.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_restarted_mid_test_gets_rooms_and_subscriptions_back() {
    let mut hub = Hub::start(&[]);
    let name = unique("restart");
    let bus = connected(&name, &hub).await;
    let states = StateLog::attach(&bus);
    let room = unique("room");
    let ty = format!("{}.x", unique("t"));
    bus.join_room(&room).await.unwrap();
    let got = Collector::new();
    let sub = bus
        .subscribe(&ty, got.handler(), SubscriptionOptions::default())
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || hub
            .socket_of(&name)
            .is_some_and(|s| s["subscriptions"].as_array().unwrap().len() == 1))
        .await
    );
    let s = hub.socket_of(&name).unwrap();
    assert_eq!(s["subscriptions"][0]["pattern"], ty);
    assert_eq!(s["subscriptions"][0]["subscriptionId"], sub.id);

    hub.kill();
    assert!(wait_until(Duration::from_secs(5), || states.has("disconnected")).await);
    let e = bus.join_room(&unique("other")).await.unwrap_err();
    assert_eq!(e.message(), "Socket.IO not connected");
    assert_eq!(bus.health_check().await.status, "degraded");
    hub.spawn(); // same port
    assert!(
        wait_until(Duration::from_secs(10), || hub
            .socket_of(&name)
            .is_some_and(|s| {
                s["rooms"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r == room.as_str())
                    && s["subscriptions"].as_array().unwrap().len() == 1
            }))
        .await,
        "rejoined and resubscribed: {:?}",
        hub.socket_of(&name)
    );
    assert!(states.has("reconnecting"));
    assert_eq!(bus.health_check().await.status, "healthy");
    let pubr = connected(&unique("pub"), &hub).await;
    pubr.publish_to_room(&room, &ty, &raw("{}"), &PublishOptions::default())
        .await
        .unwrap();
    assert_eq!(got.wait_for(1, Duration::from_secs(5)).await, 1);

    // Unsubscribing tells the hub.
    assert!(bus.unsubscribe(&sub.id).await.unwrap());
    assert!(
        wait_until(Duration::from_secs(5), || hub
            .socket_of(&name)
            .is_some_and(|s| s["subscriptions"].as_array().unwrap().is_empty()))
        .await
    );
    bus.disconnect().await.unwrap();
    pubr.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_fails_connect_with_a_clear_error() {
    let hub = Hub::start(&[]);
    let bus =
        EventBusClient::from_json(&config(&unique("bad"), &hub_client(&hub, "wrong"), "")).unwrap();
    let e = bus.connect().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert_eq!(
        e.message(),
        "Socket.IO connection rejected by the hub: invalid token"
    );
    assert!(!bus.is_connected());
    assert_eq!(hub.http("GET", "/state")["rejected"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_hub_is_retried_in_the_background() {
    // A free port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let client = format!(
        r#""url":"{url}","authToken":"{TOKEN}","reconnectionDelay":50,"reconnectionDelayMax":200,"timeout":2000"#
    );
    // reconnection: false -> connect() fails.
    let strict = EventBusClient::from_json(&config(
        &unique("strict"),
        &format!(r#"{client},"reconnection":false"#),
        "",
    ))
    .unwrap();
    let e = strict.connect().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert!(
        e.message().contains("Socket.IO connection to 127.0.0.1"),
        "{e}"
    );
    assert!(!strict.is_connected());

    // Default: connect() succeeds on Redis, rooms wait for the hub.
    let name = unique("patient");
    let bus = EventBusClient::from_json(&config(&name, &client, "")).unwrap();
    bus.connect().await.unwrap();
    assert!(bus.is_connected());
    let h = bus.health_check().await;
    assert_eq!(h.status, "degraded");
    assert_eq!(h.checks["socketio"]["status"], "fail");
    let e = bus.join_room("r").await.unwrap_err();
    assert_eq!(e.message(), "Socket.IO not connected");
    // Publishing over Redis is unaffected.
    bus.publish("x.y", &raw("{}"), &PublishOptions::default())
        .await
        .unwrap();

    let hub = Hub::start_on(port, &[]);
    let room = unique("room");
    let mut joined = false;
    for _ in 0..100 {
        if bus.join_room(&room).await.is_ok() {
            joined = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(joined, "joined once the hub came up");
    assert_eq!(bus.get_room_members(&room).await.unwrap(), vec![name]);
    bus.disconnect().await.unwrap();
    drop(hub);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_carries_everything() {
    // A polling-only hub: the default (websocket first) falls back to polling; and a client
    // configured for polling only uses it directly.
    let hub = Hub::start(&[
        "--transports",
        "polling",
        "--ping-interval",
        "300",
        "--ping-timeout",
        "300",
    ]);
    let room = unique("room");
    let ty = format!("{}.p", unique("poll"));
    let mut buses = Vec::new();
    for top in ["", r#","websocket":{"transports":["polling"]}"#] {
        let bus =
            EventBusClient::from_json(&config(&unique("poller"), &hub_client(&hub, TOKEN), top))
                .unwrap();
        bus.connect().await.unwrap();
        let h = bus.health_check().await;
        assert_eq!(
            h.checks["socketio"]["details"]["transport"], "polling",
            "{h:?}"
        );
        bus.join_room(&room).await.unwrap();
        let got = Collector::new();
        bus.subscribe(&ty, got.handler(), SubscriptionOptions::default())
            .await
            .unwrap();
        buses.push((bus, got));
    }
    let members = buses[0].0.get_room_members(&room).await.unwrap();
    assert_eq!(members.len(), 2);
    // Longer than several ping intervals: the session stays up (pings answered).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 0..20 {
        buses[0]
            .0
            .publish_to_room(
                &room,
                &ty,
                &raw(&format!(r#"{{"i":{i}}}"#)),
                &PublishOptions::default(),
            )
            .await
            .unwrap();
    }
    for (bus, got) in &buses {
        assert_eq!(got.wait_for(20, Duration::from_secs(5)).await, 20);
        assert_eq!(bus.health_check().await.status, "healthy");
    }
    for (bus, _) in buses {
        bus.disconnect().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_client_config_rooms_fail_as_before() {
    let bus = EventBusClient::from_json(&format!(
        r#"{{"serviceName":"{}","redis":{{"url":"{}"}}}}"#,
        unique("plain"),
        shared_url()
    ))
    .unwrap();
    bus.connect().await.unwrap();
    for e in [
        bus.join_room("r").await.unwrap_err(),
        bus.leave_room("r").await.unwrap_err(),
        bus.get_room_members("r").await.map(|_| ()).unwrap_err(),
    ] {
        assert_eq!(e.message(), "Socket.IO not connected");
    }
    assert!(!bus.health_check().await.checks.contains_key("socketio"));
    bus.disconnect().await.unwrap();
}
