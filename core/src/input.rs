//! Reading caller input (config, publish and subscription options) from JSON.
//!
//! Every face hands its input over as JSON text, so the core is the one place that judges
//! types and ranges, and every face reports the same sentence for the same mistake. This module
//! holds the shared machinery:
//! - [`parse`]: deserialize with the path of the offending key and the list of keys that were
//!   not recognised (the caller warns about those: a typo must not pass unnoticed);
//! - the `deserialize_with` helpers for milliseconds ([`millis`]), which take any
//!   non-negative number and round a fraction *up* (a timeout is never shorter than asked, and
//!   `0.5` does not become `0`);
//! - [`sentence`]: serde's own complaints (`invalid type: floating point 1.5, expected u16`)
//!   rewritten as something a user can act on (`port must be a whole number from 0 to 65535
//!   (got 1.5)`).

use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};

/// The largest duration accepted, in ms: what a JavaScript timer can hold (about 24.8 days).
pub const MAX_MILLIS: u64 = 2_147_483_647;

/// Deserialize `json` as `T`. `what` names the input in the plural-neutral form used in
/// messages ("subscription options", "EventBusConfig"). Errors are `kind` errors that name the
/// key (`Invalid subscription options: timeout must not be negative (got -1)`), or the input
/// itself when the whole value is wrong (`Subscription options must be an object (got an
/// array)`). Returns the value and the dotted paths of keys `T` does not know.
pub(crate) fn parse<T: DeserializeOwned>(
    json: &str,
    what: &str,
    kind: ErrorKind,
) -> Result<(T, Vec<String>)> {
    // serde would read a struct from an array too (`[1]` as `{"timeout": 1}`): the input is
    // an object or it is wrong.
    if !json.trim_start().starts_with('{') {
        let message = match serde_json::from_str::<Value>(json) {
            Ok(v) => format!(
                "{} must be an object (got {})",
                capitalized(what),
                shown(&v)
            ),
            Err(e) => format!(
                "{}: not valid JSON (line {}, column {})",
                capitalized(what),
                e.line(),
                e.column()
            ),
        };
        let kind = if message.contains("not valid JSON") {
            ErrorKind::InvalidArgument
        } else {
            kind
        };
        return Err(Error::new(kind, message));
    }
    let mut de = serde_json::Deserializer::from_str(json);
    let mut unknown = Vec::new();
    // serde_ignored writes `?` for each `Option` it went through (`redis.?.sentinel`).
    let mut on_ignored = |path: serde_ignored::Path<'_>| {
        let p = path.to_string();
        unknown.push(
            p.split('.')
                .filter(|s| *s != "?")
                .collect::<Vec<_>>()
                .join("."),
        )
    };
    let ignored = serde_ignored::Deserializer::new(&mut de, &mut on_ignored);
    let value: T = serde_path_to_error::deserialize(ignored).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "{}: not valid JSON (line {}, column {})",
                    capitalized(what),
                    inner.line(),
                    inner.column()
                ),
            );
        }
        Error::new(kind, sentence(what, &path, &inner))
    })?;
    de.end().map_err(|e| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "{}: not valid JSON, unexpected text after the value (line {}, column {})",
                capitalized(what),
                e.line(),
                e.column()
            ),
        )
    })?;
    Ok((value, unknown))
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// serde's message for the value at `path` of `what`, as a sentence. Messages written by this
/// crate's own deserializers (they start with "must") only get the key in front.
pub(crate) fn sentence(what: &str, path: &str, e: &serde_json::Error) -> String {
    let body = body(path, e);
    if path.is_empty() || path == "." {
        format!("{} {body}", capitalized(what))
    } else {
        format!("Invalid {what}: {body}")
    }
}

fn body(path: &str, e: &serde_json::Error) -> String {
    // serde_json appends " at line L column C"; the key says more than the position.
    let raw = e.to_string();
    let msg = match raw.rfind(" at line ") {
        Some(i) => &raw[..i],
        None => raw.as_str(),
    };
    let key = if path.is_empty() || path == "." {
        None
    } else {
        Some(path)
    };
    // At the root the caller names the input itself ("Subscription options must be ...").
    let subject = key.unwrap_or("");
    let subject = |rest: String| {
        if subject.is_empty() {
            rest
        } else {
            format!("{subject} {rest}")
        }
    };
    if let Some(rest) = msg.strip_prefix("must") {
        return subject(format!("must{rest}"));
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            if let Some((got, expected)) = rest.split_once(", expected ") {
                return subject(format!(
                    "must be {} (got {})",
                    expected_phrase(expected),
                    got_phrase(got)
                ));
            }
        }
    }
    if let Some(rest) = msg.strip_prefix("unknown variant ") {
        if let Some((got, expected)) = rest.split_once(", expected ") {
            let choices = expected.trim_start_matches("one of ").replace('`', "\"");
            return subject(format!(
                "must be {} (got {})",
                if choices.contains(',') {
                    format!("one of {choices}")
                } else {
                    choices
                },
                got.replace('`', "\"")
            ));
        }
    }
    if let Some(rest) = msg.strip_prefix("missing field ") {
        let field = rest.trim_matches('`');
        return match key {
            Some(k) => format!("{k}.{field} is required"),
            None => format!("{field} is required"),
        };
    }
    match key {
        Some(k) => format!("{k}: {msg}"),
        None => format!("is invalid: {msg}"),
    }
}

/// What serde expected, in words.
fn expected_phrase(expected: &str) -> String {
    match expected {
        "u8" => "a whole number from 0 to 255".into(),
        "u16" => "a whole number from 0 to 65535".into(),
        "u32" => "a whole number from 0 to 4294967295".into(),
        "u64" | "usize" => "a whole number of at least 0".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" => "true or false".into(),
        "a string" => "a string".into(),
        "a sequence" => "an array".into(),
        "a map" => "an object".into(),
        e if e.starts_with("struct ") => "an object".into(),
        e => e.replace('`', "\""),
    }
}

/// What serde got, in words.
fn got_phrase(got: &str) -> String {
    // serde writes `floating point `1.5``, `integer `-1``, `string "x"`, `boolean `true``,
    // `sequence`, `map`, `null`, `unit value`.
    let unquote = |s: &str| s.trim_matches('`').to_string();
    if let Some(v) = got.strip_prefix("floating point ") {
        return unquote(v);
    }
    if let Some(v) = got.strip_prefix("integer ") {
        return unquote(v);
    }
    if let Some(v) = got.strip_prefix("boolean ") {
        return unquote(v);
    }
    if let Some(v) = got.strip_prefix("string ") {
        return format!("the string {v}");
    }
    match got {
        "sequence" => "an array".into(),
        "map" => "an object".into(),
        "unit value" | "null" => "null".into(),
        other => other.to_string(),
    }
}

/// A short, printable form of a JSON value for messages.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("the string {}", Value::String(s.clone())),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
        other => other.to_string(),
    }
}

/// Milliseconds as an `Option<u64>`: `null` or absent is `None`; any number from 0 to
/// [`MAX_MILLIS`] is accepted and a fraction is rounded up.
pub(crate) mod millis {
    use super::*;

    /// `deserialize_with` for `Option<u64>` milliseconds.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let Some((n, f)) = non_negative::<D::Error>(d, "a number of milliseconds")? else {
            return Ok(None);
        };
        if f.is_nan() || f > MAX_MILLIS as f64 {
            return Err(D::Error::custom(format!(
                "must be at most {MAX_MILLIS} ms, about 24.8 days (got {n})"
            )));
        }
        Ok(Some(n.as_u64().unwrap_or(f.ceil() as u64)))
    }
}

/// The number at `d`, refused unless it is a non-negative number (`expected` says what kind,
/// for the message); `None` for `null` or absent.
fn non_negative<'de, E: serde::de::Error>(
    d: impl Deserializer<'de, Error = E>,
    expected: &str,
) -> Result<Option<(serde_json::Number, f64)>, E> {
    let n = match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n,
        Some(other) => {
            return Err(E::custom(format!(
                "must be {expected} (got {})",
                shown(&other)
            )))
        }
    };
    let f = n.as_f64().unwrap_or(f64::NAN);
    if f < 0.0 {
        return Err(E::custom(format!("must not be negative (got {n})")));
    }
    Ok(Some((n, f)))
}

/// Integer types that [`whole`] can produce.
pub(crate) trait Whole: TryFrom<u64> + Copy {
    /// The type's largest value, for the message.
    const MAX: u64;
}
impl Whole for u16 {
    const MAX: u64 = u16::MAX as u64;
}
impl Whole for u32 {
    const MAX: u64 = u32::MAX as u64;
}
impl Whole for usize {
    const MAX: u64 = usize::MAX as u64;
}
impl Whole for u64 {
    const MAX: u64 = u64::MAX;
}

/// `deserialize_with` for an optional count (`maxRetries`, `concurrency`, sizes): a whole,
/// non-negative number that fits the field; `null` or absent is `None`.
pub(crate) fn whole<'de, D: Deserializer<'de>, T: Whole>(d: D) -> Result<Option<T>, D::Error> {
    let Some((n, f)) = non_negative::<D::Error>(d, "a whole number")? else {
        return Ok(None);
    };
    let Some(u) = n.as_u64() else {
        if f.fract() != 0.0 {
            return Err(D::Error::custom(format!(
                "must be a whole number (got {n})"
            )));
        }
        return Err(D::Error::custom(format!(
            "must be at most {} (got {n})",
            T::MAX
        )));
    };
    T::try_from(u)
        .map(Some)
        .map_err(|_| D::Error::custom(format!("must be at most {} (got {n})", T::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)] // read through Debug and the errors only
    struct T {
        #[serde(default, with = "millis")]
        timeout: Option<u64>,
        #[serde(default)]
        port: Option<u16>,
        #[serde(default)]
        flag: Option<bool>,
    }

    fn err(json: &str) -> String {
        parse::<T>(json, "test options", ErrorKind::Validation)
            .unwrap_err()
            .message()
            .to_string()
    }

    #[test]
    fn milliseconds_round_up_and_refuse_what_no_timer_can_hold() {
        let (t, _) = parse::<T>(r#"{"timeout":1.5}"#, "x", ErrorKind::Validation).unwrap();
        assert_eq!(t.timeout, Some(2));
        let (t, _) = parse::<T>(r#"{"timeout":0.2}"#, "x", ErrorKind::Validation).unwrap();
        assert_eq!(t.timeout, Some(1));
        let (t, _) = parse::<T>(r#"{"timeout":null}"#, "x", ErrorKind::Validation).unwrap();
        assert_eq!(t.timeout, None);
        assert_eq!(
            err(r#"{"timeout":-1}"#),
            "Invalid test options: timeout must not be negative (got -1)"
        );
        assert_eq!(
            err(r#"{"timeout":1e20}"#),
            "Invalid test options: timeout must be at most 2147483647 ms, about 24.8 days (got 1e+20)"
        );
        assert_eq!(
            err(r#"{"timeout":"5s"}"#),
            "Invalid test options: timeout must be a number of milliseconds (got the string \"5s\")"
        );
    }

    #[test]
    fn serde_complaints_become_sentences() {
        assert_eq!(
            err(r#"{"port":6379.5}"#),
            "Invalid test options: port must be a whole number from 0 to 65535 (got 6379.5)"
        );
        assert_eq!(
            err(r#"{"port":70000}"#),
            "Invalid test options: port must be a whole number from 0 to 65535 (got 70000)"
        );
        assert_eq!(
            err(r#"{"flag":"yes"}"#),
            "Invalid test options: flag must be true or false (got the string \"yes\")"
        );
        assert_eq!(err("[1]"), "Test options must be an object (got an array)");
    }

    #[test]
    fn unknown_keys_are_reported_and_bad_json_is_an_invalid_argument() {
        let (_, unknown) =
            parse::<T>(r#"{"timout":1,"flag":true}"#, "x", ErrorKind::Validation).unwrap();
        assert_eq!(unknown, vec!["timout".to_string()]);
        let e = parse::<T>("{", "test options", ErrorKind::Validation).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(
            e.message().starts_with("Test options: not valid JSON"),
            "{e}"
        );
    }
}
