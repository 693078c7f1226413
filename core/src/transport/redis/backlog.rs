//! How far a publisher may run ahead of the subscribers of its own process.
//!
//! Redis copies every message into each subscriber connection's output buffer and disconnects a
//! subscriber whose buffer passes its pub/sub limit (`client-output-buffer-limit pubsub`: 32 MB,
//! or 8 MB for 60 s, by default), losing what it had not read. A publisher hears back once Redis
//! has *copied* a message, not once the subscriber has read it, so the publisher's bound on
//! pipelines in flight does not keep a subscriber that reads slower than the publisher writes
//! under that limit. For the subscribers of its own process the core can do better, because it
//! knows what they are subscribed to and what they have read.
//!
//! A [`Backlog`] is one account per Redis address (clients configured with the same address
//! share it): the bytes the process's subscriber connections are still owed, which grows by each
//! publish's payload times the number of those connections' channels and patterns that match its
//! channel (each is one delivery), and shrinks by each message they receive. A publisher owed
//! more than [`AHEAD_LIMIT`] waits ([`Backlog::wait`]) before it writes more.
//!
//! The count is an estimate, never a reason to stop for good: messages from other processes'
//! publishers shrink it too; a subscription that changes while messages are in flight, or a
//! message lost with its connection, leaves it off. So a subscriber connection that is lost
//! clears the account, and a wait that sees the subscribers read nothing for [`STALL`] clears it
//! and waits no more on that account until they read again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use crate::subscription::Key;

/// The bytes a publisher may have published to the subscribers of its process that they have not
/// read yet, before it waits: an eighth of Redis's default hard limit and half its soft one, with
/// room for what is in flight when the publisher stops (at most a pipeline and the pipelines
/// awaiting replies, 1.25 MB).
pub(super) const AHEAD_LIMIT: u64 = 4 << 20;

/// A waiting publisher is woken once the subscribers are owed this little.
const RESUME_BELOW: u64 = AHEAD_LIMIT / 2;

/// A wait during which the subscribers read nothing for this long gives up on the account.
const STALL: Duration = Duration::from_millis(250);

/// The published channels whose delivery count is remembered, at most (then forgotten at once).
const CACHE_MAX: usize = 4096;

/// What the process's subscriber connections are subscribed to on the server.
#[derive(Default)]
struct Interest {
    /// Channel -> subscriber connections subscribed to it.
    channels: HashMap<String, u64>,
    /// Pattern -> subscriber connections subscribed to it.
    patterns: HashMap<String, u64>,
    /// Deliveries per published channel, from the two maps; emptied when they change.
    cache: HashMap<String, u64>,
}

impl Interest {
    fn deliveries(&mut self, channel: &str) -> u64 {
        if let Some(n) = self.cache.get(channel) {
            return *n;
        }
        let n = self.channels.get(channel).copied().unwrap_or(0)
            + self
                .patterns
                .iter()
                .filter(|(p, _)| crate::glob::matches_pattern(p, channel))
                .map(|(_, n)| *n)
                .sum::<u64>();
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(channel.to_string(), n);
        n
    }

    fn change(&mut self, key: &Key, add: bool) {
        let (map, name) = match key {
            Key::Channel(c) => (&mut self.channels, c),
            Key::Pattern(p) => (&mut self.patterns, p),
        };
        if add {
            *map.entry(name.clone()).or_insert(0) += 1;
        } else if let Some(n) = map.get_mut(name) {
            *n -= 1;
            if *n == 0 {
                map.remove(name);
            }
        }
        self.cache.clear();
    }
}

/// One Redis address's account of what the process's subscribers are owed (module docs).
pub(crate) struct Backlog {
    /// Bytes published to the process's subscriber connections and not yet received by them.
    owed: AtomicU64,
    /// Every byte the subscriber connections received (only grows): progress, for [`STALL`].
    received: AtomicU64,
    /// Keys subscribed, over every subscriber connection of the account (0: nothing is owed).
    keys: AtomicUsize,
    interest: Mutex<Interest>,
    /// A publisher waits; the subscribers wake it once the account is below [`RESUME_BELOW`].
    waiting: AtomicBool,
    resumed: Notify,
    /// `received` when a wait last gave up (`u64::MAX`: none): until the subscribers read again,
    /// no publisher waits on this account.
    stuck_at: AtomicU64,
}

/// The accounts of the process, by Redis address; an account lives while a client holds it.
static ACCOUNTS: Mutex<Vec<(String, Weak<Backlog>)>> = Mutex::new(Vec::new());

impl Backlog {
    fn new() -> Backlog {
        Backlog {
            owed: AtomicU64::new(0),
            received: AtomicU64::new(0),
            keys: AtomicUsize::new(0),
            interest: Mutex::new(Interest::default()),
            waiting: AtomicBool::new(false),
            resumed: Notify::new(),
            stuck_at: AtomicU64::new(u64::MAX),
        }
    }

    /// The account of the Redis server (or deployment) at `addr`, shared by every client of the
    /// process configured with that address.
    pub(super) fn for_address(addr: &str) -> Arc<Backlog> {
        let mut all = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|(_, w)| w.strong_count() > 0);
        if let Some(b) = all
            .iter()
            .find(|(a, _)| a == addr)
            .and_then(|(_, w)| w.upgrade())
        {
            return b;
        }
        let b = Arc::new(Backlog::new());
        all.push((addr.to_string(), Arc::downgrade(&b)));
        b
    }

    /// A PUBLISH of `bytes` payload bytes to `channel` is about to be written.
    pub(super) fn published(&self, channel: &str, bytes: usize) {
        if self.keys.load(Acquire) == 0 {
            return;
        }
        let n = self
            .interest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .deliveries(channel);
        if n > 0 {
            self.owed.fetch_add(n * bytes as u64, AcqRel);
        }
    }

    /// A subscriber connection received a message of `bytes` payload bytes.
    pub(super) fn received(&self, bytes: usize) {
        let bytes = bytes as u64;
        self.received.fetch_add(bytes, AcqRel);
        // SeqCst with the waiter's store of `waiting` and load of `owed`: one of the two sees
        // the other, so a wait never misses its wake-up.
        let before = self
            .owed
            .fetch_update(SeqCst, SeqCst, |o| Some(o.saturating_sub(bytes)))
            .unwrap_or(0);
        if before.saturating_sub(bytes) < RESUME_BELOW && self.waiting.load(SeqCst) {
            self.wake();
        }
    }

    fn wake(&self) {
        if self.waiting.swap(false, AcqRel) {
            self.resumed.notify_waiters();
        }
    }

    /// Whether a publisher must wait before it writes more.
    pub(super) fn ahead(&self) -> bool {
        self.owed.load(Acquire) > AHEAD_LIMIT
            && self.stuck_at.load(Acquire) != self.received.load(Acquire)
    }

    /// Resolves once the subscribers are owed less than [`RESUME_BELOW`], or once they read
    /// nothing for [`STALL`] (then the account is cleared and no publisher waits on it again
    /// until they read).
    pub(super) async fn wait(&self) {
        loop {
            let resumed = self.resumed.notified();
            tokio::pin!(resumed);
            resumed.as_mut().enable();
            self.waiting.store(true, SeqCst);
            let stuck = self.stuck_at.load(Acquire) == self.received.load(Acquire);
            if stuck || self.owed.load(SeqCst) < RESUME_BELOW {
                return;
            }
            let before = self.received.load(Acquire);
            if tokio::time::timeout(STALL, resumed).await.is_ok() {
                continue;
            }
            if self.received.load(Acquire) == before {
                self.stuck_at.store(before, Release);
                self.owed.store(0, Release);
                return;
            }
        }
    }

    /// A subscriber connection subscribed to (`add`) or unsubscribed from these keys.
    pub(super) fn change<'a>(&self, keys: impl IntoIterator<Item = &'a Key>, add: bool) {
        let mut interest = self.interest.lock().unwrap_or_else(|p| p.into_inner());
        for k in keys {
            interest.change(k, add);
            if add {
                self.keys.fetch_add(1, AcqRel);
            } else {
                self.keys.fetch_sub(1, AcqRel);
            }
        }
    }

    /// A subscriber connection holding these keys is gone, with whatever it was owed.
    pub(super) fn lost<'a>(&self, keys: impl IntoIterator<Item = &'a Key>) {
        self.change(keys, false);
        self.owed.store(0, Release);
        self.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(c: &str) -> Key {
        Key::Channel(c.into())
    }

    fn pat(p: &str) -> Key {
        Key::Pattern(p.into())
    }

    #[test]
    fn a_publish_is_owed_once_per_matching_subscription() {
        let b = Backlog::new();
        b.published("orders", 100);
        assert_eq!(b.owed.load(Relaxed), 0, "nothing subscribed: nothing owed");
        b.change(&[ch("orders"), pat("ord*")], true);
        b.change(&[ch("orders")], true);
        b.published("orders", 100);
        assert_eq!(
            b.owed.load(Relaxed),
            300,
            "two channel subscriptions and a pattern"
        );
        b.published("users", 100);
        assert_eq!(b.owed.load(Relaxed), 300);
        b.change(&[ch("orders")], false);
        b.published("orders", 10);
        assert_eq!(b.owed.load(Relaxed), 320, "the cache follows the change");
        b.received(1_000);
        assert_eq!(b.owed.load(Relaxed), 0, "never below nothing");
    }

    #[test]
    fn a_publisher_is_ahead_past_the_limit_until_the_subscribers_read() {
        let b = Backlog::new();
        b.change(&[ch("c")], true);
        b.published("c", AHEAD_LIMIT as usize + 1);
        assert!(b.ahead());
        b.received(2);
        assert!(!b.ahead());
        b.published("c", 10);
        b.lost(&[ch("c")]);
        assert!(!b.ahead());
        assert_eq!(
            b.owed.load(Relaxed),
            0,
            "a lost connection clears the account"
        );
        assert_eq!(b.keys.load(Relaxed), 0);
    }

    #[tokio::test]
    async fn a_wait_ends_when_the_subscribers_catch_up() {
        let b = Arc::new(Backlog::new());
        b.change(&[ch("c")], true);
        b.published("c", 2 * AHEAD_LIMIT as usize);
        let reader = b.clone();
        let read = tokio::spawn(async move {
            for _ in 0..64 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                reader.received((AHEAD_LIMIT / 32) as usize);
            }
        });
        b.wait().await;
        assert!(b.owed.load(Relaxed) < RESUME_BELOW);
        assert_eq!(
            b.stuck_at.load(Relaxed),
            u64::MAX,
            "not given up: they read"
        );
        read.await.unwrap();
    }

    #[tokio::test]
    async fn a_wait_gives_up_on_subscribers_that_read_nothing_until_they_read() {
        let b = Backlog::new();
        b.change(&[pat("*")], true);
        b.published("c", 2 * AHEAD_LIMIT as usize);
        b.wait().await;
        assert_eq!(b.owed.load(Relaxed), 0, "cleared");
        b.published("c", 2 * AHEAD_LIMIT as usize);
        assert!(
            !b.ahead(),
            "no more waiting on subscribers that read nothing"
        );
        b.received(1);
        assert!(b.ahead(), "they read again: the bound holds again");
    }

    #[test]
    fn clients_with_the_same_address_share_an_account() {
        let a = Backlog::for_address("redis://backlog-test:1");
        let b = Backlog::for_address("redis://backlog-test:1");
        let c = Backlog::for_address("redis://backlog-test:2");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
