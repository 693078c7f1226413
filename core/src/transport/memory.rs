//! The in-process broker (`transport: "memory"` or `redis.url: "memory://name"`): the same
//! API, glob and channel semantics and `deliveredTo` count as Redis, with no server. Brokers
//! are named; clients with the same name in one process see each other.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use crate::glob::matches_pattern;
use crate::subscription::{Key, Registry};

struct Endpoint {
    registry: Arc<Registry>,
    keys: RwLock<HashSet<Key>>,
}

#[derive(Default)]
struct Broker {
    endpoints: RwLock<Vec<Weak<Endpoint>>>,
}

fn brokers() -> &'static Mutex<HashMap<String, Arc<Broker>>> {
    static B: OnceLock<Mutex<HashMap<String, Arc<Broker>>>> = OnceLock::new();
    B.get_or_init(Default::default)
}

/// One client's attachment to a named broker.
#[derive(Clone)]
pub(crate) struct MemoryTransport {
    broker: Arc<Broker>,
    endpoint: Arc<Endpoint>,
}

impl MemoryTransport {
    pub(crate) fn connect(name: &str, registry: Arc<Registry>) -> MemoryTransport {
        let broker = brokers()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone();
        let endpoint = Arc::new(Endpoint {
            registry,
            keys: RwLock::new(HashSet::new()),
        });
        {
            let mut eps = broker.endpoints.write().unwrap_or_else(|p| p.into_inner());
            eps.retain(|w| w.strong_count() > 0);
            eps.push(Arc::downgrade(&endpoint));
        }
        let t = MemoryTransport { broker, endpoint };
        t.sync();
        t
    }

    /// Deliver to every matching subscription key of every attached client; returns the
    /// receiver count as Redis's PUBLISH would.
    pub(crate) fn publish(&self, channel: &str, payload: &str) -> u64 {
        let eps: Vec<Arc<Endpoint>> = self
            .broker
            .endpoints
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let mut count = 0;
        for ep in eps {
            let keys: Vec<Key> = ep
                .keys
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect();
            for k in keys {
                match &k {
                    Key::Channel(c) if c == channel => {
                        count += 1;
                        ep.registry
                            .dispatch(channel, None, payload.as_bytes().to_vec());
                    }
                    Key::Pattern(p) if matches_pattern(p, channel) => {
                        count += 1;
                        ep.registry
                            .dispatch(channel, Some(p), payload.as_bytes().to_vec());
                    }
                    _ => {}
                }
            }
        }
        count
    }

    /// Make the broker-side key set equal the registry's.
    pub(crate) fn sync(&self) {
        let keys: HashSet<Key> = self.endpoint.registry.keys().into_iter().collect();
        *self
            .endpoint
            .keys
            .write()
            .unwrap_or_else(|p| p.into_inner()) = keys;
    }

    pub(crate) fn close(&self) {
        self.endpoint
            .keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let me = Arc::as_ptr(&self.endpoint);
        self.broker
            .endpoints
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|w| w.strong_count() > 0 && w.as_ptr() != me);
    }
}
