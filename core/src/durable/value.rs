//! Reading Redis stream replies (RESP3 maps or RESP2 flat arrays alike).

use redis::Value;

/// A bulk or simple string, or a number, as text.
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A number (an integer reply, or a string holding one).
pub(crate) fn number(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => text(other).and_then(|s| s.parse().ok()),
    }
}

/// The pairs of a map reply (or of a flat `[k, v, k, v]` array).
pub(crate) fn pairs(v: &Value) -> Vec<(String, &Value)> {
    match v {
        Value::Map(m) => m
            .iter()
            .filter_map(|(k, v)| text(k).map(|k| (k, v)))
            .collect(),
        Value::Array(a) => a
            .chunks(2)
            .filter_map(|c| match c {
                [k, v] => text(k).map(|k| (k, v)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The field `name` of a map reply.
pub(crate) fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    pairs(v)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The elements of an array reply.
pub(crate) fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        _ => &[],
    }
}

/// One stream entry: its id and its fields, `None` when the entry was deleted (a pending
/// entry whose stream entry was trimmed).
pub(crate) type StreamEntry = (String, Option<Vec<(String, String)>>);

/// The entries of `[[id, [f, v, ...]], ...]`.
pub(crate) fn entries(v: &Value) -> Vec<StreamEntry> {
    items(v)
        .iter()
        .filter_map(|e| {
            let parts = items(e);
            let id = text(parts.first()?)?;
            let fields = match parts.get(1) {
                None | Some(Value::Nil) => None,
                Some(f) => Some(
                    pairs(f)
                        .into_iter()
                        .filter_map(|(k, v)| text(v).map(|v| (k, v)))
                        .collect(),
                ),
            };
            Some((id, fields))
        })
        .collect()
}

/// The entries of an XREADGROUP reply for one stream (`{key: entries}` or
/// `[[key, entries]]`; nil when nothing came).
pub(crate) fn read_reply(v: &Value) -> Vec<StreamEntry> {
    match v {
        Value::Map(m) => m.iter().flat_map(|(_, e)| entries(e)).collect(),
        Value::Array(a) => a
            .iter()
            .flat_map(|s| items(s).get(1).map(entries).unwrap_or_default())
            .collect(),
        _ => Vec::new(),
    }
}

/// Compare two stream ids (`ms-seq`).
pub(crate) fn id_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn parse(s: &str) -> (u64, u64) {
        let mut it = s.splitn(2, '-');
        let ms = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        let seq = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        (ms, seq)
    }
    parse(a).cmp(&parse(b))
}
