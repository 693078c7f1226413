//! Sharded pub/sub on a Redis Cluster (`redis.shardedPubSub`): `SPUBLISH` and `SSUBSCRIBE` go
//! to the master that serves the channel's slot, so a message travels to one shard only instead
//! of over the whole cluster bus. Sharded channels have no patterns: a glob subscription is
//! refused before it reaches here.
//!
//! Both tasks keep one connection per master they need, chosen from the slot map
//! (`CLUSTER NODES`, read again whenever a node fails, answers `MOVED`, or takes a channel away):
//! - the **publisher** groups each batch by owner and writes one pipeline of `SPUBLISH` per
//!   node. A `MOVED` or `ASK` reply means Redis did not run the command, so that publish (and
//!   only that) is sent again to the new owner, at most [`MAX_REDIRECTS`] times. A connection
//!   that dies with publishes written ends them *outcome unknown*, as on one server; publishes
//!   not yet written wait (holding offline-queue slots) until a node answers or their caller's
//!   deadline passes.
//! - the **subscriber** subscribes each channel of the registry on its owner. When a slot moves,
//!   Redis tells the old owner's subscribers with an unrequested `SUNSUBSCRIBE` (the `redis`
//!   crate drops such a channel without resubscribing); the task detects it (a `SUNSUBSCRIBE`
//!   for a channel it still wants), drops that node's connection (an unrequested reply can
//!   also have been taken as the answer to a command in flight on it), reads the slot map again
//!   and subscribes those channels on their new owners. A node that dies is handled the same
//!   way, with a `gap` event once every channel is back.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use redis::aio::MultiplexedConnection;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::{mpsc, oneshot, watch};

use super::connect::is_connection_error;
use super::locate::{slot, ClusterLocator, Locator, SlotMap};
use super::refusal::{refused_error, refused_reply};
use super::requests::{PubRequest, CANCELLED, PENDING, SENT};
use super::subscriber::SubCtl;
use super::{LinkState, Shared};
use crate::config::NodeAddr;
use crate::error::{Error, ErrorKind, Result};
use crate::state::{Link, StateEvent};
use crate::subscription::Key;

/// How often a publish answered `MOVED`/`ASK` is sent again before it fails.
const MAX_REDIRECTS: usize = 3;

fn cluster(locator: &Locator) -> &ClusterLocator {
    locator
        .cluster()
        .expect("sharded pub/sub runs on a cluster locator")
}

fn names(nodes: impl Iterator<Item = NodeAddr>) -> Vec<String> {
    let mut v: Vec<String> = nodes.map(|n| n.to_string()).collect();
    v.sort();
    v
}

fn backoff(shared: &Shared, attempt: u64) -> Duration {
    crate::state::reconnect_delay(
        shared.settings.reconnect_delay,
        shared.settings.reconnect_delay_max,
        attempt.max(1),
    )
}

/// A `MOVED`/`ASK` reply: the command did not run.
fn is_redirect(v: &Value) -> bool {
    match v {
        Value::ServerError(e) => matches!(e.code(), "MOVED" | "ASK"),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Publisher

/// The sharded publisher task: route every request to its slot's owner.
pub(super) async fn run_publisher(
    locator: Arc<Locator>,
    mut rx: mpsc::Receiver<PubRequest>,
    shared: Arc<Shared>,
    links: Arc<LinkState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let loc = cluster(&locator);
    let s = &shared.settings;
    let mut conns: HashMap<NodeAddr, MultiplexedConnection> = HashMap::new();
    let mut map: Option<SlotMap> = None;
    // Not written yet (no node to write to): tried again after a backoff.
    let mut waiting: VecDeque<PubRequest> = VecDeque::new();
    let mut failures = 0u64;
    let mut batch: Vec<PubRequest> = Vec::with_capacity(s.batch_size);
    loop {
        locator.set_in_use(Link::Publisher, names(conns.keys().cloned()));
        if !waiting.is_empty() {
            waiting.retain(|r| r.state().load(Acquire) == PENDING);
        }
        let due = tokio::time::sleep(if waiting.is_empty() {
            Duration::from_secs(3600)
        } else {
            backoff(&shared, failures)
        });
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = due => {
                batch.extend(waiting.drain(..));
            }
            n = rx.recv_many(&mut batch, s.batch_size), if waiting.is_empty() => {
                if n == 0 {
                    break;
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        let mut todo: Vec<(PubRequest, usize)> = batch.drain(..).map(|r| (r, 0)).collect();
        while !todo.is_empty() {
            if map.is_none() {
                match loc.slot_map(&shared).await {
                    Ok(m) => map = Some(m),
                    Err(e) => {
                        down(&shared, &links, &mut failures, &e.to_string());
                        waiting.extend(todo.drain(..).map(|(r, _)| r));
                        break;
                    }
                }
            }
            let m = map.as_ref().expect("read above");
            let mut groups: HashMap<NodeAddr, Vec<(PubRequest, usize)>> = HashMap::new();
            for (r, hops) in todo.drain(..) {
                match m.owner(slot(r.channel.as_bytes())) {
                    Some(n) => groups.entry(n.clone()).or_default().push((r, hops)),
                    None => waiting.push_back(r),
                }
            }
            let mut sends = Vec::new();
            for (node, reqs) in groups {
                let conn = match conns.get(&node) {
                    Some(c) => c.clone(),
                    None => match loc.open_node(&shared, Link::Publisher, &node).await {
                        Ok((c, _push, _)) => {
                            conns.insert(node.clone(), c.clone());
                            locator.set_in_use(Link::Publisher, names(conns.keys().cloned()));
                            c
                        }
                        Err(e) => {
                            down(&shared, &links, &mut failures, &e.to_string());
                            map = None;
                            waiting.extend(reqs.into_iter().map(|(r, _)| r));
                            continue;
                        }
                    },
                };
                // Written from here: a fresh request is claimed (never sent after its caller
                // gave up); a redirected one was claimed before and did not run.
                let live: Vec<(PubRequest, usize)> = reqs
                    .into_iter()
                    .filter(|(r, hops)| {
                        let ok = *hops > 0
                            || r.state()
                                .compare_exchange(PENDING, SENT, AcqRel, Acquire)
                                .is_ok();
                        if ok && r.offline().swap(false, AcqRel) {
                            links.offline.fetch_sub(1, AcqRel);
                        }
                        ok
                    })
                    .collect();
                if live.is_empty() {
                    continue;
                }
                let mut pipe = redis::Pipeline::with_capacity(live.len());
                for (r, _) in &live {
                    pipe.cmd("SPUBLISH").arg(&r.channel).arg(&r.payload);
                }
                let timeout = s.publish_timeout;
                sends.push(async move {
                    let mut conn = conn;
                    let n = live.len();
                    let res =
                        tokio::time::timeout(timeout, conn.send_packed_commands(&pipe, 0, n)).await;
                    (node, live, res)
                });
            }
            let mut redirected = false;
            for (node, live, res) in join_all(sends).await {
                match res {
                    Ok(Ok(values)) => {
                        ok_up(&shared, &links, &mut failures);
                        for ((r, hops), v) in live.into_iter().zip(values) {
                            match v {
                                Value::Int(k) => r.answer(Ok(k.max(0) as u64)),
                                v if is_redirect(&v) && hops < MAX_REDIRECTS => {
                                    shared.stats.redirects.fetch_add(1, Relaxed);
                                    redirected = true;
                                    todo.push((r, hops + 1));
                                }
                                v => {
                                    let err = refused_reply("SPUBLISH", &r.channel, &v);
                                    r.answer(Err(err));
                                }
                            }
                        }
                    }
                    Ok(Err(e)) if !is_connection_error(&e) => {
                        for (r, _) in live {
                            let err = refused_error("SPUBLISH", &r.channel, &e);
                            r.answer(Err(err));
                        }
                    }
                    Ok(Err(e)) => {
                        lost(&shared, &mut conns, &node, &e.to_string());
                        map = None;
                        for (r, _) in live {
                            r.answer(Err(Error::new(
                                ErrorKind::OutcomeUnknown,
                                format!("Connection lost after the publish was sent; it may or may not have been delivered ({e})"),
                            )));
                        }
                    }
                    Err(_) => {
                        lost(
                            &shared,
                            &mut conns,
                            &node,
                            "no reply within the publish timeout",
                        );
                        map = None;
                        for (r, _) in live {
                            r.answer(Err(Error::new(
                                ErrorKind::OutcomeUnknown,
                                "No reply from Redis within the publish timeout after the publish was sent; it may or may not have been delivered",
                            )));
                        }
                    }
                }
            }
            if redirected {
                // The slot moved: read the map again before sending those once more.
                map = None;
            }
        }
    }
    // Shutdown: everything not written fails as closed.
    rx.close();
    let mut rest: Vec<PubRequest> = waiting.drain(..).collect();
    rest.append(&mut batch);
    while let Ok(r) = rx.try_recv() {
        rest.push(r);
    }
    for r in rest {
        if r.state()
            .compare_exchange(PENDING, CANCELLED, AcqRel, Acquire)
            .is_ok()
            && r.offline().swap(false, AcqRel)
        {
            links.offline.fetch_sub(1, AcqRel);
        }
        r.answer(Err(Error::closed()));
    }
    links.pub_up.store(false, Release);
}

/// A node could not be reached or the map not read: publishes wait (offline) and retry.
fn down(shared: &Shared, links: &LinkState, failures: &mut u64, why: &str) {
    *failures += 1;
    if links.pub_up.swap(false, AcqRel) {
        shared.logger.warn(
            "Redis publisher cannot reach a cluster node; publishes wait",
            &[("error", why.to_string())],
        );
        shared.emitter.emit(StateEvent::Disconnected {
            connection: Link::Publisher,
            reason: why.to_string(),
        });
    }
}

fn ok_up(shared: &Shared, links: &LinkState, failures: &mut u64) {
    *failures = 0;
    if !links.pub_up.swap(true, AcqRel) {
        shared.stats.reconnects.fetch_add(1, Relaxed);
        shared.logger.info("Redis publisher reconnected", &[]);
        shared.emitter.emit(StateEvent::Connected {
            connection: Link::Publisher,
            reconnect: true,
        });
    }
}

fn lost(
    shared: &Shared,
    conns: &mut HashMap<NodeAddr, MultiplexedConnection>,
    node: &NodeAddr,
    why: &str,
) {
    conns.remove(node);
    shared.logger.warn(
        "Redis publisher connection lost",
        &[("node", node.to_string()), ("reason", why.to_string())],
    );
}

// ---------------------------------------------------------------------------------------------
// Subscriber

/// One node's subscriber connection and the channels subscribed on it.
struct NodeSub {
    conn: MultiplexedConnection,
    /// Tells this connection's push messages from those of an earlier one to the same node.
    id: u64,
    channels: HashSet<String>,
}

struct SubState {
    nodes: HashMap<NodeAddr, NodeSub>,
    map: Option<SlotMap>,
    next_id: u64,
    push_tx: mpsc::UnboundedSender<(NodeAddr, u64, PushInfo)>,
}

impl SubState {
    fn subscribed(&self) -> HashSet<&String> {
        self.nodes
            .values()
            .flat_map(|n| n.channels.iter())
            .collect()
    }

    fn drop_node(&mut self, node: &NodeAddr) {
        self.nodes.remove(node);
    }
}

/// Subscribe and unsubscribe so every registry channel is `SSUBSCRIBE`d on its owner.
async fn reconcile(
    loc: &ClusterLocator,
    shared: &Shared,
    st: &mut SubState,
) -> std::result::Result<(), (bool, Error)> {
    let lost = |msg: String| (true, Error::new(ErrorKind::Connection, msg));
    let desired: HashSet<String> = shared
        .registry
        .keys()
        .into_iter()
        .filter_map(|k| match k {
            Key::Channel(c) => Some(c),
            Key::Pattern(_) => None,
        })
        .collect();
    // Unsubscribe what nobody uses any more (removed from the set first, so its confirmation
    // is not taken for an unrequested one).
    let nodes: Vec<NodeAddr> = st.nodes.keys().cloned().collect();
    for node in nodes {
        let n = st.nodes.get_mut(&node).expect("listed");
        let gone: Vec<String> = n.channels.difference(&desired).cloned().collect();
        for ch in gone {
            n.channels.remove(&ch);
            let r: redis::RedisResult<Value> = redis::cmd("SUNSUBSCRIBE")
                .arg(&ch)
                .query_async(&mut n.conn)
                .await;
            if let Err(e) = r {
                if is_connection_error(&e) {
                    st.drop_node(&node);
                    return Err(lost(e.to_string()));
                }
            }
        }
    }
    let have: HashSet<String> = st.subscribed().into_iter().cloned().collect();
    let mut add: Vec<String> = desired.difference(&have).cloned().collect();
    add.sort();
    for hop in 0..=MAX_REDIRECTS {
        if add.is_empty() {
            break;
        }
        if st.map.is_none() {
            st.map = Some(
                loc.slot_map(shared)
                    .await
                    .map_err(|e| lost(e.to_string()))?,
            );
        }
        let mut moved = Vec::new();
        for ch in std::mem::take(&mut add) {
            let Some(node) = st
                .map
                .as_ref()
                .and_then(|m| m.owner(slot(ch.as_bytes())))
                .cloned()
            else {
                return Err(lost(format!("no master serves the slot of {ch}")));
            };
            if !st.nodes.contains_key(&node) {
                let (conn, mut push, _) = loc
                    .open_node(shared, Link::Subscriber, &node)
                    .await
                    .map_err(|e| lost(e.to_string()))?;
                st.next_id += 1;
                let id = st.next_id;
                let tx = st.push_tx.clone();
                let from = node.clone();
                crate::runtime::spawn(async move {
                    while let Some(pi) = push.recv().await {
                        if tx.send((from.clone(), id, pi)).is_err() {
                            break;
                        }
                    }
                });
                st.nodes.insert(
                    node.clone(),
                    NodeSub {
                        conn,
                        id,
                        channels: HashSet::new(),
                    },
                );
            }
            let n = st.nodes.get_mut(&node).expect("inserted");
            let r: redis::RedisResult<Value> = redis::cmd("SSUBSCRIBE")
                .arg(&ch)
                .query_async(&mut n.conn)
                .await;
            match r {
                Ok(Value::Push {
                    kind: PushKind::SSubscribe,
                    ..
                }) => {
                    n.channels.insert(ch);
                }
                Ok(v) if is_redirect(&v) && hop < MAX_REDIRECTS => moved.push(ch),
                Ok(v) => {
                    // Not the confirmation: the connection's replies may be out of step (an
                    // unrequested push taken as this answer); start it afresh.
                    st.drop_node(&node);
                    return Err(lost(format!("unexpected reply to SSUBSCRIBE {ch}: {v:?}")));
                }
                Err(e) if e.code() == Some("MOVED") || e.code() == Some("ASK") => moved.push(ch),
                Err(e) => {
                    if is_connection_error(&e) {
                        st.drop_node(&node);
                        return Err(lost(e.to_string()));
                    }
                    return Err((false, refused_error("SSUBSCRIBE", &ch, &e)));
                }
            }
        }
        if !moved.is_empty() {
            st.map = None;
            add = moved;
        }
    }
    if !add.is_empty() {
        return Err(lost(format!("slots kept moving for {add:?}")));
    }
    Ok(())
}

/// The sharded subscriber task.
pub(super) async fn run_subscriber(
    locator: Arc<Locator>,
    mut ctl: mpsc::UnboundedReceiver<SubCtl>,
    shared: Arc<Shared>,
    links: Arc<LinkState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let loc = cluster(&locator);
    let s = &shared.settings;
    let (push_tx, mut push_rx) = mpsc::unbounded_channel();
    let mut st = SubState {
        nodes: HashMap::new(),
        map: None,
        next_id: 0,
        push_tx,
    };
    let hb = s.heartbeat_interval.unwrap_or(Duration::from_secs(3600));
    let mut ticker = tokio::time::interval(hb);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Set while some channel is not subscribed where it should be: when and since what time.
    let mut lost: Option<(Instant, String)> = None;
    let mut dirty = true;
    let mut failures = 0u64;
    let mut retry_at: Option<tokio::time::Instant> = None;
    links.sub_up.store(true, Release);
    loop {
        locator.set_in_use(Link::Subscriber, names(st.nodes.keys().cloned()));
        if dirty && retry_at.is_none_or(|t| t <= tokio::time::Instant::now()) {
            match tokio::time::timeout(s.connect_timeout, reconcile(loc, &shared, &mut st)).await {
                Ok(Ok(())) => {
                    dirty = false;
                    retry_at = None;
                    failures = 0;
                    if let Some((at, from)) = lost.take() {
                        links.sub_up.store(true, Release);
                        super::announce_resubscribed(
                            &shared,
                            "Redis subscriber resubscribed every sharded channel",
                            st.subscribed().len(),
                            at,
                            from,
                        );
                    }
                }
                r => {
                    let msg = match r {
                        Ok(Err((_, e))) => e.message().to_string(),
                        _ => "no reply to SSUBSCRIBE within the connect timeout".into(),
                    };
                    st.map = None;
                    failures += 1;
                    retry_at = Some(tokio::time::Instant::now() + backoff(&shared, failures));
                    if lost.is_none() {
                        lost = Some((Instant::now(), crate::event::now_iso()));
                        links.sub_up.store(false, Release);
                        shared.logger.warn(
                            "Redis subscriber lost sharded channels; resubscribing",
                            &[("reason", msg.clone())],
                        );
                        shared.emitter.emit(StateEvent::Disconnected {
                            connection: Link::Subscriber,
                            reason: msg,
                        });
                    }
                }
            }
        }
        let retry = async {
            match retry_at {
                Some(t) if dirty => tokio::time::sleep_until(t).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            c = ctl.recv() => match c {
                None => break,
                Some(SubCtl::Sync(w)) => {
                    let mut waiters = vec![w];
                    while let Ok(SubCtl::Sync(w)) = ctl.try_recv() {
                        waiters.push(w);
                    }
                    answer_sync(loc, &shared, &mut st, &mut dirty, lost.is_some(), waiters).await;
                }
            },
            p = push_rx.recv() => {
                let Some((node, id, pi)) = p else { break };
                if st.nodes.get(&node).map(|n| n.id) != Some(id) {
                    continue; // from a connection already replaced
                }
                match pi.kind {
                    PushKind::SMessage => {
                        let mut data = pi.data;
                        if let [ch, payload, ..] = &mut data[..] {
                            let payload = match std::mem::replace(payload, Value::Nil) {
                                Value::BulkString(b) => Some(b),
                                _ => None,
                            };
                            if let (Value::BulkString(ch), Some(payload)) = (ch, payload) {
                                let ch = String::from_utf8_lossy(ch);
                                shared.registry.dispatch(&ch, None, payload);
                            }
                        }
                    }
                    PushKind::SUnsubscribe => {
                        let ch = match pi.data.first() {
                            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                            _ => continue,
                        };
                        if st.nodes[&node].channels.contains(&ch) {
                            shared.stats.redirects.fetch_add(1, Relaxed);
                            shared.logger.info(
                                "Redis moved a sharded channel's slot; subscribing on its new owner",
                                &[("channel", ch), ("from", node.to_string())],
                            );
                            st.drop_node(&node);
                            st.map = None;
                            dirty = true;
                            retry_at = None;
                            lost.get_or_insert_with(|| (Instant::now(), crate::event::now_iso()));
                        }
                    }
                    PushKind::Disconnection => {
                        st.drop_node(&node);
                        st.map = None;
                        dirty = true;
                        lost.get_or_insert_with(|| (Instant::now(), crate::event::now_iso()));
                        links.sub_up.store(false, Release);
                        shared.logger.warn(
                            "Redis subscriber connection lost",
                            &[("node", node.to_string())],
                        );
                        shared.emitter.emit(StateEvent::Disconnected {
                            connection: Link::Subscriber,
                            reason: format!("connection to {node} closed"),
                        });
                    }
                    _ => {}
                }
            }
            _ = retry => {}
            _ = ticker.tick(), if s.heartbeat_interval.is_some() => {
                let nodes: Vec<NodeAddr> = st.nodes.keys().cloned().collect();
                for node in nodes {
                    let conn = &mut st.nodes.get_mut(&node).expect("listed").conn;
                    let ping = tokio::time::timeout(
                        hb.min(Duration::from_secs(5)),
                        redis::cmd("PING").query_async::<Value>(conn),
                    )
                    .await;
                    if !matches!(ping, Ok(Ok(_))) {
                        st.drop_node(&node);
                        st.map = None;
                        dirty = true;
                        lost.get_or_insert_with(|| (Instant::now(), crate::event::now_iso()));
                    }
                }
            }
        }
    }
    links.sub_up.store(false, Release);
    ctl.close();
    while let Ok(SubCtl::Sync(w)) = ctl.try_recv() {
        let _ = w.send(Err(Error::closed()));
    }
}

/// Apply a `sync` (subscribe/unsubscribe). While channels are being recovered the registry
/// change is applied by that recovery: answered at once, as on a single server that is down.
async fn answer_sync(
    loc: &ClusterLocator,
    shared: &Shared,
    st: &mut SubState,
    dirty: &mut bool,
    recovering: bool,
    waiters: Vec<oneshot::Sender<Result<()>>>,
) {
    if recovering {
        *dirty = true;
        for w in waiters {
            let _ = w.send(Ok(()));
        }
        return;
    }
    let r = tokio::time::timeout(shared.settings.connect_timeout, reconcile(loc, shared, st)).await;
    let err = match r {
        Ok(Ok(())) => None,
        Ok(Err((dead, msg))) => {
            if dead {
                *dirty = true;
            }
            Some((dead, msg))
        }
        Err(_) => {
            *dirty = true;
            Some((
                true,
                Error::new(
                    ErrorKind::Connection,
                    "no reply to SSUBSCRIBE within the connect timeout",
                ),
            ))
        }
    };
    for w in waiters {
        let _ = w.send(match &err {
            None => Ok(()),
            Some((_, e)) => Err(Error::new(e.kind(), e.message())),
        });
    }
}
