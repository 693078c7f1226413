//! The duplicate check for clients that receive events by two routes.
//!
//! With Socket.IO configured the same event can arrive by Redis and by the hub; each
//! subscription must see it once. The check remembers which subscriptions had which recent
//! event ids, bounded by [`DEDUPE_WINDOW`]: the oldest ids are forgotten first.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// How many recent event ids the duplicate check remembers (about 2 MB at most).
pub(super) const DEDUPE_WINDOW: usize = 16_384;

/// Which subscriptions (by their process-unique number) already had which recent event ids.
pub(crate) struct Seen {
    by_id: HashMap<Arc<str>, Vec<u64>>,
    order: VecDeque<Arc<str>>,
    cap: usize,
}

impl Seen {
    pub(crate) fn new(cap: usize) -> Seen {
        Seen {
            by_id: HashMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    /// True the first time `(id, subscription)` is offered.
    pub(super) fn first_time(&mut self, id: &str, sub: u64) -> bool {
        if let Some(subs) = self.by_id.get_mut(id) {
            if subs.contains(&sub) {
                return false;
            }
            subs.push(sub);
            return true;
        }
        if self.order.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
        let id: Arc<str> = Arc::from(id);
        self.by_id.insert(id.clone(), vec![sub]);
        self.order.push_back(id);
        true
    }
}
