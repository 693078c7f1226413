//! `healthCheck()` and `getStats()`: what the client can say about its links without
//! changing anything.
//!
//! Health PINGs Redis through the publisher connection: `healthy` when both links are up and
//! Redis answers, `degraded` while a link (or the Socket.IO hub) is reconnecting, `unhealthy`
//! when not connected.

use std::sync::atomic::Ordering::Relaxed;

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{EventBusClient, VERSION};
use crate::config::Endpoint;
use crate::metrics::{Exposition, SubscriptionView};
use crate::stats::StatsSnapshot;

/// `healthCheck()` result: `{status, timestamp, checks, uptime, version}`.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// `healthy` | `degraded` | `unhealthy`.
    pub status: String,
    /// ISO time.
    pub timestamp: String,
    /// Per-component checks.
    pub checks: Map<String, Value>,
    /// ms since connect.
    pub uptime: u64,
    /// Library version.
    pub version: String,
}

impl EventBusClient {
    #[cfg(feature = "socketio")]
    fn socketio_check(&self) -> Option<(Value, bool)> {
        let cfg = self.inner.settings.socketio.as_ref()?;
        let sio = self.socketio_handle()?;
        let st = sio.state();
        let up = st.is_up();
        let check = json!({
            "status": if up { "pass" } else { "fail" },
            "message": if up {
                "Socket.IO hub connection healthy".to_string()
            } else {
                format!(
                    "Socket.IO not connected: {}; reconnecting",
                    st.last_error().unwrap_or_else(|| "connecting".into())
                )
            },
            "duration": 0,
            "details": {
                "url": cfg.url,
                "transport": st.transport().map(|t| t.name()),
                "rooms": st.rooms(),
                "reconnects": st.reconnects(),
            }
        });
        Some((check, up))
    }

    #[cfg(not(feature = "socketio"))]
    fn socketio_check(&self) -> Option<(Value, bool)> {
        self.inner.settings.socketio.as_ref()?;
        Some((
            json!({"status": "warn", "message": "this build has no socketio feature; rooms are unavailable"}),
            true,
        ))
    }

    fn uptime(&self) -> u64 {
        let at = self.inner.connected_at.load(Relaxed);
        if at == 0 {
            0
        } else {
            crate::stats::now_ms().saturating_sub(at)
        }
    }

    /// `healthCheck()`: PINGs Redis. `degraded` while a connection is reconnecting,
    /// `unhealthy` when not connected or Redis does not answer.
    pub async fn health_check(&self) -> HealthReport {
        let this = self.clone();
        match crate::runtime::spawn(async move { this.health_inner().await }).await {
            Ok(r) => r,
            Err(e) => HealthReport {
                status: "unhealthy".into(),
                timestamp: crate::event::now_iso(),
                checks: Map::new(),
                uptime: 0,
                version: format!("{VERSION} (health task failed: {e})"),
            },
        }
    }

    async fn health_inner(&self) -> HealthReport {
        let mut checks = Map::new();
        let status;
        match self.transport() {
            None => {
                checks.insert(
                    "redis".into(),
                    json!({"status": "fail", "message": "Not connected to Event Bus", "duration": 0}),
                );
                status = "unhealthy";
            }
            Some(t) => {
                let links = t.links();
                let start = std::time::Instant::now();
                let ping = t.ping().await;
                let dur = start.elapsed().as_secs_f64() * 1000.0;
                let both = links.publisher_up && links.subscriber_up;
                let nodes = t.node_checks().await;
                let down: Vec<String> = nodes
                    .iter()
                    .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n} ({e})")))
                    .collect();
                let (st, msg, overall) = match (&ping, both) {
                    (Ok(_), true) if !down.is_empty() => (
                        "warn",
                        format!("Redis nodes not answering: {}", down.join(", ")),
                        "degraded",
                    ),
                    (Ok(_), true) => ("pass", "Redis connection healthy".to_string(), "healthy"),
                    (Ok(_), false) => (
                        "warn",
                        "Redis subscriber connection is reconnecting".to_string(),
                        "degraded",
                    ),
                    (Err(e), _) => (
                        "fail",
                        format!("Redis connection failed: {e}; reconnecting"),
                        "degraded",
                    ),
                };
                checks.insert(
                    "redis".into(),
                    json!({
                        "status": st,
                        "message": msg,
                        "duration": dur,
                        "details": {
                            "publisher": if links.publisher_up { "up" } else { "reconnecting" },
                            "subscriber": if links.subscriber_up { "up" } else { "reconnecting" },
                            "address": self.inner.settings.display_addr,
                            "nodes": nodes.iter().map(|(n, r)| match r {
                                Ok(d) => json!({"node": n, "status": "pass", "duration": d.as_secs_f64() * 1000.0}),
                                Err(e) => json!({"node": n, "status": "fail", "message": e}),
                            }).collect::<Vec<_>>(),
                        }
                    }),
                );
                status = match self.socketio_check() {
                    Some((check, up)) => {
                        checks.insert("socketio".into(), check);
                        if !up && overall == "healthy" {
                            "degraded"
                        } else {
                            overall
                        }
                    }
                    None => overall,
                };
            }
        }
        HealthReport {
            status: status.into(),
            timestamp: crate::event::now_iso(),
            checks,
            uptime: self.uptime(),
            version: VERSION.into(),
        }
    }

    /// Where a face reports a handler run that finished after the core stopped waiting for it
    /// (counted in `getStats().handlersLateCompleted`).
    pub fn late_completions(&self) -> crate::stats::LateCompletions {
        crate::stats::LateCompletions(self.inner.stats.clone())
    }

    /// `getStats()`.
    pub fn stats(&self) -> StatsSnapshot {
        let mut s = self.inner.stats.snapshot();
        let durable = self.durable_subs();
        s.active_subscriptions = (self.inner.registry.len() + durable.len()) as u64;
        s.durable = durable.iter().map(|d| d.stats()).collect();
        s.active_connections = match self.transport() {
            None => 0,
            Some(t) => {
                let l = t.links();
                u64::from(l.publisher_up) + u64::from(l.subscriber_up)
            }
        };
        #[cfg(feature = "socketio")]
        if let Some(sio) = self.socketio_handle() {
            s.active_rooms = sio.state().rooms().len() as u64;
            s.active_connections += u64::from(sio.state().is_up());
        }
        s.topology = self.transport().map(|t| t.topology());
        s.uptime = self.uptime();
        s
    }

    /// The transport mode label: `single`, `sentinel`, `cluster`, `cluster-sharded`,
    /// `memory` (from the configuration while not connected).
    fn transport_mode(&self, stats: &StatsSnapshot) -> String {
        if let Some(t) = &stats.topology {
            return t.mode.clone();
        }
        let s = &self.inner.settings;
        match &s.endpoint {
            Endpoint::Memory(_) => "memory",
            Endpoint::Redis(_) => "single",
            Endpoint::Sentinel(_) => "sentinel",
            Endpoint::Cluster(_) if s.sharded_pub_sub() => "cluster-sharded",
            Endpoint::Cluster(_) => "cluster",
        }
        .to_string()
    }

    /// `metrics()`: this client's counters, gauges and latency histograms in the Prometheus
    /// text exposition format (version 0.0.4), labelled with the service, the transport mode
    /// and, per subscription, its id and pattern. See `docs/metrics.md`.
    pub fn metrics(&self) -> String {
        let stats = self.stats();
        let mode = self.transport_mode(&stats);
        let entries = self.inner.registry.all();
        let mut subscriptions: Vec<SubscriptionView<'_>> = entries
            .iter()
            .map(|e| SubscriptionView {
                id: &e.id,
                pattern: &e.pattern,
                pending: e.queued(),
                metrics: &e.metrics,
            })
            .collect();
        subscriptions.sort_by(|a, b| a.pattern.cmp(b.pattern).then(a.id.cmp(b.id)));
        crate::metrics::render(&Exposition {
            service: &self.inner.settings.service_name,
            transport: &mode,
            connected: self.is_connected(),
            stats: &stats,
            publish: &self.inner.stats.publish_rtt,
            subscriptions,
        })
    }
}
