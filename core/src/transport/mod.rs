//! Brokers the client can run on: Redis pub/sub, or the in-process memory broker.

pub(crate) mod memory;
pub(crate) mod reconnect;
pub(crate) mod redis;

use std::sync::Arc;
use std::time::Duration;

use crate::config::Settings;
use crate::error::Result;
use crate::logging::Logger;
use crate::state::Emitter;
use crate::stats::Stats;
use crate::subscription::Registry;

/// What every transport shares with the client.
pub(crate) struct Shared {
    pub registry: Arc<Registry>,
    pub stats: Arc<Stats>,
    pub logger: Logger,
    pub emitter: Arc<Emitter>,
    pub settings: Settings,
}

pub(crate) enum Transport {
    Redis(redis::RedisTransport),
    Memory(memory::MemoryTransport),
}

/// Publishes handed over, waiting for their answers.
pub(crate) enum Queued {
    /// With the Redis publisher task, which answers each.
    Redis(redis::Replies),
    /// For the memory broker, which delivers when the answers are awaited (it needs the
    /// runtime).
    Memory(memory::MemoryTransport, Vec<(String, String)>),
}

impl Queued {
    /// One answer per item, in order: the number of subscribers reached, or the failure.
    pub(crate) async fn answers(self) -> Vec<Result<u64>> {
        match self {
            Queued::Redis(r) => r.answers().await,
            Queued::Memory(m, items) => items
                .into_iter()
                .map(|(c, p)| Ok(m.publish(&c, &p)))
                .collect(),
        }
    }
}

/// Up/down of the two links, for health and stats.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinkStatus {
    pub publisher_up: bool,
    pub subscriber_up: bool,
}

impl Transport {
    /// A new set of stream connections (Redis only).
    pub(crate) fn streams(&self) -> Result<redis::streams::Streams> {
        match self {
            Transport::Redis(r) => r.streams(),
            Transport::Memory(_) => Err(crate::error::Error::new(
                crate::error::ErrorKind::Unsupported,
                "durable subscriptions need Redis",
            )),
        }
    }

    /// The in-process memory broker (no streams there).
    pub(crate) fn is_memory(&self) -> bool {
        matches!(self, Transport::Memory(_))
    }

    /// Hand every item over for sending, in order, from inside the runtime; the answers come
    /// from [`Queued::answers`]. Waiting for room and for answers ends at `deadline`.
    pub(crate) async fn hand_over(
        &self,
        items: Vec<(String, String)>,
        deadline: tokio::time::Instant,
    ) -> Queued {
        match self {
            Transport::Redis(r) => Queued::Redis(r.hand_over_many(items, deadline).await),
            Transport::Memory(m) => Queued::Memory(m.clone(), items),
        }
    }

    /// Whether [`write_directly`](Self::write_directly) would write now (never for the memory
    /// broker).
    pub(crate) fn idle_for_direct_write(&self) -> bool {
        match self {
            Transport::Redis(r) => r.idle(),
            Transport::Memory(_) => false,
        }
    }

    /// One publish written on the calling thread, now, when the Redis publisher connection
    /// is live and idle (see `RedisTransport::write_directly`); `None` otherwise (and always
    /// for the memory broker): hand it over instead.
    pub(crate) fn write_directly(
        &self,
        channel: &str,
        payload: &str,
        deadline: tokio::time::Instant,
    ) -> Option<Queued> {
        match self {
            Transport::Redis(r) => r
                .write_directly(channel, payload, deadline)
                .map(Queued::Redis),
            Transport::Memory(_) => None,
        }
    }

    /// Bring the server-side subscriptions in line with the registry. Resolves once Redis has
    /// confirmed them (or at once while disconnected: the resubscribe applies them later).
    pub(crate) async fn sync(&self) -> Result<()> {
        match self {
            Transport::Redis(r) => r.sync().await,
            Transport::Memory(m) => {
                m.sync();
                Ok(())
            }
        }
    }

    /// Where the client is connected, for `getStats()`.
    pub(crate) fn topology(&self) -> crate::stats::TopologySnapshot {
        match self {
            Transport::Redis(r) => r.topology(),
            Transport::Memory(_) => crate::stats::TopologySnapshot {
                mode: "memory".into(),
                ..Default::default()
            },
        }
    }

    /// Per-server PINGs of a cluster or Sentinel setup, for `healthCheck()`.
    pub(crate) async fn node_checks(&self) -> Vec<(String, std::result::Result<Duration, String>)> {
        match self {
            Transport::Redis(r) => r.node_checks().await,
            Transport::Memory(_) => Vec::new(),
        }
    }

    pub(crate) fn links(&self) -> LinkStatus {
        match self {
            Transport::Redis(r) => r.links(),
            Transport::Memory(_) => LinkStatus {
                publisher_up: true,
                subscriber_up: true,
            },
        }
    }

    /// Round trip to the broker.
    pub(crate) async fn ping(&self) -> Result<Duration> {
        match self {
            Transport::Redis(r) => r.ping().await,
            Transport::Memory(_) => Ok(Duration::ZERO),
        }
    }

    pub(crate) async fn close(&self) {
        match self {
            Transport::Redis(r) => r.close().await,
            Transport::Memory(m) => m.close(),
        }
    }
}
