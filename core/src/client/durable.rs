//! The client's durable-delivery calls: `subscribe_target` (a pattern, or a list of event
//! types read durably), and the dead-letter calls. The work lives in `crate::durable`.

use std::sync::Arc;

use super::EventBusClient;
use crate::durable::DeadLetter;
use crate::error::{Error, ErrorKind, Result};
use crate::options::SubscriptionTarget;
use crate::subscription::{Handler, SubscriptionInfo, SubscriptionOptions};

/// The refusal of a list of types without `durable`.
pub const TYPES_NEED_DURABLE: &str =
    "a list of event types needs durable; subscribe once per pattern otherwise";

impl EventBusClient {
    /// `subscribe(target, handler, options)`: a [`SubscriptionTarget::Pattern`] without
    /// `durable` is [`subscribe`](Self::subscribe); with `options.durable` the target names
    /// exact event types (one, or a list) whose streams are read as a member of the consumer
    /// group `durable.group`.
    pub async fn subscribe_target(
        &self,
        target: SubscriptionTarget,
        handler: Arc<dyn Handler>,
        options: SubscriptionOptions,
    ) -> Result<SubscriptionInfo> {
        if options.durable.is_none() {
            return match target {
                SubscriptionTarget::Pattern(p) => self.subscribe(&p, handler, options).await,
                SubscriptionTarget::Types(_) => Err(Error::validation(TYPES_NEED_DURABLE)),
            };
        }
        self.subscribe_durable(target, handler, options).await
    }

    /// Check a durable subscription's target: exact, non-empty event types.
    pub(crate) fn durable_types(target: &SubscriptionTarget) -> Result<Vec<String>> {
        let types = target.types();
        if types.is_empty() {
            return Err(Error::validation(
                "a durable subscription needs at least one event type",
            ));
        }
        let mut out: Vec<String> = Vec::with_capacity(types.len());
        for t in types {
            if t.is_empty() {
                return Err(Error::validation("Subscription pattern cannot be empty"));
            }
            if crate::glob::is_pattern(&t) {
                return Err(Error::validation(format!(
                    "durable subscriptions take exact event types, not patterns: \"{t}\" is a \
                     glob, but a stream is a key, not a channel pattern; list the types instead"
                )));
            }
            if !out.contains(&t) {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// The dead letters of `event_type` for `group`, oldest first (at most `count`, default
    /// 100).
    pub async fn dead_letters(
        &self,
        event_type: &str,
        group: &str,
        count: Option<usize>,
    ) -> Result<Vec<DeadLetter>> {
        let _ = (event_type, group, count);
        Err(Error::new(
            ErrorKind::Unsupported,
            "dead letters are not implemented yet",
        ))
    }

    /// [`dead_letters`](Self::dead_letters) as a JSON array of [`DeadLetter::to_json`]
    /// objects, for faces that pass JSON through.
    pub async fn dead_letters_json(
        &self,
        event_type: &str,
        group: &str,
        count: Option<usize>,
    ) -> Result<String> {
        let list = self.dead_letters(event_type, group, count).await?;
        serde_json::to_string(&list)
            .map_err(|e| Error::new(ErrorKind::Internal, format!("dead letters to JSON: {e}")))
    }

    /// Put `group`'s dead letters of `event_type` (oldest first, at most `count`, default
    /// all) back on the type's stream as new entries and remove them from the dead-letter
    /// stream. Returns how many were replayed.
    pub async fn replay_dead_letters(
        &self,
        event_type: &str,
        group: &str,
        count: Option<usize>,
    ) -> Result<u64> {
        let _ = (event_type, group, count);
        Err(Error::new(
            ErrorKind::Unsupported,
            "dead letters are not implemented yet",
        ))
    }

    /// Delete `group`'s dead letters of `event_type`. Returns how many were deleted.
    pub async fn purge_dead_letters(&self, event_type: &str, group: &str) -> Result<u64> {
        let _ = (event_type, group);
        Err(Error::new(
            ErrorKind::Unsupported,
            "dead letters are not implemented yet",
        ))
    }

    async fn subscribe_durable(
        &self,
        target: SubscriptionTarget,
        handler: Arc<dyn Handler>,
        options: SubscriptionOptions,
    ) -> Result<SubscriptionInfo> {
        let Some(t) = self.transport() else {
            return Err(Error::not_connected());
        };
        let types = Self::durable_types(&target)?;
        let durable = options.durable.clone().unwrap_or_default();
        let _policy = durable.resolve(&self.inner.settings.service_name)?;
        if t.is_memory() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "durable subscriptions need Redis",
            ));
        }
        let _ = (types, handler);
        Err(Error::new(
            ErrorKind::Unsupported,
            "durable subscriptions are not implemented yet",
        ))
    }
}
