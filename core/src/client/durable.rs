//! The client's durable-delivery calls: `subscribe_target` (a pattern, or a list of event
//! types read durably), and the dead-letter calls. The work lives in `crate::durable`.

use std::sync::Arc;

use super::EventBusClient;
use crate::durable::reader::{self, DurableSub};
use crate::durable::{dead, stream_key, DeadLetter};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{OutgoingEvent, PublishOptions};
use crate::options::SubscriptionTarget;
use crate::subscription::{Handler, SubscriptionInfo, SubscriptionOptions};
use crate::transport::redis::streams::Streams;

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
        let st = self.shared_streams()?;
        let prefix = &self.inner.settings.key_prefix;
        dead::list(&st, prefix, event_type, group, count).await
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
        let st = self.shared_streams()?;
        let s = &self.inner.settings;
        dead::replay(
            &st,
            &s.key_prefix,
            event_type,
            group,
            count,
            s.durable_max_len,
        )
        .await
    }

    /// Delete `group`'s dead letters of `event_type`. Returns how many were deleted.
    pub async fn purge_dead_letters(&self, event_type: &str, group: &str) -> Result<u64> {
        let st = self.shared_streams()?;
        dead::purge(&st, &self.inner.settings.key_prefix, event_type, group).await
    }

    /// The client's stream connections for publishes and dead-letter calls (made on first
    /// use, per connection of the client).
    fn shared_streams(&self) -> Result<Arc<Streams>> {
        let Some(t) = self.transport() else {
            return Err(Error::not_connected());
        };
        let mut g = self.inner.streams.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = g.as_ref() {
            return Ok(s.clone());
        }
        let s = Arc::new(t.streams()?);
        *g = Some(s.clone());
        Ok(s)
    }

    /// A persistent publish: append the envelope to its type's stream (`MAXLEN ~` the
    /// configured bound; with `ttl`, entries older than it trimmed too). On the memory
    /// transport there is no stream: nothing to do.
    pub(super) async fn append_to_stream(
        &self,
        ev: &mut OutgoingEvent,
        opts: &PublishOptions,
    ) -> Result<()> {
        let Some(t) = self.transport() else {
            return Err(Error::not_connected());
        };
        if t.is_memory() {
            return Ok(());
        }
        let st = self.shared_streams()?;
        let s = &self.inner.settings;
        let key = stream_key(&s.key_prefix, &ev.event_type);
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&key)
            .arg("MAXLEN")
            .arg("~")
            .arg(s.durable_max_len)
            .arg("*")
            .arg("event")
            .arg(&ev.payload);
        // Like a plain publish in the offline queue: while Redis cannot be reached it waits
        // (up to the publish timeout) instead of failing at once.
        let deadline = tokio::time::Instant::now() + s.publish_timeout;
        st.query_until::<redis::Value>(&key, &cmd, "XADD", deadline)
            .await?;
        let (replicas, wait) = s.durable_wait;
        if replicas > 0 {
            let mut w = redis::cmd("WAIT");
            w.arg(replicas).arg(wait.as_millis() as u64);
            let got: i64 = st
                .query(&key, &w, "WAIT", wait + s.publish_timeout)
                .await
                .map_err(|e| {
                    Error::new(
                        ErrorKind::OutcomeUnknown,
                        format!("event stored on the master, but waiting for replicas failed: {e}"),
                    )
                })?;
            if got < i64::from(replicas) {
                return Err(Error::new(
                    ErrorKind::OutcomeUnknown,
                    format!(
                        "event stored on the master, but only {got} of {replicas} replicas \
                         (durable.waitReplicas) had it within {} ms: a failover now could lose it",
                        wait.as_millis()
                    ),
                ));
            }
        }
        ev.stored = true;
        self.inner
            .stats
            .persistent_published
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(ttl) = opts.ttl {
            let min = crate::stats::now_ms().saturating_sub(ttl);
            let mut trim = redis::cmd("XTRIM");
            trim.arg(&key).arg("MINID").arg("~").arg(min);
            if let Err(e) = st
                .query::<redis::Value>(&key, &trim, "XTRIM", s.publish_timeout)
                .await
            {
                self.inner.logger.warn(
                    "Trimming a stream by ttl failed (the event was stored)",
                    &[("stream", key.clone()), ("error", e.to_string())],
                );
            }
        }
        Ok(())
    }

    /// Every durable subscription.
    pub(super) fn durable_subs(&self) -> Vec<Arc<DurableSub>> {
        self.inner
            .durable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Remove durable subscription `id` (stop reading, let what is in hand finish).
    pub(super) async fn unsubscribe_durable(&self, id: &str) -> Option<bool> {
        let sub = self
            .inner
            .durable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)?;
        sub.stop(Some(self.inner.settings.disconnect_timeout)).await;
        Some(true)
    }

    /// Stop every durable subscription (disconnect).
    pub(super) async fn stop_durable(&self, drain: Option<std::time::Duration>) {
        let subs: Vec<Arc<DurableSub>> = self
            .inner
            .durable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, s)| s)
            .collect();
        for s in subs {
            s.stop(drain).await;
        }
        *self.inner.streams.lock().unwrap_or_else(|p| p.into_inner()) = None;
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
        let s = &self.inner.settings;
        let dp = durable.resolve(&s.service_name)?;
        let policy =
            crate::options::Policy::new(&options, s.default_max_retries, s.default_retry_delay)?;
        if t.is_memory() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "durable subscriptions need Redis",
            ));
        }
        self.warn_unknown_keys("subscription option", &options.unknown_keys);
        let info = SubscriptionInfo {
            id: crate::event::new_id(),
            pattern: target.display(),
            options,
            created_at: crate::event::now_iso(),
            active: true,
        };
        let t2 = t.clone();
        let sub = reader::start(reader::Start {
            info,
            types,
            dp,
            policy,
            handler,
            ctx: self.inner.registry.ctx.clone(),
            emitter: self.inner.emitter.clone(),
            prefix: s.key_prefix.clone(),
            max_len: s.durable_max_len,
            streams: Box::new(move || t2.streams()),
        })
        .await?;
        self.inner
            .stats
            .total_subscriptions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.logger.debug(
            &format!("Durable subscription to: {}", sub.info.pattern),
            &[
                ("subscription", sub.info.id.clone()),
                ("group", sub.policy.group.clone()),
                ("consumer", sub.policy.consumer.clone()),
            ],
        );
        let info = sub.info.clone();
        self.inner
            .durable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(info.id.clone(), sub);
        Ok(info)
    }
}
