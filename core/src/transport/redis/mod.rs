//! Redis pub/sub: one publisher and one subscriber connection, each owned by a supervisor task
//! that reconnects forever (exponential backoff with jitter, capped).
//!
//! This module is the glue the client sees ([`RedisTransport`]: connect, hand over publishes,
//! sync subscriptions, ping, close); the jobs live in their own files:
//! - [`connect`]: opening a connection (RESP3, `CLIENT SETNAME`, connect timeout), the
//!   reconnect backoff, and how failed reconnects and untrusted certificates are reported.
//! - [`requests`]: the caller's side of a publish: a request per event, its state (pending /
//!   sent / cancelled), the offline-queue slot it holds while the link is down, and the
//!   answers the caller waits for ([`Replies`]).
//! - [`publisher`]: the publisher task: it writes queued requests as pipelines (several in
//!   flight), answers each with Redis's receiver count, and holds publishes offline while it
//!   reconnects.
//! - [`subscriber`]: the subscriber task: the RESP3 push messages dispatched to the registry,
//!   resubscribing exactly the registry's keys after a reconnect, and the PING heartbeat that
//!   catches half-open links.
//! - [`direct`]: the publisher connection's TCP socket, shared by the redis crate and a lone
//!   publish written on it from its caller's thread (only the reply wakes the runtime).
//! - [`backlog`]: how far a publisher may run ahead of the subscribers of its own process (what
//!   they are owed against what they read), so it never pushes them past Redis's pub/sub
//!   output limit.

mod backlog;
mod connect;
mod direct;
mod locate;
mod publisher;
mod refusal;
mod requests;
mod sharded;
pub(crate) mod streams;
mod subscriber;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::{LinkStatus, Shared};
use crate::error::{Error, ErrorKind, Result};
use crate::state::Link;
use connect::explain_untrusted_certificate;
use locate::Locator;
pub(crate) use requests::Replies;
use requests::{PubRequest, PUBLISH_CHANNEL};
use subscriber::SubCtl;

/// What the supervisor tasks share with the handle: whether each link is up, the publishes
/// holding an offline-queue slot, and the publisher connection (for `ping`).
struct LinkState {
    pub_up: AtomicBool,
    sub_up: AtomicBool,
    offline: AtomicUsize,
    pub_conn: Mutex<Option<MultiplexedConnection>>,
    /// The publisher connection's socket, when a lone publish may be written on it directly
    /// (plain TCP; see `direct`).
    pub_direct: Mutex<Option<Arc<direct::DirectLink>>>,
    /// Publish requests handed to the publisher task (queued, offline or in a pipeline) plus a
    /// publish written from its caller's task: a caller writes directly only when this is 0,
    /// so it never overtakes an earlier publish the task still holds.
    busy: AtomicUsize,
    /// Set by the publisher task while it serves a live connection with its offline queue
    /// written (single node, Sentinel master, classic cluster; never for sharded pub/sub):
    /// only then may a caller write a PUBLISH itself.
    direct_ok: AtomicBool,
    /// Which connection the publisher task serves (bumped each time it starts serving one).
    conn_gen: AtomicU64,
    /// A publish written from its caller's task found the connection `conn_gen` dead (lost,
    /// or no reply within the publish timeout): the publisher task reconnects, as it does
    /// when one of its own pipelines fails so.
    direct_dead: mpsc::UnboundedSender<(u64, String)>,
    /// What the process's subscribers (of this Redis address) are owed: the publisher waits
    /// when it is too far ahead of them.
    backlog: Arc<backlog::Backlog>,
    /// Bumped when the server the links use stops being the right one (the sentinels switched
    /// the master): each link's serve loop sees the change and reconnects.
    switch: watch::Sender<u64>,
}

/// The client's handle on the two links and their supervisor tasks.
pub(crate) struct RedisTransport {
    pub_tx: mpsc::Sender<PubRequest>,
    sub_ctl: mpsc::UnboundedSender<SubCtl>,
    links: Arc<LinkState>,
    shutdown: watch::Sender<bool>,
    tasks: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
    shared: Arc<Shared>,
    locator: Arc<Locator>,
}

impl RedisTransport {
    /// Open both connections (either failing fails the call: `connect()` reports it), then
    /// start the publisher and subscriber tasks that own them from here on.
    pub(crate) async fn connect(
        endpoint: &crate::config::Endpoint,
        shared: Arc<Shared>,
    ) -> Result<RedisTransport> {
        let locator = Arc::new(Locator::new(endpoint, &shared.settings.display_addr)?);
        if let Some(c) = locator.cluster() {
            if c.sharded() {
                return Self::connect_sharded(locator.clone(), shared).await;
            }
        }
        let (pconn, ppush, pdirect) = locator
            .open(&shared, Link::Publisher)
            .await
            .map_err(explain_untrusted_certificate)?;
        let (sconn, spush, _) = locator
            .open(&shared, Link::Subscriber)
            .await
            .map_err(explain_untrusted_certificate)?;
        let (direct_dead, dead_rx) = mpsc::unbounded_channel();
        let links = Arc::new(LinkState {
            pub_up: AtomicBool::new(true),
            sub_up: AtomicBool::new(true),
            offline: AtomicUsize::new(0),
            pub_conn: Mutex::new(Some(pconn.clone())),
            pub_direct: Mutex::new(None),
            busy: AtomicUsize::new(0),
            direct_ok: AtomicBool::new(false),
            conn_gen: AtomicU64::new(0),
            direct_dead,
            backlog: backlog::Backlog::for_address(&shared.settings.display_addr),
            switch: watch::channel(0).0,
        });
        let (pub_tx, pub_rx) = mpsc::channel(PUBLISH_CHANNEL);
        let (sub_ctl, sub_rx) = mpsc::unbounded_channel();
        let (shutdown, shut_rx) = watch::channel(false);
        shared.stats.total_connections.fetch_add(2, Relaxed);
        let mut tasks = Vec::new();
        if locator.sentinel().is_some() {
            tasks.push(crate::runtime::spawn(locate::watch_sentinels(
                locator.clone(),
                shared.clone(),
                links.clone(),
                shut_rx.clone(),
            )));
        }
        let p = crate::runtime::spawn(publisher::run(
            locator.clone(),
            (pconn, ppush, pdirect),
            pub_rx,
            dead_rx,
            shared.clone(),
            links.clone(),
            shut_rx.clone(),
        ));
        let s = crate::runtime::spawn(subscriber::run(
            locator.clone(),
            sconn,
            spush,
            sub_rx,
            shared.clone(),
            links.clone(),
            shut_rx,
        ));
        Ok(RedisTransport {
            pub_tx,
            sub_ctl,
            links,
            shutdown,
            tasks: tokio::sync::Mutex::new({
                tasks.extend([p, s]);
                tasks
            }),
            shared,
            locator,
        })
    }

    /// Sharded pub/sub: the slot map must be readable and a master reachable (or `connect()`
    /// fails, naming the nodes tried); the tasks then open a connection per master they need.
    async fn connect_sharded(locator: Arc<Locator>, shared: Arc<Shared>) -> Result<RedisTransport> {
        let Some(c) = locator.cluster() else {
            unreachable!("checked by the caller")
        };
        let map = c.slot_map(&shared).await?;
        let first = map
            .owner(0)
            .cloned()
            .ok_or_else(|| Error::new(ErrorKind::Connection, "no master serves slot 0"))?;
        // Reachable and accepting our credentials (the tasks connect per node from here).
        drop(
            c.open_node(&shared, Link::Publisher, &first)
                .await
                .map_err(explain_untrusted_certificate)?,
        );
        // Never written from a caller's task: nobody reports dead connections this way.
        let (direct_dead, _) = mpsc::unbounded_channel();
        let links = Arc::new(LinkState {
            pub_up: AtomicBool::new(true),
            sub_up: AtomicBool::new(true),
            offline: AtomicUsize::new(0),
            // Sharded pub/sub has a connection per node, none of them "the" publisher's:
            // `ping` asks a master directly.
            pub_conn: Mutex::new(None),
            pub_direct: Mutex::new(None),
            busy: AtomicUsize::new(0),
            direct_ok: AtomicBool::new(false),
            conn_gen: AtomicU64::new(0),
            direct_dead,
            backlog: backlog::Backlog::for_address(&shared.settings.display_addr),
            switch: watch::channel(0).0,
        });
        let (pub_tx, pub_rx) = mpsc::channel(PUBLISH_CHANNEL);
        let (sub_ctl, sub_rx) = mpsc::unbounded_channel();
        let (shutdown, shut_rx) = watch::channel(false);
        shared.stats.total_connections.fetch_add(2, Relaxed);
        let p = crate::runtime::spawn(sharded::run_publisher(
            locator.clone(),
            pub_rx,
            shared.clone(),
            links.clone(),
            shut_rx.clone(),
        ));
        let s = crate::runtime::spawn(sharded::run_subscriber(
            locator.clone(),
            sub_rx,
            shared.clone(),
            links.clone(),
            shut_rx,
        ));
        Ok(RedisTransport {
            pub_tx,
            sub_ctl,
            links,
            shutdown,
            tasks: tokio::sync::Mutex::new(vec![p, s]),
            shared,
            locator,
        })
    }

    /// `getStats().topology`.
    pub(crate) fn topology(&self) -> crate::stats::TopologySnapshot {
        self.locator.topology()
    }

    /// One PING per server of a cluster or Sentinel setup (none for a single server, which
    /// [`RedisTransport::ping`] covers): `(node, round trip or why not)`, checked concurrently.
    pub(crate) async fn node_checks(&self) -> Vec<(String, std::result::Result<Duration, String>)> {
        let shared = &self.shared;
        if let Some(c) = self.locator.cluster() {
            // The masters now, not those of the last (re)connect: a failover since then
            // changed them. A failed read keeps the last map; the PINGs then say why.
            let _ = c.slot_map(shared).await;
        }
        let nodes = self.locator.nodes_to_check();
        futures_util::future::join_all(nodes.into_iter().map(|(addr, info)| async move {
            (addr.to_string(), locate::ping_node(info, shared).await)
        }))
        .await
    }

    /// Whether each link is up right now.
    pub(crate) fn links(&self) -> LinkStatus {
        LinkStatus {
            publisher_up: self.links.pub_up.load(Relaxed),
            subscriber_up: self.links.sub_up.load(Relaxed),
        }
    }

    /// Ask the subscriber task to bring the server-side subscriptions in line with the
    /// registry; resolves when Redis confirmed them (at once while the link is down).
    pub(crate) async fn sync(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.sub_ctl
            .send(SubCtl::Sync(tx))
            .map_err(|_| Error::closed())?;
        rx.await.map_err(|_| Error::closed())?
    }

    /// PING through the publisher connection (sharded pub/sub: a master, directly), bounded by
    /// 2 s: the round trip.
    pub(crate) async fn ping(&self) -> Result<Duration> {
        let conn = self
            .links
            .pub_conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(mut conn) = conn else {
            // Sharded pub/sub holds a connection per node, none of them "the" publisher's: a
            // cluster master answering is what the check is about.
            if self.locator.cluster().is_some_and(|c| c.sharded()) {
                if let Some((node, info)) = self.locator.nodes_to_check().into_iter().next() {
                    return locate::ping_node(info, &self.shared).await.map_err(|e| {
                        Error::new(
                            ErrorKind::Connection,
                            format!("Redis PING to {node} failed: {e}"),
                        )
                    });
                }
            }
            return Err(Error::new(
                ErrorKind::Connection,
                "Redis publisher connection is down; reconnecting",
            ));
        };
        let start = Instant::now();
        match tokio::time::timeout(
            Duration::from_secs(2),
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await
        {
            Ok(Ok(_)) => Ok(start.elapsed()),
            Ok(Err(e)) => {
                Err(Error::new(ErrorKind::Connection, "Redis PING failed").with_source(e))
            }
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                "Redis PING timed out after 2000 ms",
            )),
        }
    }

    /// Stop both tasks (each gets 2 s to finish: pipelines in flight get their replies,
    /// queued publishes fail as closed) and mark both links down.
    pub(crate) async fn close(&self) {
        let _ = self.shutdown.send(true);
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.tasks.lock().await);
        for mut t in tasks {
            if tokio::time::timeout(Duration::from_secs(2), &mut t)
                .await
                .is_err()
            {
                t.abort();
            }
        }
        self.links.pub_up.store(false, Release);
        self.links.sub_up.store(false, Release);
        self.links
            .pub_conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }
}

/// What a subscriber link does once every subscription is back after an outage that began at
/// `lost_at` (ISO `from`): count the reconnect, log `message`, and emit `connected`
/// (reconnect) and the `gap` the outage left (pub/sub is at-most-once).
pub(crate) fn announce_resubscribed(
    shared: &Shared,
    message: &str,
    subscriptions: usize,
    lost_at: Instant,
    from: String,
) {
    shared.stats.reconnects.fetch_add(1, Relaxed);
    shared
        .logger
        .info(message, &[("subscriptions", subscriptions.to_string())]);
    shared.emitter.emit(crate::state::StateEvent::Connected {
        connection: Link::Subscriber,
        reconnect: true,
    });
    shared.emitter.emit(crate::state::StateEvent::Gap {
        from,
        to: crate::event::now_iso(),
        duration: lost_at.elapsed().as_millis() as u64,
    });
}
