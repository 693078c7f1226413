//! Dead letters: read, replay (back onto the type's stream) and purge one group's entries of
//! a type's dead-letter stream.

use std::time::Duration;

use redis::Value;

use super::value;
use super::{dead_key, stream_key, DeadLetter};
use crate::error::Result;
use crate::transport::redis::streams::Streams;

const PAGE: usize = 200;
const PATIENCE: Duration = Duration::from_secs(10);

fn letter(id: String, fields: Vec<(String, String)>) -> DeadLetter {
    let get = |k: &str| {
        fields
            .iter()
            .find(|(f, _)| f == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let event = get("event");
    let error = get("error");
    DeadLetter {
        event: serde_json::from_str(&event).unwrap_or(serde_json::Value::String(event)),
        error: serde_json::from_str(&error)
            .unwrap_or_else(|_| serde_json::json!({ "message": error })),
        deliveries: get("deliveries").parse().unwrap_or(0),
        failed_at: get("failedAt").parse().unwrap_or(0),
        stream_id: id,
        original_id: get("streamId"),
    }
}

/// `group`'s dead letters of `t`, oldest first, at most `limit`; with the raw event text.
async fn scan(
    st: &Streams,
    prefix: &str,
    t: &str,
    group: &str,
    limit: usize,
) -> Result<Vec<(DeadLetter, String)>> {
    let key = dead_key(prefix, t);
    let mut out = Vec::new();
    let mut start = "-".to_string();
    loop {
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(&key).arg(&start).arg("+").arg("COUNT").arg(PAGE);
        let v: Value = st.query_patiently(&key, &cmd, "XRANGE", PATIENCE).await?;
        let entries = value::entries(&v);
        let n = entries.len();
        let last = entries.last().map(|(id, _)| id.clone());
        for (id, fields) in entries {
            let Some(fields) = fields else { continue };
            if !fields.iter().any(|(k, v)| k == "group" && v == group) {
                continue;
            }
            let raw = fields
                .iter()
                .find(|(k, _)| k == "event")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            out.push((letter(id, fields), raw));
            if out.len() >= limit {
                return Ok(out);
            }
        }
        match last {
            Some(l) if n >= PAGE => start = format!("({l}"),
            _ => return Ok(out),
        }
    }
}

pub(crate) async fn list(
    st: &Streams,
    prefix: &str,
    t: &str,
    group: &str,
    count: Option<usize>,
) -> Result<Vec<DeadLetter>> {
    Ok(scan(st, prefix, t, group, count.unwrap_or(100))
        .await?
        .into_iter()
        .map(|(d, _)| d)
        .collect())
}

pub(crate) async fn replay(
    st: &Streams,
    prefix: &str,
    t: &str,
    group: &str,
    count: Option<usize>,
    max_len: u64,
) -> Result<u64> {
    let letters = scan(st, prefix, t, group, count.unwrap_or(usize::MAX)).await?;
    let key = stream_key(prefix, t);
    let dead = dead_key(prefix, t);
    let mut n = 0;
    for (d, raw) in letters {
        let mut add = redis::cmd("XADD");
        add.arg(&key)
            .arg("MAXLEN")
            .arg("~")
            .arg(max_len)
            .arg("*")
            .arg("event")
            .arg(&raw);
        st.query::<Value>(&key, &add, "XADD", Duration::from_secs(5))
            .await?;
        let mut del = redis::cmd("XDEL");
        del.arg(&dead).arg(&d.stream_id);
        st.query_patiently::<Value>(&dead, &del, "XDEL", PATIENCE)
            .await?;
        n += 1;
    }
    Ok(n)
}

pub(crate) async fn purge(st: &Streams, prefix: &str, t: &str, group: &str) -> Result<u64> {
    let letters = scan(st, prefix, t, group, usize::MAX).await?;
    let dead = dead_key(prefix, t);
    let mut n = 0u64;
    for chunk in letters.chunks(PAGE) {
        let mut del = redis::cmd("XDEL");
        del.arg(&dead);
        for (d, _) in chunk {
            del.arg(&d.stream_id);
        }
        let k: i64 = st.query_patiently(&dead, &del, "XDEL", PATIENCE).await?;
        n += k.max(0) as u64;
    }
    Ok(n)
}
