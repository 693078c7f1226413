//! Brokers the client can run on: Redis pub/sub, or the in-process memory broker.

pub(crate) mod memory;
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

/// Up/down of the two links, for health and stats.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinkStatus {
    pub publisher_up: bool,
    pub subscriber_up: bool,
}

impl Transport {
    /// Publish every `(channel, payload)`; one result per item, in order.
    pub(crate) async fn publish_many(&self, items: Vec<(String, String)>) -> Vec<Result<u64>> {
        match self {
            Transport::Redis(r) => r.publish_many(items).await,
            Transport::Memory(m) => items
                .into_iter()
                .map(|(c, p)| Ok(m.publish(&c, &p)))
                .collect(),
        }
    }

    /// Queue every item now, on the calling thread (in call order across calls); the future
    /// answers each. See [`redis::RedisTransport::queue_now`].
    pub(crate) fn queue_many(
        self: &Arc<Self>,
        items: Vec<(String, String)>,
    ) -> impl std::future::Future<Output = Vec<Result<u64>>> + Send + 'static {
        // The memory broker delivers inside `publish`, which needs the runtime: it runs when
        // the future does.
        let queued = match &**self {
            Transport::Redis(r) => Ok(r.queue_now(items)),
            Transport::Memory(_) => Err(items),
        };
        let this = self.clone();
        async move {
            match (queued, &*this) {
                (Ok((waits, deadline)), Transport::Redis(r)) => {
                    r.await_replies(waits, deadline).await
                }
                (Err(items), _) => this.publish_many(items).await,
                (Ok(_), Transport::Memory(_)) => unreachable!("queued on Redis"),
            }
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
