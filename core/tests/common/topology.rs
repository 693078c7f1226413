//! A local Redis Cluster or Sentinel setup for one test, laid out by
//! `scripts/redis-topology.sh` (the one place that knows how), in a temp directory that is
//! stopped and removed on drop, also when the test fails.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::unique;

/// A running topology.
pub struct Topology {
    pub dir: PathBuf,
    /// `DIR/env` of the script: `REDIS_CLUSTER_MASTERS`, `REDIS_SENTINELS`, ...
    pub env: HashMap<String, String>,
    /// Port to pid, for every server the script started.
    pids: HashMap<u16, u32>,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/redis-topology.sh")
}

impl Topology {
    /// `kind` is `cluster` or `sentinel`.
    pub fn start(kind: &str) -> Topology {
        let dir = std::env::temp_dir().join(unique(&format!("event-bus-{kind}")));
        let mut t = Topology {
            dir: dir.clone(),
            env: HashMap::new(),
            pids: HashMap::new(),
        };
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(kind)
            .arg(&dir)
            .output()
            .expect("running scripts/redis-topology.sh");
        // Read the pids even after a failed start: drop stops what is there.
        if let Ok(text) = std::fs::read_to_string(dir.join("pids")) {
            for line in text.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if let [pid, port, ..] = f[..] {
                    t.pids.insert(port.parse().unwrap(), pid.parse().unwrap());
                }
            }
        }
        assert!(
            out.status.success(),
            "redis-topology.sh start {kind} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((k, v)) = line.split_once('=') {
                t.env.insert(k.to_string(), v.to_string());
            }
        }
        t
    }

    /// `host:port` entries of a comma-separated env value.
    pub fn addrs(&self, key: &str) -> Vec<String> {
        self.env[key].split(',').map(str::to_string).collect()
    }

    /// SIGKILL the server on `port` (no shutdown, sockets reset).
    pub fn kill(&self, port: u16) {
        let pid = self.pids[&port];
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            // A killed daemon is reaped by init; its /proc entry goes with it.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat.split_whitespace().nth(2) == Some("Z") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A plain connection to `host:port`.
    pub fn conn(addr: &str) -> redis::Connection {
        redis::Client::open(format!("redis://{addr}"))
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap()
    }
}

/// The port of `host:port`.
pub fn port(addr: &str) -> u16 {
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(&self.dir)
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
