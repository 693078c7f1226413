//! Publish and subscription options: what a caller may pass, and the one place that
//! interprets it. Every face hands options over as JSON (or builds these structs in Rust), so
//! the rules (types, ranges, defaults) and their messages live here once.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::filter::SubscriptionFilter;
use crate::input;

/// Options of a publish, the TS `PublishOptions`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishOptions {
    /// Keys of the JSON form that are not options (a typo such as `tarceId`): ignored, and the
    /// client logs a warning naming them.
    #[serde(skip)]
    pub unknown_keys: Vec<String>,
    /// Trace id; a new UUID v4 when absent.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// Correlation id, copied into metadata.
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// User id: copied into metadata and, without a room, selects channel `user:{userId}`.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Room: selects channel `room:{room}` (wins over user and broadcast).
    #[serde(default)]
    pub room: Option<String>,
    /// Selects channel `broadcast` when neither room nor user is given.
    #[serde(default)]
    pub broadcast: Option<bool>,
    /// Extra metadata fields, written after `version`.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    /// Accepted; no effect.
    #[serde(default)]
    pub priority: Option<Value>,
    /// Durable publishes only: entries older than this many ms (a positive number) may be
    /// trimmed from the type's stream (`XADD ... MINID ~ <now - ttl>`).
    #[serde(default, deserialize_with = "input::millis::deserialize")]
    pub ttl: Option<u64>,
    /// Also append the event to its type's stream (`events:{<type>}`), where durable
    /// subscriptions read it; it is still published on its channel as usual.
    #[serde(default)]
    pub persistent: Option<bool>,
}

impl PublishOptions {
    /// Parse options from JSON (`null`/empty string means none). A value of the wrong type is
    /// a `Validation` error naming the key (`Invalid publish options: traceId must be a string
    /// (got 5)`); text that is not JSON is an `InvalidArgument` error. `null` fields count as
    /// absent.
    pub fn from_json(json: &str) -> Result<PublishOptions> {
        let t = json.trim();
        if t.is_empty() || t == "null" {
            return Ok(PublishOptions::default());
        }
        let (mut o, unknown): (PublishOptions, _) =
            input::parse(t, "publish options", ErrorKind::Validation)?;
        o.unknown_keys = unknown;
        o.check()?;
        Ok(o)
    }

    /// The rules serde cannot say: `ttl` is a positive number of ms.
    pub fn check(&self) -> Result<()> {
        if self.ttl == Some(0) {
            return Err(Error::validation(
                "Invalid publish options: ttl must be a positive number of milliseconds (got 0)",
            ));
        }
        Ok(())
    }

    /// True when the event also goes to its type's stream.
    pub fn is_persistent(&self) -> bool {
        self.persistent == Some(true)
    }
}

/// What a subscription listens to: a channel pattern (pub/sub), or a list of exact event
/// types (durable subscriptions only: one stream per type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionTarget {
    /// A channel name or glob pattern, as `subscribe(pattern, ...)` takes.
    Pattern(String),
    /// Exact event types; needs `durable`.
    Types(Vec<String>),
}

impl SubscriptionTarget {
    /// A string that parses as a JSON array of strings is [`SubscriptionTarget::Types`]; any
    /// other string is a [`SubscriptionTarget::Pattern`] (so a glob such as `[ab]*`, which is
    /// not a JSON array of strings, stays a pattern).
    pub fn from_json_or_pattern(s: &str) -> SubscriptionTarget {
        if s.trim_start().starts_with('[') {
            if let Ok(types) = serde_json::from_str::<Vec<String>>(s) {
                return SubscriptionTarget::Types(types);
            }
        }
        SubscriptionTarget::Pattern(s.to_string())
    }

    /// The event types a durable subscription reads: the pattern itself (an exact type) or
    /// the list.
    pub fn types(&self) -> Vec<String> {
        match self {
            SubscriptionTarget::Pattern(p) => vec![p.clone()],
            SubscriptionTarget::Types(t) => t.clone(),
        }
    }

    /// How the target shows in `SubscriptionInfo.pattern` and logs: the pattern, or the
    /// list as a JSON array.
    pub fn display(&self) -> String {
        match self {
            SubscriptionTarget::Pattern(p) => p.clone(),
            SubscriptionTarget::Types(t) => serde_json::to_string(t).unwrap_or_default(),
        }
    }
}

impl From<&str> for SubscriptionTarget {
    fn from(s: &str) -> Self {
        SubscriptionTarget::Pattern(s.to_string())
    }
}

/// Where a new consumer group starts reading its streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    /// Only entries added after the group was created (`$`).
    #[default]
    New,
    /// Everything the stream still holds (`0`).
    All,
}

/// `durable` in subscription options: read the event types' streams as a member of a Redis
/// consumer group (at-least-once, survives restarts). See `docs/durable.md`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DurableOptions {
    /// Consumer group name (required): every member of a group shares its events; each group
    /// gets every event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Consumer name within the group (default `<serviceName>-<hostname>`). A restarted
    /// worker with the same name gets its own unacknowledged entries back first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    /// Deliveries (default 5, at least 1) after which a failing entry is dead-lettered.
    #[serde(
        default,
        deserialize_with = "input::whole",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_deliveries: Option<u32>,
    /// An entry pending longer than this (ms, default 30000) with another member is claimed.
    #[serde(
        default,
        deserialize_with = "input::millis::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_idle_time: Option<u64>,
    /// How often (ms, default 5000) idle pending entries are looked for.
    #[serde(
        default,
        deserialize_with = "input::millis::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub claim_interval: Option<u64>,
    /// `new` (default) or `all`: where a group created by this subscription starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_from: Option<StartFrom>,
    /// Entries per read (default 10, at least 1).
    #[serde(
        default,
        deserialize_with = "input::whole",
        skip_serializing_if = "Option::is_none"
    )]
    pub count: Option<usize>,
    /// Skip an event id this group already handled successfully (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent: Option<bool>,
    /// How long (ms, default 24 h) a handled event id is remembered for `idempotent`.
    #[serde(
        default,
        deserialize_with = "input::millis::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub idempotent_ttl: Option<u64>,
    /// How long one read waits for new entries (ms, default 2000).
    #[serde(
        default,
        deserialize_with = "input::millis::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub block: Option<u64>,
}

/// [`DurableOptions`] with every default applied and every rule checked.
#[derive(Debug, Clone)]
pub struct DurablePolicy {
    /// Consumer group.
    pub group: String,
    /// Consumer name.
    pub consumer: String,
    /// Deliveries before dead-lettering.
    pub max_deliveries: u32,
    /// Idle time before another member claims an entry.
    pub min_idle_time: Duration,
    /// Claim check interval.
    pub claim_interval: Duration,
    /// Where a new group starts.
    pub start_from: StartFrom,
    /// Entries per read.
    pub count: usize,
    /// Skip already handled event ids.
    pub idempotent: bool,
    /// How long handled ids are remembered.
    pub idempotent_ttl: Duration,
    /// Read block time.
    pub block: Duration,
}

/// This machine's host name (for default consumer names), `localhost` when unknown.
pub fn host_name() -> String {
    let from_file = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    from_file
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("COMPUTERNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_string())
}

impl DurableOptions {
    /// Apply defaults and check ranges. `service_name` makes the default consumer name.
    pub fn resolve(&self, service_name: &str) -> Result<DurablePolicy> {
        let bad = |m: String| {
            Err(Error::validation(format!(
                "Invalid subscription options: {m}"
            )))
        };
        let group = match self.group.as_deref().map(str::trim) {
            None => return bad("durable.group is required (a consumer group name)".into()),
            Some("") => return bad("durable.group must not be empty".into()),
            Some(_) => self.group.clone().unwrap_or_default(),
        };
        let consumer = match self.consumer.as_deref() {
            Some(c) if c.trim().is_empty() => {
                return bad("durable.consumer must not be empty".into())
            }
            Some(c) => c.to_string(),
            None => format!("{service_name}-{}", host_name()),
        };
        let max_deliveries = self.max_deliveries.unwrap_or(5);
        if max_deliveries == 0 {
            return bad("durable.maxDeliveries must be at least 1 (got 0)".into());
        }
        let count = self.count.unwrap_or(10);
        if count == 0 {
            return bad("durable.count must be at least 1 (got 0)".into());
        }
        let claim_interval = self.claim_interval.unwrap_or(5_000);
        if claim_interval == 0 {
            return bad("durable.claimInterval must be at least 1 ms (got 0)".into());
        }
        let idempotent_ttl = self.idempotent_ttl.unwrap_or(24 * 3_600_000);
        if idempotent_ttl == 0 {
            return bad("durable.idempotentTtl must be at least 1 ms (got 0)".into());
        }
        Ok(DurablePolicy {
            group,
            consumer,
            max_deliveries,
            min_idle_time: Duration::from_millis(self.min_idle_time.unwrap_or(30_000)),
            claim_interval: Duration::from_millis(claim_interval),
            start_from: self.start_from.unwrap_or_default(),
            count,
            idempotent: self.idempotent.unwrap_or(false),
            idempotent_ttl: Duration::from_millis(idempotent_ttl),
            block: Duration::from_millis(self.block.unwrap_or(2_000)),
        })
    }
}

/// `SubscriptionOptions`: the TS fields plus `filter`, `concurrency`, `maxPending`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionOptions {
    /// Handler timeout in ms (default 30000; 0 also means the default). A fraction of a ms is
    /// rounded up.
    #[serde(
        default,
        deserialize_with = "input::millis::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<u64>,
    /// Retry a failed or timed-out handler (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on_error: Option<bool>,
    /// Retries after the first attempt (default 3, or `performance.maxRetries`).
    #[serde(
        default,
        deserialize_with = "input::whole",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_retries: Option<u32>,
    /// First retry delay in ms (default 1000, or `performance.retryDelay`), doubled each retry.
    #[serde(
        default,
        deserialize_with = "input::millis::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_delay: Option<u64>,
    /// Retry delay cap in ms (default 10000).
    #[serde(
        default,
        deserialize_with = "input::millis::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_retry_delay: Option<u64>,
    /// Only events passing this filter reach the handler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<SubscriptionFilter>,
    /// Handler runs in flight at once (default 1: strictly in order).
    #[serde(
        default,
        deserialize_with = "input::whole",
        skip_serializing_if = "Option::is_none"
    )]
    pub concurrency: Option<usize>,
    /// Queue bound; past it events are dropped and counted (default 10000).
    #[serde(
        default,
        deserialize_with = "input::whole",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_pending: Option<usize>,
    /// Accepted (TS field), no effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Value>,
    /// Free-form (TS field); a `filter` inside it is honoured as the TS hub protocol sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Read from Redis Streams as a member of a consumer group (see [`DurableOptions`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durable: Option<DurableOptions>,
    /// Keys of the JSON form that are not options: ignored, and the client logs a warning
    /// naming them.
    #[serde(skip)]
    pub unknown_keys: Vec<String>,
}

impl SubscriptionOptions {
    /// Parse from JSON (`null`/empty = defaults). Wrong types and ranges are `Validation`
    /// errors naming the key; text that is not JSON is an `InvalidArgument` error.
    pub fn from_json(json: &str) -> Result<SubscriptionOptions> {
        let t = json.trim();
        if t.is_empty() || t == "null" {
            return Ok(SubscriptionOptions::default());
        }
        let (mut o, unknown): (SubscriptionOptions, _) =
            input::parse(t, "subscription options", ErrorKind::Validation)?;
        o.unknown_keys = unknown;
        Ok(o)
    }

    fn effective_filter(&self) -> Result<Option<SubscriptionFilter>> {
        if let Some(f) = &self.filter {
            return Ok(Some(f.clone()));
        }
        match self.metadata.as_ref().and_then(|m| m.get("filter")) {
            Some(v) if !v.is_null() => serde_path_to_error::deserialize(v.clone())
                .map(Some)
                .map_err(|e| {
                    let path = match e.path().to_string().as_str() {
                        "." => "metadata.filter".to_string(),
                        p => format!("metadata.filter.{p}"),
                    };
                    Error::new(
                        ErrorKind::Validation,
                        input::sentence("subscription options", &path, e.inner()),
                    )
                }),
            _ => Ok(None),
        }
    }
}

/// Resolved per-subscription policy.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub timeout: Duration,
    pub retry_on_error: bool,
    pub max_retries: u32,
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
    pub filter: Option<SubscriptionFilter>,
    pub concurrency: usize,
    pub max_pending: usize,
}

impl Policy {
    pub(crate) fn new(
        o: &SubscriptionOptions,
        default_retries: u32,
        default_delay: Duration,
    ) -> Result<Policy> {
        let filter = o.effective_filter()?;
        if let Some(f) = &filter {
            f.check()?;
        }
        let concurrency = o.concurrency.unwrap_or(1);
        let max_pending = o.max_pending.unwrap_or(10_000);
        if concurrency == 0 {
            return Err(Error::validation(
                "Invalid subscription options: concurrency must be at least 1 (got 0)",
            ));
        }
        if max_pending == 0 {
            return Err(Error::validation(
                "Invalid subscription options: maxPending must be at least 1 (got 0)",
            ));
        }
        Ok(Policy {
            timeout: Duration::from_millis(o.timeout.filter(|t| *t > 0).unwrap_or(30_000)),
            retry_on_error: o.retry_on_error.unwrap_or(false),
            max_retries: o.max_retries.unwrap_or(default_retries),
            retry_delay: o
                .retry_delay
                .map(Duration::from_millis)
                .unwrap_or(default_delay),
            max_retry_delay: Duration::from_millis(o.max_retry_delay.unwrap_or(10_000)),
            filter,
            concurrency,
            max_pending,
        })
    }
}
