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
    /// Accepted; no effect until durable delivery exists.
    #[serde(default)]
    pub priority: Option<Value>,
    /// Accepted; no effect until durable delivery exists.
    #[serde(default)]
    pub ttl: Option<Value>,
    /// Accepted; no effect until durable delivery exists.
    #[serde(default)]
    pub persistent: Option<Value>,
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
        Ok(o)
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
