//! Test harness shared by the core's test files.
//!
//! - [`RedisServer`]: a private `redis-server` on a free port (binary overridable by
//!   `REDIS_SERVER_BIN`), started with `--save '' --appendonly no` plus any extra config, stopped
//!   on drop; it can be SIGKILLed and restarted on the same port. Tests that kill or
//!   reconfigure Redis use it and never touch the shared server.
//! - [`TlsFiles`] + [`RedisServer::start_tls`]: a throwaway CA and a server certificate for
//!   127.0.0.1/localhost made with the `openssl` CLI (overridable by `OPENSSL_BIN`), and a private
//!   `redis-server` that listens with TLS only (`--port 0 --tls-port P`).
//! - Helpers for ordinary tests on the shared server (`REDIS_URL` or 127.0.0.1:6379) with names
//!   unique to the test, a collecting handler, polling waits and raw Redis connections.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod topology;

use event_bus::{Delivery, EventBusClient, HandlerError, StateEvent};
use serde_json::value::RawValue;

/// The shared server's URL.
pub fn shared_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A name unique to this process and call, for channels, patterns and service names.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos:x}-{n}", std::process::id())
}

/// A private redis-server.
pub struct RedisServer {
    pub port: u16,
    extra: Vec<String>,
    child: Option<Child>,
    /// Set for a TLS-only server: how to reach it and where it logs.
    tls: Option<ServerTls>,
}

struct ServerTls {
    ca_pem: Vec<u8>,
    log: PathBuf,
    /// False for a server whose certificate is bad on purpose: the harness's own connections
    /// then skip verification (the client under test never does).
    verify: bool,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// Start on a free port with no extra config.
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Start with extra `redis-server` arguments, e.g.
    /// `["--client-output-buffer-limit", "pubsub 1mb 256kb 5"]`.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        Self::start_on_a_free_port(extra, |_| None)
            .unwrap_or_else(|e| panic!("could not start redis-server: {e}"))
    }

    /// Up to five tries, each on a fresh free port (another process may take the port between
    /// finding it free and binding it); `tls(attempt)` says how each try serves TLS.
    fn start_on_a_free_port(
        extra: &[&str],
        tls: impl Fn(usize) -> Option<ServerTls>,
    ) -> Result<RedisServer, String> {
        let mut last = String::new();
        for attempt in 0..5 {
            let mut s = RedisServer {
                port: free_port(),
                extra: extra.iter().map(|s| s.to_string()).collect(),
                child: None,
                tls: tls(attempt),
            };
            match s.spawn() {
                Ok(()) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
        let mut cmd = Command::new(&bin);
        match &self.tls {
            // TLS only: no plain-text listener at all.
            Some(_) => cmd.args(["--port", "0", "--tls-port", &self.port.to_string()]),
            None => cmd.arg("--port").arg(self.port.to_string()),
        };
        cmd.arg("--bind")
            .arg("127.0.0.1")
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--daemonize")
            .arg("no")
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(tls) = &self.tls {
            // Keep what redis-server says (its log goes to stdout, config errors to stderr): a
            // build without TLS support explains itself there.
            let out = std::fs::File::create(&tls.log)
                .map_err(|e| format!("creating {}: {e}", tls.log.display()))?;
            let err = out.try_clone().map_err(|e| e.to_string())?;
            cmd.stdout(out).stderr(err);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("spawning {bin}: {e} (set REDIS_SERVER_BIN)"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "{bin} exited at start: {status}{}",
                    self.log_tail()
                ));
            }
            if let Ok(client) = self.test_client() {
                if let Ok(mut c) = client.get_connection_with_timeout(Duration::from_millis(200)) {
                    match redis::cmd("PING").query::<String>(&mut c) {
                        Ok(_) => break,
                        // Up, and asking for a password (`--requirepass`).
                        Err(e) if e.code() == Some("NOAUTH") => break,
                        Err(_) => {}
                    }
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{bin} did not answer PING on port {}{}",
                    self.port,
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
        Ok(())
    }

    /// Start a TLS-only server (`--port 0 --tls-port P`) presenting `files`' server
    /// certificate; clients need not present one (`--tls-auth-clients no`). Panics with
    /// redis-server's own words when it cannot (for example a build without TLS support).
    pub fn start_tls(files: &TlsFiles) -> RedisServer {
        Self::start_tls_verified(files, true)
    }

    /// As [`Self::start_tls`], for a certificate that is bad on purpose (expired, issued for
    /// another host): the harness's own connections do not verify it.
    pub fn start_tls_unverified(files: &TlsFiles) -> RedisServer {
        Self::start_tls_verified(files, false)
    }

    fn start_tls_verified(files: &TlsFiles, verify: bool) -> RedisServer {
        let extra = [
            "--tls-cert-file",
            path_str(&files.cert),
            "--tls-key-file",
            path_str(&files.key),
            "--tls-ca-cert-file",
            path_str(&files.ca),
            "--tls-auth-clients",
            "no",
        ];
        Self::start_on_a_free_port(&extra, |attempt| {
            Some(ServerTls {
                ca_pem: files.ca_pem(),
                log: files.dir.join(format!("redis-{attempt}.log")),
                verify,
            })
        })
        .unwrap_or_else(|e| {
            panic!(
                "could not start a TLS redis-server (these tests need one built with TLS \
                 support, e.g. Debian's redis-server 7; set REDIS_SERVER_BIN to use another): {e}"
            )
        })
    }

    /// A client of the test harness itself (PING at start, [`Self::conn`]); over TLS it trusts
    /// the test CA.
    fn test_client(&self) -> redis::RedisResult<redis::Client> {
        match &self.tls {
            None => redis::Client::open(self.url()),
            Some(tls) if !tls.verify => redis::Client::open(format!("{}/#insecure", self.url())),
            Some(tls) => redis::Client::build_with_tls(
                self.url(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(tls.ca_pem.clone()),
                },
            ),
        }
    }

    /// The end of redis-server's log, for error messages (TLS servers only).
    fn log_tail(&self) -> String {
        let Some(tls) = &self.tls else {
            return String::new();
        };
        let text = std::fs::read_to_string(&tls.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(8)..].join("\n  ");
        format!("; redis-server output ({}):\n  {tail}", tls.log.display())
    }

    /// `redis://127.0.0.1:P`, or `rediss://127.0.0.1:P` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// SIGKILL the server (no shutdown, sockets reset).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL on Unix
            let _ = c.wait();
        }
    }

    /// Start again on the same port with `extra` in place of the arguments it had.
    pub fn restart_with(&mut self, extra: &[&str]) {
        self.extra = extra.iter().map(|s| s.to_string()).collect();
        self.restart();
    }

    /// Start again on the same port with the same config.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("restart failed: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// A plain (RESP2) connection to this server (over TLS, trusting the test CA, for a TLS
    /// server).
    pub fn conn(&self) -> redis::Connection {
        self.test_client()
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// A throwaway CA and a server certificate it signed, for CN/SAN `127.0.0.1` and `localhost`,
/// in a temp directory removed on drop. Made with the `openssl` CLI (`OPENSSL_BIN` overrides
/// the binary); panics with a clear message when it is missing.
pub struct TlsFiles {
    pub dir: PathBuf,
    /// CA certificate (PEM).
    pub ca: PathBuf,
    /// Server certificate (PEM), signed by the CA.
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
}

impl TlsFiles {
    pub fn generate() -> TlsFiles {
        Self::generate_with("IP:127.0.0.1, DNS:localhost", "2")
    }

    /// A CA and a server certificate for the subject alternative names `san`, valid for
    /// `days` from now (`-1`: it expired yesterday).
    pub fn generate_with(san: &str, days: &str) -> TlsFiles {
        let dir = std::env::temp_dir().join(unique("event-bus-tls"));
        std::fs::create_dir_all(&dir).unwrap();
        let files = TlsFiles {
            ca: dir.join("ca.crt"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
            dir,
        };
        let d = |name: &str| files.dir.join(name).to_str().unwrap().to_string();
        std::fs::write(
            d("server.ext"),
            format!(
                "basicConstraints = critical, CA:FALSE\n\
                 keyUsage = critical, digitalSignature, keyEncipherment\n\
                 extendedKeyUsage = serverAuth\n\
                 subjectAltName = {san}\n"
            ),
        )
        .unwrap();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        // The CA: self-signed, allowed to sign certificates.
        openssl(&[
            &["req", "-x509", "-nodes", "-days", "2", "-sha256"][..],
            &ec,
            &["-keyout", &d("ca.key"), "-out", &d("ca.crt")],
            &["-subj", &format!("/CN=event-bus test CA {}", unique("ca"))],
            &["-addext", "basicConstraints=critical,CA:TRUE"],
            &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ]);
        // The server: a request, then the CA signs it with the SANs.
        openssl(&[
            &["req", "-new", "-nodes", "-sha256"][..],
            &ec,
            &["-keyout", &d("server.key"), "-out", &d("server.csr")],
            &["-subj", "/CN=127.0.0.1"],
        ]);
        openssl(&[
            &["x509", "-req", "-days", days, "-sha256"][..],
            &[
                "-in",
                &d("server.csr"),
                "-CA",
                &d("ca.crt"),
                "-CAkey",
                &d("ca.key"),
            ],
            &["-CAcreateserial", "-out", &d("server.crt")],
            &["-extfile", &d("server.ext")],
        ]);
        files
    }

    /// The CA certificate as PEM text.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(&self.ca).unwrap()
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Run `openssl` with the concatenated argument groups; panic with its stderr on failure.
fn openssl(groups: &[&[&str]]) {
    let bin = std::env::var("OPENSSL_BIN").unwrap_or_else(|_| "openssl".into());
    let args: Vec<&str> = groups.iter().flat_map(|g| g.iter().copied()).collect();
    let out = Command::new(&bin)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("the TLS tests need the openssl CLI to make certificates: running {bin}: {e} (set OPENSSL_BIN)")
        });
    assert!(
        out.status.success(),
        "{bin} {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A plain synchronous connection.
pub fn raw_conn(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap()
}

/// `PUBSUB NUMSUB channel` -> count.
pub fn numsub(c: &mut redis::Connection, channel: &str) -> i64 {
    let v: Vec<redis::Value> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query(c)
        .unwrap();
    match v.get(1) {
        Some(redis::Value::Int(n)) => *n,
        other => panic!("unexpected NUMSUB reply {other:?}"),
    }
}

/// `PUBSUB NUMPAT`.
pub fn numpat(c: &mut redis::Connection) -> i64 {
    redis::cmd("PUBSUB").arg("NUMPAT").query(c).unwrap()
}

/// `PUBSUB CHANNELS pattern`.
pub fn channels(c: &mut redis::Connection, pattern: &str) -> Vec<String> {
    let mut v: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg(pattern)
        .query(c)
        .unwrap();
    v.sort();
    v
}

/// Raw PUBLISH of arbitrary bytes; returns the receiver count.
pub fn raw_publish(c: &mut redis::Connection, channel: &str, payload: &[u8]) -> i64 {
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query(c)
        .unwrap()
}

/// Parsed `CLIENT LIST` lines as key=value maps.
pub fn client_list(c: &mut redis::Connection) -> Vec<std::collections::HashMap<String, String>> {
    let text: String = redis::cmd("CLIENT").arg("LIST").query(c).unwrap();
    text.lines()
        .map(|l| {
            l.split(' ')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// Config JSON for a Redis client; `redis_extra` is spliced into the `redis` object
/// (e.g. `"reconnectDelay":50`), `top_extra` into the top level.
pub fn config(service: &str, url: &str, redis_extra: &str, top_extra: &str) -> String {
    let r = if redis_extra.is_empty() {
        String::new()
    } else {
        format!(",{redis_extra}")
    };
    let t = if top_extra.is_empty() {
        String::new()
    } else {
        format!(",{top_extra}")
    };
    format!(r#"{{"serviceName":"{service}","logLevel":"error","redis":{{"url":"{url}"{r}}}{t}}}"#)
}

/// Connected client on the shared server.
pub async fn shared_client(service: &str) -> EventBusClient {
    let bus = EventBusClient::from_json(&config(service, &shared_url(), "", "")).unwrap();
    bus.connect().await.unwrap();
    bus
}

/// JSON text as the `data` argument.
pub fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_string()).unwrap()
}

/// Batch items of type `event_type` whose data is `{"n": n}` for each `n` in `ns`, in order.
#[allow(dead_code)] // not every test binary uses it
pub fn numbered_items(
    event_type: &str,
    ns: impl Iterator<Item = u64>,
) -> Vec<event_bus::BatchItem> {
    ns.map(|n| event_bus::BatchItem {
        event_type: event_type.to_string(),
        data: raw(&format!(r#"{{"n":{n}}}"#)),
        options: Default::default(),
    })
    .collect()
}

/// Collects every delivery a handler sees.
#[derive(Clone, Default)]
pub struct Collector {
    pub got: Arc<Mutex<Vec<Delivery>>>,
}

impl Collector {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn handler(&self) -> Arc<dyn event_bus::Handler> {
        let got = self.got.clone();
        Arc::new(move |d: Delivery| {
            got.lock().unwrap().push(d);
            async { Ok::<(), HandlerError>(()) }
        })
    }

    pub fn len(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    pub fn all(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }

    /// The `data.n` of every event that has one, in arrival order.
    pub fn numbers(&self) -> Vec<u64> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter_map(|d| d.data()["n"].as_u64())
            .collect()
    }

    /// Wait until at least `n` arrived (or `timeout`); returns the count.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> usize {
        wait_until(timeout, || self.len() >= n).await;
        self.len()
    }
}

/// Poll `cond` every 5 ms until true or `timeout`; returns whether it became true.
pub async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Records every state event of a client.
#[derive(Clone, Default)]
pub struct StateLog {
    pub events: Arc<Mutex<Vec<(Instant, StateEvent)>>>,
}

impl StateLog {
    pub fn attach(bus: &EventBusClient) -> StateLog {
        let log = StateLog::default();
        let ev = log.events.clone();
        bus.on_state(Arc::new(move |e: &StateEvent| {
            ev.lock().unwrap().push((Instant::now(), e.clone()))
        }));
        log
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| e.name())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.names().contains(&name)
    }

    /// How many recorded events `pred` accepts.
    pub fn count(&self, pred: impl Fn(&StateEvent) -> bool) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, e)| pred(e))
            .count()
    }

    /// The reasons of the recorded disconnects of `link` (`None`: of either connection).
    pub fn disconnect_reasons(&self, link: Option<event_bus::Link>) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, e)| match e {
                StateEvent::Disconnected { connection, reason }
                    if link.is_none_or(|l| l == *connection) =>
                {
                    Some(reason.clone())
                }
                _ => None,
            })
            .collect()
    }
}

/// A fault-injecting TCP proxy (the `event-bus-fault-proxy` crate) in front of
/// `127.0.0.1:port`.
pub fn fault_proxy(port: u16) -> fault_proxy::FaultProxy {
    fault_proxy::FaultProxy::start(([127, 0, 0, 1], port).into()).expect("the fault proxy starts")
}
