//! `event-bus tail PATTERN...`: print the events of matching channels as they arrive, or with
//! `--stream`/`--since`, the entries of event types' streams, read outside any consumer group.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use event_bus::filter::SubscriptionFilter;
use event_bus::{Delivery, HandlerError, SubscriptionOptions, TailFrom};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::conn::ConnArgs;
use crate::{exit, CliError, CliResult};

#[derive(Args, Debug)]
pub struct TailArgs {
    /// Channel patterns (Redis globs: 'photo.*', 'user:*', 'broadcast'); with --stream, exact
    /// event types
    #[arg(required = true, value_name = "PATTERN")]
    pub patterns: Vec<String>,
    /// One wire-format JSON object per line (for jq) instead of the one-line summary
    #[arg(long)]
    pub json: bool,
    /// Stop after N events
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Only events whose FIELD (a dotted path into the wire-format event: type, source,
    /// data.photoId, metadata.room, ...; a name that is not id, type, data or metadata is a
    /// metadata field: source = metadata.source) is VALUE: the string VALUE, or the JSON number,
    /// boolean or null it spells. Repeatable: every filter must match
    #[arg(long, value_name = "FIELD=VALUE")]
    pub filter: Vec<String>,
    /// Read each TYPE's stream (what persistent publishes stored) without joining any
    /// consumer group: catch up on what it holds, then wait for new entries. Never creates a
    /// group and never changes a group's pending entries or delivery counts
    #[arg(long)]
    pub stream: bool,
    /// With --stream (implied): start at a stream ID (1733300000000-0), a time ago
    /// (90s, 15m, 2h, 1d), an RFC 3339 time (2026-12-06T21:00:00Z), or `now` (only new
    /// entries). Default: everything the stream holds
    #[arg(long, value_name = "ID|DURATION|RFC3339")]
    pub since: Option<String>,
}

/// Width of the data column of the one-line form.
const DATA_WIDTH: usize = 100;

/// The one-line form: `time type channel source data`.
pub fn summary(d: &Delivery) -> String {
    let m = d.metadata();
    let data = d.data_json();
    let short = if data.chars().count() > DATA_WIDTH {
        let cut: String = data.chars().take(DATA_WIDTH - 1).collect();
        format!("{cut}…")
    } else {
        data.to_string()
    };
    format!(
        "{} {} {} {} {}",
        m.timestamp.as_deref().unwrap_or("-"),
        d.event_type(),
        d.channel(),
        m.source.as_deref().unwrap_or("-"),
        short
    )
}

/// The `--json` form: the received message on one line.
pub fn json_line(d: &Delivery) -> String {
    let p = d.payload();
    if p.contains('\n') {
        serde_json::from_str::<serde_json::Value>(p)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| p.replace('\n', " "))
    } else {
        p.to_string()
    }
}

/// `--filter FIELD=VALUE`s as one subscription filter (all must match), the core's filter
/// semantics: `in [VALUE as a string, VALUE as JSON when it is a number, boolean or null]`.
pub fn filter_of(specs: &[String]) -> CliResult<Option<Value>> {
    if specs.is_empty() {
        return Ok(None);
    }
    let mut conditions = Vec::with_capacity(specs.len());
    for s in specs {
        let Some((field, value)) = s.split_once('=') else {
            return Err(CliError::new(
                exit::USAGE,
                format!("--filter {s}: expected FIELD=VALUE (e.g. data.photoId=p1)"),
            ));
        };
        if field.is_empty() {
            return Err(CliError::new(
                exit::USAGE,
                format!("--filter {s}: the FIELD before `=` is empty"),
            ));
        }
        // The envelope's top level is id, type, data, metadata (plus channel and pattern of
        // a delivery); any other first name is a metadata field: `source` = `metadata.source`.
        let top = field.split('.').next().unwrap_or("");
        let field = if ["id", "type", "channel", "pattern", "data", "metadata"].contains(&top) {
            field.to_string()
        } else {
            format!("metadata.{field}")
        };
        let mut values = vec![Value::String(value.to_string())];
        if let Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Null)) =
            serde_json::from_str::<Value>(value)
        {
            values.push(v);
        }
        conditions.push(json!({"field": field, "operator": "in", "value": values}));
    }
    Ok(Some(json!({ "conditions": conditions, "operator": "AND" })))
}

/// A duration like `90s`, `15m`, `2h`, `1d`, `500ms`, `1h30m`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let ms = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(ms)?)?;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_millis(total))
}

/// `--since`: a stream id, a duration ago, an RFC 3339 time, or `now`.
pub fn parse_since(s: &str, now_ms: u64) -> CliResult<TailFrom> {
    if s == "now" {
        return Ok(TailFrom::End);
    }
    if event_bus::durable::tail::parse_stream_id(s).is_some() {
        return Ok(TailFrom::Id(s.to_string()));
    }
    if let Some(d) = parse_duration(s) {
        return Ok(TailFrom::TimeMs(
            now_ms.saturating_sub(d.as_millis() as u64),
        ));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        let ms = t.timestamp_millis();
        return Ok(TailFrom::TimeMs(ms.max(0) as u64));
    }
    Err(CliError::new(
        exit::USAGE,
        format!(
            "--since {s}: expected a stream id (1733300000000-0), a duration (90s, 15m, 2h, 1d), \
             an RFC 3339 time (2026-12-06T21:00:00Z) or `now`"
        ),
    ))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub async fn run(conn: &ConnArgs, a: TailArgs) -> CliResult {
    let filter = filter_of(&a.filter)?;
    if a.stream || a.since.is_some() {
        return run_stream(conn, a, filter).await;
    }
    if a.count == Some(0) {
        return Ok(());
    }
    let mut opts = json!({});
    if let Some(f) = &filter {
        opts["filter"] = f.clone();
    }
    let opts = SubscriptionOptions::from_json(&opts.to_string())
        .map_err(|e| CliError::new(exit::USAGE, format!("--filter: {e}")))?;
    let bus = conn.connect().await?;
    let printed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let limit = a.count.unwrap_or(u64::MAX);
    for p in &a.patterns {
        let (printed, done, json) = (printed.clone(), done.clone(), a.json);
        let handler = Arc::new(move |d: Delivery| {
            let n = printed.fetch_add(1, SeqCst);
            if n < limit {
                let line = if json { json_line(&d) } else { summary(&d) };
                println!("{line}");
                if n + 1 == limit {
                    done.notify_one();
                }
            }
            async { Ok::<(), HandlerError>(()) }
        });
        bus.subscribe(p, handler, opts.clone())
            .await
            .map_err(|e| CliError::new(exit::BAD_INPUT, format!("cannot subscribe to {p}: {e}")))?;
    }
    done.notified().await;
    let _ = bus.disconnect().await;
    Ok(())
}

/// Entries per read of a stream.
const PAGE: usize = 200;
/// How long one blocking read waits (the loop checks nothing else; it only bounds a read).
const BLOCK: Duration = Duration::from_secs(5);

async fn run_stream(conn: &ConnArgs, a: TailArgs, filter: Option<Value>) -> CliResult {
    let from = match &a.since {
        Some(s) => parse_since(s, now_ms())?,
        None => TailFrom::Start,
    };
    let filter: Option<SubscriptionFilter> = match filter {
        Some(f) => {
            let f: SubscriptionFilter = serde_json::from_value(f).expect("built above");
            f.check()
                .map_err(|e| CliError::new(exit::USAGE, format!("--filter: {e}")))?;
            Some(f)
        }
        None => None,
    };
    for t in &a.patterns {
        if event_bus::is_pattern(t) {
            return Err(CliError::new(
                exit::USAGE,
                format!(
                    "--stream reads exact event types, not patterns: \"{t}\" is a glob (a stream \
                     is a key per event type; list the types)"
                ),
            ));
        }
    }
    if a.count == Some(0) {
        return Ok(());
    }
    let bus = conn.connect().await?;
    let limit = a.count.unwrap_or(u64::MAX);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Delivery, CliError>>(PAGE);
    let mut tasks = Vec::new();
    for t in &a.patterns {
        let mut tail = bus
            .tail_stream(t, from.clone(), BLOCK)
            .await
            .map_err(|e| CliError::new(exit::FAILED, format!("tail --stream {t}: {e}")))?;
        let (tx, t, filter) = (tx.clone(), t.clone(), filter.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let batch = match tail.next_batch(PAGE).await {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx
                            .send(Err(CliError::new(
                                exit::FAILED,
                                format!("reading the stream of {t} ({}): {e}", tail.key()),
                            )))
                            .await;
                        return;
                    }
                };
                for entry in batch {
                    match entry.event {
                        Ok(d) => {
                            if filter.as_ref().is_some_and(|f| !f.matches(&d)) {
                                continue;
                            }
                            if tx.send(Ok(d)).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => eprintln!(
                            "event-bus: skipped stream entry {} of {t}: {e}",
                            entry.stream_id
                        ),
                    }
                }
            }
        }));
    }
    drop(tx);
    let mut printed = 0u64;
    let mut result = Ok(());
    while printed < limit {
        match rx.recv().await {
            Some(Ok(d)) => {
                println!("{}", if a.json { json_line(&d) } else { summary(&d) });
                printed += 1;
            }
            Some(Err(e)) => {
                result = Err(e);
                break;
            }
            None => break,
        }
    }
    for t in tasks {
        t.abort();
    }
    let _ = bus.disconnect().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("15"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("3w"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn since_forms() {
        let now = 10_000_000;
        assert_eq!(parse_since("now", now).unwrap(), TailFrom::End);
        assert_eq!(
            parse_since("1733300000000-2", now).unwrap(),
            TailFrom::Id("1733300000000-2".into())
        );
        assert_eq!(
            parse_since("90s", now).unwrap(),
            TailFrom::TimeMs(now - 90_000)
        );
        assert_eq!(
            parse_since("2026-12-06T21:00:00Z", now).unwrap(),
            TailFrom::TimeMs(1_796_590_800_000)
        );
        assert_eq!(
            parse_since("2026-12-06T22:00:00+01:00", now).unwrap(),
            TailFrom::TimeMs(1_796_590_800_000)
        );
        assert_eq!(parse_since("yesterday", now).unwrap_err().code, exit::USAGE);
    }

    #[test]
    fn filters() {
        assert_eq!(filter_of(&[]).unwrap(), None);
        let f = filter_of(&["data.n=1".into(), "source=svc".into()])
            .unwrap()
            .unwrap();
        assert_eq!(f["conditions"][0]["value"], json!(["1", 1]));
        assert_eq!(f["conditions"][1]["value"], json!(["svc"]));
        assert_eq!(f["conditions"][0]["field"], "data.n");
        assert_eq!(f["conditions"][1]["field"], "metadata.source");
        assert_eq!(filter_of(&["nope".into()]).unwrap_err().code, exit::USAGE);
        assert_eq!(filter_of(&["=x".into()]).unwrap_err().code, exit::USAGE);
    }
}
