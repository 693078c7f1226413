//! Where a link connects, asked again on every (re)connect: the one configured server, the
//! master the sentinels name, or a node of a Redis Cluster.
//!
//! **Sentinel.** Each connect asks the sentinels in turn (`SENTINEL GET-MASTER-ADDR-BY-NAME`),
//! connects to the address the first one that knows the master gives, and checks with `ROLE`
//! that the node is a master before the link uses it; a node that is not is a failed attempt
//! (the next one asks again). The [`watch_sentinels`] task keeps one connection to a sentinel
//! subscribed to `+switch-master` and also compares the sentinel's answer with the master the
//! links use every heartbeat interval (a `+switch-master` missed while its own connection was
//! down must not leave the links on a demoted node). Either way it bumps the switch epoch,
//! which makes both links reconnect, and so ask the sentinels again.
//!
//! **Cluster, classic pub/sub.** `PUBLISH`, `SUBSCRIBE` and `PSUBSCRIBE` work on any node: the
//! cluster bus carries every message to every node. So each link holds one connection to one
//! master, chosen from `CLUSTER NODES` read on every connect (from the nodes seen last, then
//! the seeds), skipping nodes flagged failed and mapping addresses through `natMap`; a link
//! whose node dies reconnects to another master. The `redis` crate's cluster client
//! (`cluster-async`) is not used: it queues the requests of a dropped connection and sends them
//! again, and a PUBLISH sent twice is a silent duplicate, which the publish outcome rules
//! forbid (a publish in flight when its connection dies must end *outcome unknown*). Owning the
//! write keeps those rules, the pipelining and the offline queue exactly as on one server.

use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushKind, Value};
use tokio::sync::{mpsc, watch};

use super::connect::{client, conn_name, open_conn, Opened};
use super::{LinkState, Shared};
use crate::config::{with_addr, ClusterSettings, Endpoint, NodeAddr, SentinelSettings};
use crate::error::{Error, ErrorKind, Result};
use crate::state::Link;
use crate::stats::{ConnectionNodes, TopologySnapshot};

/// How a link finds the server it connects to, and which node(s) each link uses now.
pub(super) struct Locator {
    kind: Kind,
    /// Publisher's node(s), subscriber's node(s) (`host:port`), for `getStats().topology`.
    in_use: [Mutex<Vec<String>>; 2],
}

enum Kind {
    /// One server.
    Single {
        client: Box<redis::Client>,
        display: String,
    },
    /// The master the sentinels name.
    Sentinel(Box<SentinelLocator>),
    /// A master of a Redis Cluster.
    Cluster(Box<ClusterLocator>),
}

pub(super) struct SentinelLocator {
    cfg: SentinelSettings,
    /// Index of the sentinel that answered last: asked first next time.
    preferred: AtomicUsize,
    /// The master the links connected to last, for the watcher to compare with.
    current: Mutex<Option<NodeAddr>>,
}

pub(super) struct ClusterLocator {
    cfg: ClusterSettings,
    /// The masters seen in the last topology read, then the seeds: where the next read starts.
    known: Mutex<Vec<NodeAddr>>,
    /// Turns through the masters, so the two links (and a retry after a failed node) spread.
    next: AtomicUsize,
    /// The masters of the last slot map read, by slot.
    masters: Mutex<Vec<NodeAddr>>,
}

fn link_index(link: Link) -> usize {
    match link {
        Link::Publisher => 0,
        _ => 1,
    }
}

impl Locator {
    /// The locator for `endpoint` (a Redis endpoint of some kind).
    pub(super) fn new(endpoint: &Endpoint, display: &str) -> Result<Locator> {
        let kind = match endpoint {
            Endpoint::Redis(info) => Kind::Single {
                client: Box::new(client((**info).clone())?),
                display: display.to_string(),
            },
            Endpoint::Sentinel(s) => Kind::Sentinel(Box::new(SentinelLocator {
                cfg: (**s).clone(),
                preferred: AtomicUsize::new(0),
                current: Mutex::new(None),
            })),
            Endpoint::Cluster(c) => Kind::Cluster(Box::new(ClusterLocator {
                known: Mutex::new(c.seeds.clone()),
                cfg: (**c).clone(),
                next: AtomicUsize::new(0),
                masters: Mutex::new(Vec::new()),
            })),
            Endpoint::Memory(_) => {
                return Err(Error::new(
                    ErrorKind::Internal,
                    "the memory broker has no Redis locator",
                ))
            }
        };
        Ok(Locator {
            kind,
            in_use: Default::default(),
        })
    }

    /// Find the server and open `link`'s connection to it (named, RESP3, push messages on the
    /// receiver).
    pub(super) async fn open(&self, shared: &Shared, link: Link) -> Result<Opened> {
        let (opened, node) = match &self.kind {
            Kind::Single { client, display } => {
                let opened =
                    open_conn(client, display, shared, link, link == Link::Publisher).await?;
                let node = display.split("://").last().unwrap_or(display).to_string();
                (opened, node)
            }
            Kind::Sentinel(s) => s.open(shared, link).await?,
            Kind::Cluster(c) => {
                let (opened, node) = c.open(shared, link).await?;
                // A link that lands on another node than before moved because its node failed.
                let before = self.in_use[link_index(link)]
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                if !before.is_empty() && before != [node.clone()] {
                    shared.stats.failovers.fetch_add(1, Relaxed);
                }
                (opened, node)
            }
        };
        self.set_in_use(link, vec![node]);
        Ok(opened)
    }

    /// Record the node(s) `link` uses now.
    pub(super) fn set_in_use(&self, link: Link, nodes: Vec<String>) {
        *self.in_use[link_index(link)]
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = nodes;
    }

    pub(super) fn sentinel(&self) -> Option<&SentinelLocator> {
        match &self.kind {
            Kind::Sentinel(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn cluster(&self) -> Option<&ClusterLocator> {
        match &self.kind {
            Kind::Cluster(c) => Some(c),
            _ => None,
        }
    }

    /// `getStats().topology`.
    pub(super) fn topology(&self) -> TopologySnapshot {
        let in_use = |i: usize| {
            self.in_use[i]
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        };
        let connections = ConnectionNodes {
            publisher: in_use(0),
            subscriber: in_use(1),
        };
        let strings = |v: &[NodeAddr]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        match &self.kind {
            Kind::Single { display, .. } => {
                let node = display.split("://").last().unwrap_or(display).to_string();
                TopologySnapshot {
                    mode: "single".into(),
                    nodes: vec![node.clone()],
                    masters: vec![node],
                    connections,
                }
            }
            Kind::Sentinel(s) => {
                let master: Vec<String> = s.current().iter().map(|a| a.to_string()).collect();
                let mut nodes = strings(&s.cfg.sentinels);
                nodes.extend(master.iter().cloned());
                TopologySnapshot {
                    mode: "sentinel".into(),
                    nodes,
                    masters: master,
                    connections,
                }
            }
            Kind::Cluster(c) => TopologySnapshot {
                mode: if c.cfg.sharded {
                    "cluster-sharded".into()
                } else {
                    "cluster".into()
                },
                nodes: strings(&c.known.lock().unwrap_or_else(|p| p.into_inner())),
                masters: strings(&c.masters.lock().unwrap_or_else(|p| p.into_inner())),
                connections,
            },
        }
    }

    /// The servers a health check PINGs one by one: the sentinels and the master, or the
    /// cluster's masters (a single server is checked through the publisher connection).
    pub(super) fn nodes_to_check(&self) -> Vec<(NodeAddr, redis::ConnectionInfo)> {
        match &self.kind {
            Kind::Single { .. } => Vec::new(),
            Kind::Sentinel(s) => {
                let mut out: Vec<(NodeAddr, redis::ConnectionInfo)> = s
                    .cfg
                    .sentinels
                    .iter()
                    .map(|a| (a.clone(), with_addr(&s.cfg.sentinel, a)))
                    .collect();
                if let Some(m) = s.current() {
                    out.push((m.clone(), with_addr(&s.cfg.node, &m)));
                }
                out
            }
            Kind::Cluster(c) => c
                .masters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|a| (a.clone(), with_addr(&c.cfg.node, a)))
                .collect(),
        }
    }
}

/// PING `info`'s server over a short-lived named connection (bounded by 2 s): the round trip.
pub(super) async fn ping_node(
    info: redis::ConnectionInfo,
    shared: &Shared,
) -> std::result::Result<Duration, String> {
    let start = std::time::Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(2), async {
        let mut conn = query_conn(info, shared).await?;
        redis::cmd("PING")
            .query_async::<Value>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    match r {
        Ok(Ok(_)) => Ok(start.elapsed()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("no reply within 2000 ms".into()),
    }
}

/// A short-lived RESP3 connection to `info` for a query (topology, master address), named
/// `<service>:topology` like every other connection of the client.
async fn query_conn(
    info: redis::ConnectionInfo,
    shared: &Shared,
) -> std::result::Result<MultiplexedConnection, String> {
    let timeout = shared.settings.connect_timeout;
    let c = client(info).map_err(|e| e.to_string())?;
    let cfg = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let mut conn = match tokio::time::timeout(
        timeout + Duration::from_millis(100),
        c.get_multiplexed_async_connection_with_config(&cfg),
    )
    .await
    {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err(format!("timed out after {} ms", timeout.as_millis())),
    };
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(conn_name(&shared.settings.service_name, "topology"))
        .query_async::<()>(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// The first element of a `ROLE` reply: `master`, `slave`, `sentinel`.
async fn role(conn: &mut MultiplexedConnection) -> std::result::Result<String, String> {
    let v: Value = redis::cmd("ROLE")
        .query_async(conn)
        .await
        .map_err(|e| e.to_string())?;
    match v {
        Value::Array(items) => match items.first() {
            Some(Value::BulkString(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
            Some(Value::SimpleString(s)) => Ok(s.clone()),
            other => Err(format!("unexpected ROLE reply {other:?}")),
        },
        other => Err(format!("unexpected ROLE reply {other:?}")),
    }
}

impl SentinelLocator {
    fn display(&self) -> String {
        format!("master {} via sentinels", self.cfg.name)
    }

    /// Ask the sentinels, in turn from the one that answered last, for the master's address.
    async fn master_addr(&self, shared: &Shared) -> Result<NodeAddr> {
        let n = self.cfg.sentinels.len();
        let first = self.preferred.load(Relaxed) % n;
        let mut why = Vec::new();
        for k in 0..n {
            let i = (first + k) % n;
            let s = &self.cfg.sentinels[i];
            match self.ask(s, shared).await {
                Ok(addr) => {
                    self.preferred.store(i, Relaxed);
                    return Ok(addr);
                }
                Err(e) => why.push(format!("{s}: {e}")),
            }
        }
        Err(Error::new(
            ErrorKind::Connection,
            format!(
                "No sentinel gave the address of master {} ({})",
                self.cfg.name,
                why.join("; ")
            ),
        ))
    }

    async fn ask(&self, s: &NodeAddr, shared: &Shared) -> std::result::Result<NodeAddr, String> {
        let mut conn = query_conn(with_addr(&self.cfg.sentinel, s), shared).await?;
        sentinel_master(&mut conn, &self.cfg.name).await
    }

    async fn open(&self, shared: &Shared, link: Link) -> Result<(Opened, String)> {
        let timeout = shared.settings.connect_timeout;
        let addr = self.master_addr(shared).await?;
        let display = format!("{addr} ({})", self.display());
        let c = client(with_addr(&self.cfg.node, &addr))?;
        let (mut conn, push, direct) =
            open_conn(&c, &display, shared, link, link == Link::Publisher).await?;
        match tokio::time::timeout(timeout, role(&mut conn)).await {
            Ok(Ok(r)) if r == "master" => {}
            Ok(Ok(r)) => {
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!(
                        "{addr}, named by the sentinels as master {}, reports role {r}; asking \
                         the sentinels again",
                        self.cfg.name
                    ),
                ))
            }
            Ok(Err(e)) => {
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!("ROLE on {addr} failed: {e}"),
                ))
            }
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!("no reply to ROLE from {addr}"),
                ))
            }
        }
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(addr.clone());
        Ok(((conn, push, direct), addr.to_string()))
    }

    fn current(&self) -> Option<NodeAddr> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// `SENTINEL GET-MASTER-ADDR-BY-NAME name` on a sentinel connection.
async fn sentinel_master(
    conn: &mut MultiplexedConnection,
    name: &str,
) -> std::result::Result<NodeAddr, String> {
    let v: Option<(String, String)> = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(name)
        .query_async(conn)
        .await
        .map_err(|e| e.to_string())?;
    let (host, port) = v.ok_or_else(|| format!("does not know master {name}"))?;
    let port = port
        .parse()
        .map_err(|_| format!("gave an invalid port {port:?}"))?;
    Ok(NodeAddr { host, port })
}

/// Keep a connection to a sentinel subscribed to `+switch-master`, and check the master every
/// heartbeat interval; when the sentinels name another master than the links use, bump
/// `links.switch` so both links reconnect (and ask the sentinels again). Runs until shutdown.
pub(super) async fn watch_sentinels(
    locator: Arc<Locator>,
    shared: Arc<Shared>,
    links: Arc<LinkState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(loc) = locator.sentinel() else {
        return;
    };
    let s = &shared.settings;
    let every = s.heartbeat_interval.unwrap_or(Duration::from_secs(5));
    let name = loc.cfg.name.clone();
    let switched = |to: NodeAddr, how: &str| {
        if loc.current().is_some_and(|c| c != to) {
            shared.logger.warn(
                "Redis master switched: both connections move to the new master",
                &[
                    ("master", name.clone()),
                    ("to", to.to_string()),
                    ("seen", how.into()),
                ],
            );
            shared.stats.failovers.fetch_add(1, Relaxed);
            links.switch.send_modify(|e| *e += 1);
        }
    };
    let mut attempt = 0u32;
    loop {
        let n = loc.cfg.sentinels.len();
        let i = (loc.preferred.load(Relaxed) + attempt as usize) % n;
        let addr = loc.cfg.sentinels[i].clone();
        let served = async {
            let (tx, mut push) = mpsc::unbounded_channel();
            let info = with_addr(&loc.cfg.sentinel, &addr);
            let c = client(info).map_err(|e| e.to_string())?;
            let cfg = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(s.connect_timeout))
                .set_response_timeout(Some(s.connect_timeout))
                .set_push_sender(tx);
            let mut conn = c
                .get_multiplexed_async_connection_with_config(&cfg)
                .await
                .map_err(|e| e.to_string())?;
            let _ = redis::cmd("CLIENT")
                .arg("SETNAME")
                .arg(conn_name(&s.service_name, "sentinel"))
                .query_async::<()>(&mut conn)
                .await;
            conn.subscribe("+switch-master")
                .await
                .map_err(|e| e.to_string())?;
            let mut ticker = tokio::time::interval(every);
            loop {
                tokio::select! {
                    p = push.recv() => match p {
                        None => return Err("connection closed".to_string()),
                        Some(pi) if pi.kind == PushKind::Disconnection => return Err("connection closed".into()),
                        Some(pi) if pi.kind == PushKind::Message => {
                            // "<name> <old-ip> <old-port> <new-ip> <new-port>"
                            let text = match pi.data.get(1) {
                                Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                                _ => continue,
                            };
                            let parts: Vec<&str> = text.split(' ').collect();
                            if let [m, _, _, host, port] = parts[..] {
                                if m == name {
                                    if let Ok(port) = port.parse() {
                                        switched(NodeAddr { host: host.into(), port }, "+switch-master");
                                    }
                                }
                            }
                        }
                        Some(_) => {}
                    },
                    _ = ticker.tick() => {
                        let r = tokio::time::timeout(s.connect_timeout, sentinel_master(&mut conn, &name)).await;
                        match r {
                            Ok(Ok(to)) => switched(to, "sentinel query"),
                            Ok(Err(e)) => return Err(e),
                            Err(_) => return Err("no reply from the sentinel".into()),
                        }
                    }
                }
            }
        };
        let r: std::result::Result<(), String> = tokio::select! {
            r = served => r,
            _ = shutdown.changed() => return,
        };
        if let Err(e) = r {
            shared.logger.debug(
                "Sentinel watch connection lost; trying the next sentinel",
                &[("sentinel", addr.to_string()), ("error", e)],
            );
        }
        attempt = attempt.wrapping_add(1);
        let delay = crate::state::reconnect_delay(
            s.reconnect_delay,
            s.reconnect_delay_max,
            (attempt as u64 / n as u64).max(1),
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
    }
}

impl ClusterLocator {
    /// `redis.shardedPubSub`.
    pub(super) fn sharded(&self) -> bool {
        self.cfg.sharded
    }

    /// The masters in slot order (see [`ClusterLocator::slot_map`]).
    async fn masters(&self, shared: &Shared) -> Result<Vec<NodeAddr>> {
        let map = self.slot_map(shared).await?;
        let mut out: Vec<NodeAddr> = Vec::new();
        for (_, _, a) in map.ranges {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Open `link`'s connection to the cluster node `addr` (named, RESP3).
    pub(super) async fn open_node(
        &self,
        shared: &Shared,
        link: Link,
        addr: &NodeAddr,
    ) -> Result<Opened> {
        self.open_node_with(shared, link, addr, false).await
    }

    /// [`open_node`](Self::open_node), `direct` as [`open_conn`] takes it.
    async fn open_node_with(
        &self,
        shared: &Shared,
        link: Link,
        addr: &NodeAddr,
        direct: bool,
    ) -> Result<Opened> {
        let c = client(with_addr(&self.cfg.node, addr))?;
        open_conn(
            &c,
            &format!("{addr} (cluster master)"),
            shared,
            link,
            direct,
        )
        .await
    }

    /// Read which healthy master serves which slots from the first known node that answers
    /// `CLUSTER NODES` (addresses through `natMap`); the masters seen become the first nodes
    /// asked next time.
    pub(super) async fn slot_map(&self, shared: &Shared) -> Result<SlotMap> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut why = Vec::new();
        for addr in &known {
            let r = async {
                let mut conn = query_conn(with_addr(&self.cfg.node, addr), shared).await?;
                let text: String = redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(parse_cluster_nodes(&text))
            }
            .await;
            match r {
                Ok(ranges) if !ranges.is_empty() => {
                    let ranges: Vec<(u16, u16, NodeAddr)> = ranges
                        .into_iter()
                        .map(|(a, b, n)| (a, b, self.cfg.map(n)))
                        .collect();
                    let mut next: Vec<NodeAddr> = Vec::new();
                    for (_, _, n) in &ranges {
                        if !next.contains(n) {
                            next.push(n.clone());
                        }
                    }
                    for s in &self.cfg.seeds {
                        if !next.contains(s) {
                            next.push(s.clone());
                        }
                    }
                    *self.known.lock().unwrap_or_else(|p| p.into_inner()) = next;
                    let mut masters: Vec<NodeAddr> = Vec::new();
                    for (_, _, n) in &ranges {
                        if !masters.contains(n) {
                            masters.push(n.clone());
                        }
                    }
                    *self.masters.lock().unwrap_or_else(|p| p.into_inner()) = masters;
                    return Ok(SlotMap { ranges });
                }
                Ok(_) => why.push(format!("{addr}: no healthy master listed")),
                Err(e) => why.push(format!("{addr}: {e}")),
            }
        }
        Err(Error::new(
            ErrorKind::Connection,
            format!(
                "No Redis Cluster node answered CLUSTER NODES ({})",
                why.join("; ")
            ),
        ))
    }

    async fn open(&self, shared: &Shared, link: Link) -> Result<(Opened, String)> {
        let masters = self.masters(shared).await?;
        let addr = &masters[self.next.fetch_add(1, Relaxed) % masters.len()];
        let opened = self
            .open_node_with(shared, link, addr, link == Link::Publisher)
            .await?;
        Ok((opened, addr.to_string()))
    }
}

/// Which master serves which slot.
#[derive(Debug, Clone, Default)]
pub(super) struct SlotMap {
    /// `(first, last, master)`, sorted.
    ranges: Vec<(u16, u16, NodeAddr)>,
}

impl SlotMap {
    /// The master serving `slot`, if any.
    pub(super) fn owner(&self, slot: u16) -> Option<&NodeAddr> {
        self.ranges
            .iter()
            .find(|(a, b, _)| *a <= slot && slot <= *b)
            .map(|(_, _, n)| n)
    }
}

/// The cluster slot of a channel (or key): CRC16 (XMODEM) of the hash tag (the text between
/// the first `{` and the next `}`, when not empty) or of the whole name, modulo 16384.
pub(super) fn slot(name: &[u8]) -> u16 {
    let key = match name.iter().position(|&b| b == b'{') {
        Some(open) => match name[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &name[open + 1..open + 1 + len],
            _ => name,
        },
        None => name,
    };
    let mut crc: u16 = 0;
    for &b in key {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// The slot ranges of the healthy masters in `CLUSTER NODES` output, with their addresses as
/// announced (`ip:port`), sorted by slot. Slots being imported or migrated (`[...]`) count for
/// the node that serves them now.
fn parse_cluster_nodes(text: &str) -> Vec<(u16, u16, NodeAddr)> {
    let mut out: Vec<(u16, u16, NodeAddr)> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let flags: Vec<&str> = f[2].split(',').collect();
        if !flags.contains(&"master")
            || flags
                .iter()
                .any(|x| matches!(*x, "fail" | "fail?" | "noaddr" | "handshake"))
        {
            continue;
        }
        let addr = f[1].split('@').next().unwrap_or("");
        let Some((host, port)) = addr.rsplit_once(':') else {
            continue;
        };
        let (Ok(port), false) = (port.parse::<u16>(), host.is_empty()) else {
            continue;
        };
        let node = NodeAddr {
            host: host.to_string(),
            port,
        };
        for r in &f[8..] {
            if r.starts_with('[') {
                continue;
            }
            let (a, b) = r.split_once('-').unwrap_or((r, r));
            if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                out.push((a, b, node.clone()));
            }
        }
    }
    out.sort_by_key(|(a, _, _)| *a);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_healthy_masters_in_slot_order() {
        let text = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922
292f 127.0.0.1:30003@40003,host3 master - 0 1426238318243 3 connected 10923-16383
6ec2 127.0.0.1:30005@40005 master,fail - 0 1426238316232 5 connected
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
aaaa :0@0 master,noaddr - 0 0 1 connected 0-1
";
        let got: Vec<String> = parse_cluster_nodes(text)
            .iter()
            .map(|(a, b, n)| format!("{a}-{b}@{n}"))
            .collect();
        assert_eq!(
            got,
            [
                "0-5460@127.0.0.1:30001",
                "5461-10922@127.0.0.1:30002",
                "10923-16383@127.0.0.1:30003"
            ]
        );
        let map = SlotMap {
            ranges: parse_cluster_nodes(text),
        };
        assert_eq!(map.owner(5461).unwrap().port, 30002);
    }

    #[test]
    fn slots_as_redis_computes_them() {
        // CLUSTER KEYSLOT on Redis 7.0.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{}{bar}"), 8363);
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
    }
}
