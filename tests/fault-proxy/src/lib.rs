//! A TCP proxy for tests, between a client and a `redis-server`, that injects network faults on
//! command: added latency and jitter, a bandwidth cap, black-holed connections (open at both
//! ends, nothing crosses: a half-open link), a reset (RST) now or after N more bytes from the
//! client, a slow close, and refused connections for a while.
//!
//! Rust tests drive it directly ([`FaultProxy::start`], [`FaultProxy::command`]); the Node,
//! Python and C suites run the `fault-proxy` binary and send the same commands over its control
//! port, one line each (see `src/main.rs` and [`FaultProxy::command`] for the language).
//!
//! Connections are told apart by the name their client gives itself: the proxy reads the
//! `CLIENT SETNAME <name>` a client sends first (event-bus names its links `<service>:pub` and
//! `<service>:sub`), so a command can aim at one link (`blackhole :sub`).
//!
//! The proxy runs on its own thread with its own single-threaded tokio runtime, so it neither
//! depends on nor competes with the runtime of the code under test.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// How a connection is to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kill {
    /// Keep going.
    No,
    /// RST both ends now.
    Reset,
    /// Stop forwarding, wait this long, then close both ends with a FIN.
    Close(Duration),
}

/// One proxied connection.
struct Conn {
    id: u64,
    /// The name from the client's `CLIENT SETNAME`, once seen.
    name: Mutex<String>,
    /// Nothing crosses any more; what arrives is read and dropped, both sockets stay open.
    blackholed: AtomicBool,
    /// Client-to-server bytes still forwarded before a reset; negative: no reset planned.
    reset_after: AtomicI64,
    to_server: AtomicU64,
    to_client: AtomicU64,
    /// Bytes per second each direction of this connection may carry; 0: the global cap.
    bandwidth: AtomicU64,
    kill: watch::Sender<Kill>,
    closed: AtomicBool,
}

impl Conn {
    fn name(&self) -> String {
        self.name.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `all`, `#<id>`, or a part of the client's name (`:sub`, `billing:pub`).
    fn matches(&self, target: &str) -> bool {
        match target {
            "all" | "*" => true,
            t if t.starts_with('#') => t[1..].parse() == Ok(self.id),
            t => self.name().contains(t),
        }
    }
}

/// Faults that apply to every connection, current and new.
#[derive(Default)]
struct Global {
    latency_ms: AtomicU64,
    jitter_ms: AtomicU64,
    /// Bytes per second each direction of each connection may carry (unless the connection has
    /// its own cap); 0: no cap.
    bandwidth: AtomicU64,
    /// New connections are accepted and black-holed.
    blackhole_new: AtomicBool,
    /// New connections are reset at once until this instant (ms since `epoch`).
    refuse_until_ms: AtomicU64,
}

struct Shared {
    upstream: SocketAddr,
    global: Global,
    conns: Mutex<Vec<Arc<Conn>>>,
    next_id: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    epoch: Instant,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn matching(&self, target: &str) -> Vec<Arc<Conn>> {
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|c| !c.closed.load(Relaxed) && c.matches(target))
            .cloned()
            .collect()
    }
}

/// A running proxy. Dropping it stops it (and closes every connection it carries).
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Listen on a free port of 127.0.0.1 and forward every connection to `upstream`.
    pub fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        FaultProxy::start_on("127.0.0.1:0".parse().expect("an address"), upstream)
    }

    /// Listen on `listen` (port 0: a free one) and forward every connection to `upstream`.
    pub fn start_on(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let std_listener = std::net::TcpListener::bind(listen)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            global: Global::default(),
            conns: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime for the proxy");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).expect("listener");
                    tokio::select! {
                        _ = accept_loop(listener, s.clone()) => {}
                        _ = stop_rx => {}
                    }
                    for c in s.conns.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                        let _ = c.kill.send(Kill::Reset);
                    }
                    // Let the connection tasks see it.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                });
            })?;
        Ok(FaultProxy {
            addr,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Connections accepted so far (refused ones not included).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Relaxed)
    }

    /// Connections refused so far (`refuse`).
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Relaxed)
    }

    /// Names of the connections open now (empty string: no `CLIENT SETNAME` seen yet).
    pub fn open_names(&self) -> Vec<String> {
        self.shared
            .matching("all")
            .iter()
            .map(|c| c.name())
            .collect()
    }

    /// Run one command of the control language and return its reply (`ok ...`), or the reason
    /// it was refused. TARGET is `all`, `#<id>` or a part of the client's name (`:sub`).
    ///
    /// | command | effect |
    /// |---|---|
    /// | `latency MS [JITTER_MS]` | every chunk in both directions waits MS ± JITTER ms (order kept); `latency 0` ends it |
    /// | `bandwidth BYTES_PER_S [TARGET]` | caps each direction of each connection (or of those connections only); `0` ends it. Paced where the proxy reads, so a capped link pushes back on its sender as a slow network does (nothing piles up in the proxy) |
    /// | `blackhole TARGET` | those connections stay open but nothing crosses them (half-open) |
    /// | `blackhole-new on\|off` | new connections are accepted and black-holed |
    /// | `reset TARGET [AFTER_BYTES]` | RST both ends now, or after that many more client-to-server bytes |
    /// | `close TARGET [SLOW_MS]` | stop forwarding, wait SLOW_MS, then close both ends (FIN) |
    /// | `refuse MS` | new connections are reset at once for MS ms |
    /// | `heal` | ends latency, bandwidth (global and per connection), blackhole-new and refuse (black-holed connections stay so) |
    /// | `conns` | `ok [{"id":..,"name":..,"toServer":..,"toClient":..,"blackholed":..}, ...]` |
    /// | `stats` | `ok {"accepted":..,"refused":..,"open":..}` |
    pub fn command(&self, line: &str) -> Result<String, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let g = &self.shared.global;
        let num = |i: usize, what: &str| -> Result<u64, String> {
            words
                .get(i)
                .ok_or_else(|| format!("{} needs {what}", words[0]))?
                .parse::<u64>()
                .map_err(|_| format!("{what} must be a whole number (got {})", words[i]))
        };
        let opt_num = |i: usize, what: &str| -> Result<Option<u64>, String> {
            if words.len() > i {
                num(i, what).map(Some)
            } else {
                Ok(None)
            }
        };
        let target = |i: usize| -> Result<Vec<Arc<Conn>>, String> {
            let t = words
                .get(i)
                .ok_or_else(|| format!("{} needs a target", words[0]))?;
            Ok(self.shared.matching(t))
        };
        match words.first().copied() {
            Some("latency") => {
                g.latency_ms.store(num(1, "a latency in ms")?, Relaxed);
                g.jitter_ms
                    .store(opt_num(2, "a jitter in ms")?.unwrap_or(0), Relaxed);
                Ok("ok".into())
            }
            Some("bandwidth") => {
                let cap = num(1, "bytes per second")?;
                if words.len() > 2 {
                    let hit = target(2)?;
                    for c in &hit {
                        c.bandwidth.store(cap, Relaxed);
                    }
                    return Ok(format!("ok {}", hit.len()));
                }
                g.bandwidth.store(cap, Relaxed);
                Ok("ok".into())
            }
            Some("blackhole") => {
                let hit = target(1)?;
                for c in &hit {
                    c.blackholed.store(true, Relaxed);
                }
                Ok(format!("ok {}", hit.len()))
            }
            Some("blackhole-new") => {
                let on = match words.get(1).copied() {
                    Some("on") => true,
                    Some("off") => false,
                    _ => return Err("blackhole-new needs on or off".into()),
                };
                g.blackhole_new.store(on, Relaxed);
                Ok("ok".into())
            }
            Some("reset") => {
                let hit = target(1)?;
                match opt_num(2, "a byte count")? {
                    None => hit.iter().for_each(|c| {
                        let _ = c.kill.send(Kill::Reset);
                    }),
                    Some(n) => hit
                        .iter()
                        .for_each(|c| c.reset_after.store(n as i64, Relaxed)),
                }
                Ok(format!("ok {}", hit.len()))
            }
            Some("close") => {
                let hit = target(1)?;
                let slow = Duration::from_millis(opt_num(2, "a delay in ms")?.unwrap_or(0));
                for c in &hit {
                    let _ = c.kill.send(Kill::Close(slow));
                }
                Ok(format!("ok {}", hit.len()))
            }
            Some("refuse") => {
                let ms = num(1, "a duration in ms")?;
                g.refuse_until_ms.store(self.shared.now_ms() + ms, Relaxed);
                Ok("ok".into())
            }
            Some("heal") => {
                g.latency_ms.store(0, Relaxed);
                g.jitter_ms.store(0, Relaxed);
                g.bandwidth.store(0, Relaxed);
                for c in self.shared.matching("all") {
                    c.bandwidth.store(0, Relaxed);
                }
                g.blackhole_new.store(false, Relaxed);
                g.refuse_until_ms.store(0, Relaxed);
                Ok("ok".into())
            }
            Some("conns") => {
                let list: Vec<String> = self
                    .shared
                    .matching("all")
                    .iter()
                    .map(|c| {
                        format!(
                            r#"{{"id":{},"name":{:?},"toServer":{},"toClient":{},"blackholed":{}}}"#,
                            c.id,
                            c.name(),
                            c.to_server.load(Relaxed),
                            c.to_client.load(Relaxed),
                            c.blackholed.load(Relaxed)
                        )
                    })
                    .collect();
                Ok(format!("ok [{}]", list.join(",")))
            }
            Some("stats") => Ok(format!(
                r#"ok {{"accepted":{},"refused":{},"open":{}}}"#,
                self.accepted(),
                self.refused(),
                self.shared.matching("all").len()
            )),
            Some(other) => Err(format!("unknown command {other:?}")),
            None => Err("empty command".into()),
        }
    }

    /// `command`, panicking on a refused command (for tests).
    pub fn must(&self, line: &str) -> String {
        self.command(line)
            .unwrap_or_else(|e| panic!("fault proxy: {line}: {e}"))
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let g = &shared.global;
        if shared.now_ms() < g.refuse_until_ms.load(Relaxed) {
            shared.refused.fetch_add(1, Relaxed);
            reset(&client);
            continue;
        }
        shared.accepted.fetch_add(1, Relaxed);
        let (kill, _) = watch::channel(Kill::No);
        let conn = Arc::new(Conn {
            id: shared.next_id.fetch_add(1, Relaxed),
            name: Mutex::new(String::new()),
            blackholed: AtomicBool::new(g.blackhole_new.load(Relaxed)),
            reset_after: AtomicI64::new(-1),
            to_server: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
            bandwidth: AtomicU64::new(0),
            kill,
            closed: AtomicBool::new(false),
        });
        {
            let mut conns = shared.conns.lock().unwrap_or_else(|p| p.into_inner());
            conns.retain(|c| !c.closed.load(Relaxed));
            conns.push(conn.clone());
        }
        tokio::spawn(serve(client, conn, shared.clone()));
    }
}

/// Close `s` with an RST rather than a FIN.
fn reset(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}

async fn serve(client: TcpStream, conn: Arc<Conn>, shared: Arc<Shared>) {
    let _ = client.set_nodelay(true);
    let upstream = match TcpStream::connect(shared.upstream).await {
        Ok(u) => u,
        Err(_) => {
            reset(&client);
            conn.closed.store(true, Relaxed);
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    // A second descriptor of each socket, kept here: the halves below end up in tasks that are
    // dropped at their own pace, and a socket closes (FIN, or RST with linger 0) only when its
    // last descriptor does, so a reset sets linger 0 through these and then drops them.
    let (Ok(client_fd), Ok(upstream_fd)) = (dup(&client), dup(&upstream)) else {
        conn.closed.store(true, Relaxed);
        return;
    };
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    let (to_up_tx, to_up_rx) = mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(1024);
    let (to_cl_tx, to_cl_rx) = mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(1024);
    let w_up = tokio::spawn(writer(uw, to_up_rx));
    let w_cl = tokio::spawn(writer(cw, to_cl_rx));
    let mut kill = conn.kill.subscribe();
    let how = tokio::select! {
        k = pump(cr, to_up_tx, &conn, &shared, true) => k,
        k = pump(ur, to_cl_tx, &conn, &shared, false) => k,
        k = async {
            loop {
                if kill.changed().await.is_err() {
                    return Kill::Reset;
                }
                let k = *kill.borrow();
                if k != Kill::No {
                    return k;
                }
            }
        } => k,
    };
    // The pumps (and their read halves and queue senders) are dropped here.
    match how {
        Kill::Close(slow) => {
            conn.blackholed.store(true, Relaxed);
            tokio::time::sleep(slow).await;
            // Each writer writes what it holds, shuts its half down (FIN) and ends (unless a
            // peer that reads nothing holds it up for long).
            for w in [w_up, w_cl] {
                let abort = w.abort_handle();
                if tokio::time::timeout(Duration::from_secs(5), w)
                    .await
                    .is_err()
                {
                    abort.abort();
                }
            }
        }
        Kill::Reset | Kill::No => {
            for fd in [&client_fd, &upstream_fd] {
                let _ = fd.set_linger(Some(Duration::ZERO));
            }
            w_up.abort();
            w_cl.abort();
        }
    }
    conn.closed.store(true, Relaxed);
}

fn dup(s: &TcpStream) -> std::io::Result<socket2::Socket> {
    socket2::SockRef::from(s).try_clone()
}

/// Read one direction and queue each chunk for its writer with the time it may be written,
/// reading no faster than the bandwidth cap (so a capped link fills its sender's socket buffer
/// instead of the proxy's queue). Returns when the source closes or fails (or the writer is
/// gone).
async fn pump(
    mut from: OwnedReadHalf,
    to: mpsc::Sender<(tokio::time::Instant, Vec<u8>)>,
    conn: &Conn,
    shared: &Shared,
    to_server: bool,
) -> Kill {
    let mut buf = vec![0u8; 64 * 1024];
    let mut last_due = tokio::time::Instant::now();
    let mut sniff: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return Kill::Close(Duration::ZERO),
            Ok(n) => n,
        };
        if to_server && sniff.len() < 8192 && conn.name().is_empty() {
            sniff.extend_from_slice(&buf[..n]);
            if let Some(name) = setname(&sniff) {
                *conn.name.lock().unwrap_or_else(|p| p.into_inner()) = name;
                sniff = Vec::new();
            }
        }
        if conn.blackholed.load(Relaxed) {
            continue;
        }
        let mut chunk = &buf[..n];
        let mut then_reset = false;
        if to_server {
            let left = conn.reset_after.load(Relaxed);
            if left >= 0 {
                let left = left as usize;
                if chunk.len() >= left {
                    chunk = &chunk[..left];
                    then_reset = true;
                } else {
                    conn.reset_after.fetch_sub(chunk.len() as i64, Relaxed);
                }
            }
            conn.to_server.fetch_add(chunk.len() as u64, Relaxed);
        } else {
            conn.to_client.fetch_add(chunk.len() as u64, Relaxed);
        }
        let g = &shared.global;
        let (lat, jit) = (g.latency_ms.load(Relaxed), g.jitter_ms.load(Relaxed));
        let now = tokio::time::Instant::now();
        let due = if lat == 0 && jit == 0 {
            now
        } else {
            let j = if jit > 0 {
                rand::rng().random_range(-(jit as i64)..=jit as i64)
            } else {
                0
            };
            now + Duration::from_millis((lat as i64 + j).max(0) as u64)
        };
        // Order is kept: a chunk never overtakes the one before it.
        last_due = last_due.max(due);
        if !chunk.is_empty() && to.send((last_due, chunk.to_vec())).await.is_err() {
            return Kill::Close(Duration::ZERO);
        }
        let cap = match conn.bandwidth.load(Relaxed) {
            0 => g.bandwidth.load(Relaxed),
            own => own,
        };
        if let Some(us) = (n as u64 * 1_000_000).checked_div(cap) {
            tokio::time::sleep(Duration::from_micros(us)).await;
        }
        if then_reset {
            // Let the writer put the last allowed bytes on the wire, then reset.
            while to.capacity() < to.max_capacity() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            return Kill::Reset;
        }
    }
}

/// Write what the pump queued, each chunk at its time; on the end of the queue, shut the write
/// half down (FIN).
async fn writer(mut to: OwnedWriteHalf, mut rx: mpsc::Receiver<(tokio::time::Instant, Vec<u8>)>) {
    while let Some((due, bytes)) = rx.recv().await {
        tokio::time::sleep_until(due).await;
        if to.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}

/// The name in a RESP `CLIENT SETNAME <name>` command, if `buf` holds a whole one.
fn setname(buf: &[u8]) -> Option<String> {
    let upper: Vec<u8> = buf.iter().map(|b| b.to_ascii_uppercase()).collect();
    let at = upper.windows(9).position(|w| w == b"SETNAME\r\n")? + 9;
    let rest = &buf[at..];
    if rest.first() != Some(&b'$') {
        return None;
    }
    let nl = rest.windows(2).position(|w| w == b"\r\n")?;
    let len: usize = std::str::from_utf8(&rest[1..nl]).ok()?.parse().ok()?;
    let name = rest.get(nl + 2..nl + 2 + len)?;
    Some(String::from_utf8_lossy(name).into_owned())
}

#[cfg(test)]
mod tests {
    use super::setname;

    #[test]
    fn setname_is_read_from_resp() {
        let cmd = b"*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$9\r\nsvc-1:sub\r\n";
        assert_eq!(setname(cmd).as_deref(), Some("svc-1:sub"));
        assert_eq!(setname(&cmd[..cmd.len() - 4]), None, "incomplete");
        assert_eq!(setname(b"*1\r\n$4\r\nPING\r\n"), None);
    }
}
