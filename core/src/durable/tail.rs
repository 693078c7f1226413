//! Reading a type's stream as an observer: no consumer group is created, joined or read
//! through, so real workers' pending entries, delivery counts and `last-delivered-id` never
//! change. `XRANGE` catches up from the start point, then `XREAD BLOCK` waits for new entries
//! after the last one seen, on a connection of its own (a blocking read would hold up every
//! other command on a shared one).

use std::time::Duration;

use redis::Value;

use super::{stream_key, value};
use crate::client::EventBusClient;
use crate::error::{Error, ErrorKind, Result};
use crate::event::Delivery;
use crate::transport::redis::streams::Streams;

/// Where a [`StreamTail`] starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailFrom {
    /// Every entry the stream still holds.
    Start,
    /// Only entries added after the tail was opened.
    End,
    /// Entries from this stream id on (`<ms>-<seq>`, or `<ms>` for `<ms>-0`), inclusive.
    Id(String),
    /// Entries added at or after this time (ms since the epoch): stream ids are times.
    TimeMs(u64),
}

/// One entry of a type's stream.
#[derive(Debug)]
pub struct TailEntry {
    /// The entry's id in the stream (`1733300000000-0`).
    pub stream_id: String,
    /// The event decoded as a durable subscription would decode it (its channel is the event
    /// type), or why it could not be (an entry without an `event` field, invalid JSON).
    pub event: Result<Delivery>,
}

/// A reader of one type's stream that belongs to no group. Made by
/// [`EventBusClient::tail_stream`].
pub struct StreamTail {
    streams: Streams,
    key: String,
    event_type: String,
    /// The next read returns entries after this id.
    after: (u64, u64),
    catching_up: bool,
    block: Duration,
}

/// How long a read may keep failing for a lost connection before the error is returned.
const PATIENCE: Duration = Duration::from_secs(30);

/// Parse a stream id: `<ms>-<seq>` or `<ms>` (`<ms>-0`).
pub fn parse_stream_id(s: &str) -> Option<(u64, u64)> {
    let (ms, seq) = match s.split_once('-') {
        Some((ms, seq)) => (ms, seq),
        None => (s, "0"),
    };
    if ms.is_empty() || seq.is_empty() {
        return None;
    }
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// The greatest id before `(ms, seq)` (`0-0` for the first).
fn before(id: (u64, u64)) -> (u64, u64) {
    match id {
        (0, 0) => (0, 0),
        (ms, 0) => (ms - 1, u64::MAX),
        (ms, seq) => (ms, seq - 1),
    }
}

fn fmt_id(id: (u64, u64)) -> String {
    format!("{}-{}", id.0, id.1)
}

impl StreamTail {
    /// The stream's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The next entries, at most `max`, oldest first. While catching up they come from
    /// `XRANGE` without waiting; once caught up a call waits up to the block time for new
    /// entries and may return an empty batch (call again). A lost connection is retried for
    /// up to 30 s (reads are safe to repeat); other errors are returned.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<TailEntry>> {
        let max = max.max(1);
        if self.catching_up {
            let mut cmd = redis::cmd("XRANGE");
            cmd.arg(&self.key)
                .arg(format!("({}", fmt_id(self.after)))
                .arg("+")
                .arg("COUNT")
                .arg(max);
            let v: Value = self
                .streams
                .query_patiently(&self.key, &cmd, "XRANGE", PATIENCE)
                .await?;
            let entries = value::entries(&v);
            if entries.len() < max {
                self.catching_up = false;
            }
            if !entries.is_empty() {
                return Ok(self.take(entries));
            }
        }
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(max)
            .arg("BLOCK")
            .arg(self.block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(fmt_id(self.after));
        let wait = self.block + Duration::from_secs(5);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut delay = Duration::from_millis(100);
        loop {
            match self
                .streams
                .query::<Value>(&self.key, &cmd, "XREAD", wait)
                .await
            {
                Ok(v) => return Ok(self.take(value::read_reply(&v))),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::OutcomeUnknown | ErrorKind::Connection | ErrorKind::Timeout
                    ) && tokio::time::Instant::now() + delay < deadline =>
                {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn take(&mut self, entries: Vec<value::StreamEntry>) -> Vec<TailEntry> {
        let mut out = Vec::with_capacity(entries.len());
        for (id, fields) in entries {
            if let Some(parsed) = parse_stream_id(&id) {
                if parsed > self.after {
                    self.after = parsed;
                }
            }
            let text =
                fields.and_then(|f| f.into_iter().find(|(k, _)| k == "event").map(|(_, v)| v));
            let event = match text {
                Some(t) => Delivery::decode(&self.event_type, None, t.as_bytes()),
                None => Err(Error::validation(format!(
                    "stream entry {id} has no `event` field"
                ))),
            };
            out.push(TailEntry {
                stream_id: id,
                event,
            });
        }
        out
    }
}

impl EventBusClient {
    /// Open a reader of `event_type`'s stream from `from`, outside any consumer group: it
    /// never creates a group, never claims or acknowledges, and leaves every group's pending
    /// entries and delivery counts as they are. Its blocking reads wait up to `block` each
    /// (at least 1 ms), on connections of their own. Needs a connected Redis client.
    pub async fn tail_stream(
        &self,
        event_type: &str,
        from: TailFrom,
        block: Duration,
    ) -> Result<StreamTail> {
        if event_type.is_empty() {
            return Err(Error::validation("the event type cannot be empty"));
        }
        if crate::glob::is_pattern(event_type) {
            return Err(Error::validation(format!(
                "a stream is read by exact event type, not a pattern: \"{event_type}\" is a glob"
            )));
        }
        let Some(t) = self.transport() else {
            return Err(Error::not_connected());
        };
        let streams = t.streams()?;
        let key = stream_key(&self.settings().key_prefix, event_type);
        let (after, catching_up) = match &from {
            TailFrom::Start => ((0, 0), true),
            TailFrom::TimeMs(ms) => (before((*ms, 0)), true),
            TailFrom::Id(s) => {
                let id = parse_stream_id(s).ok_or_else(|| {
                    Error::validation(format!("\"{s}\" is not a stream id (<ms>-<seq> or <ms>)"))
                })?;
                (before(id), true)
            }
            TailFrom::End => {
                let mut cmd = redis::cmd("XREVRANGE");
                cmd.arg(&key).arg("+").arg("-").arg("COUNT").arg(1);
                let v: Value = streams
                    .query_patiently(&key, &cmd, "XREVRANGE", PATIENCE)
                    .await?;
                let last = value::entries(&v)
                    .first()
                    .and_then(|(id, _)| parse_stream_id(id))
                    .unwrap_or((0, 0));
                (last, false)
            }
        };
        Ok(StreamTail {
            streams,
            key,
            event_type: event_type.to_string(),
            after,
            catching_up,
            block: block.max(Duration::from_millis(1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{before, parse_stream_id};

    #[test]
    fn ids() {
        assert_eq!(parse_stream_id("1733300000000-3"), Some((1733300000000, 3)));
        assert_eq!(parse_stream_id("17"), Some((17, 0)));
        assert_eq!(parse_stream_id("17-"), None);
        assert_eq!(parse_stream_id("x-1"), None);
        assert_eq!(parse_stream_id(""), None);
        assert_eq!(before((5, 0)), (4, u64::MAX));
        assert_eq!(before((5, 2)), (5, 1));
        assert_eq!(before((0, 0)), (0, 0));
    }
}
