//! A command Redis refused, as a typed error with a sentence.
//!
//! Redis answers a refused command with an error line `CODE detail` (`NOPERM this user has no
//! permissions to access one of the channels used as arguments`). Users get the kind that
//! code means and a sentence naming the command and its channel, never the client crate's
//! debug form of the reply.

use redis::{RedisError, Value};

use crate::error::{Error, ErrorKind};

/// The kind a server error code means for the caller.
fn kind_of(code: &str) -> ErrorKind {
    match code {
        "NOPERM" | "NOAUTH" | "WRONGPASS" => ErrorKind::PermissionDenied,
        // The server cannot serve writes or any command right now; a later attempt (after a
        // failover or once loaded) may succeed.
        "LOADING" | "READONLY" | "MASTERDOWN" | "CLUSTERDOWN" | "TRYAGAIN" | "BUSY" => {
            ErrorKind::Connection
        }
        _ => ErrorKind::Protocol,
    }
}

/// What a code means in a few words, for the sentence.
fn meaning(code: &str) -> &'static str {
    match code {
        "NOPERM" => "permission denied by the ACL of this client's user",
        "NOAUTH" | "WRONGPASS" => "not authenticated",
        "LOADING" => "the server is loading its dataset",
        "READONLY" => "the server is a read-only replica",
        "MASTERDOWN" => "the replica has lost its master",
        "CLUSTERDOWN" => "the cluster is down",
        "TRYAGAIN" => "the slot is being migrated",
        "BUSY" => "the server is busy running a script",
        "OOM" => "the server is out of memory (maxmemory)",
        _ => "refused",
    }
}

/// `command` on `target` (a channel, a key, or empty) refused with `code` and `detail`.
pub(super) fn refusal(command: &str, target: &str, code: &str, detail: &str) -> Error {
    let detail = detail.trim();
    let server = if detail.is_empty() {
        code.to_string()
    } else {
        format!("{code} {detail}")
    };
    Error::new(
        kind_of(code),
        format!(
            "Redis refused {command}{}: {} ({server})",
            on(target),
            meaning(code)
        ),
    )
}

/// A reply that should have been the command's result: a server error becomes its
/// [`refusal`], anything else an unexpected-reply protocol error.
pub(super) fn refused_reply(command: &str, target: &str, v: &Value) -> Error {
    match v {
        Value::ServerError(e) => refusal(command, target, e.code(), e.details().unwrap_or("")),
        other => Error::new(
            ErrorKind::Protocol,
            format!("unexpected reply to {command}{}: {other:?}", on(target)),
        ),
    }
}

/// A command error that is not a lost connection (see `connect::is_connection_error`).
pub(super) fn refused_error(command: &str, target: &str, e: &RedisError) -> Error {
    match e.code() {
        Some(code) => refusal(command, target, code, e.detail().unwrap_or("")),
        None => Error::new(
            ErrorKind::Protocol,
            format!("Redis refused {command}{}: {e}", on(target)),
        ),
    }
}

/// ` on "target"`, or nothing without a target.
fn on(target: &str) -> String {
    if target.is_empty() {
        String::new()
    } else {
        format!(" on \"{target}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noperm_is_permission_denied_and_names_the_channel() {
        let e = refusal(
            "PUBLISH",
            "orders.created",
            "NOPERM",
            "this user has no permissions to access one of the channels used as arguments",
        );
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert_eq!(e.kind().code(), "PERMISSION_DENIED");
        assert_eq!(
            e.message(),
            "Redis refused PUBLISH on \"orders.created\": permission denied by the ACL of this \
             client's user (NOPERM this user has no permissions to access one of the channels \
             used as arguments)"
        );
    }

    #[test]
    fn transient_states_are_connection_errors_and_others_protocol() {
        assert_eq!(
            refusal("PUBLISH", "c", "READONLY", "x").kind(),
            ErrorKind::Connection
        );
        assert_eq!(
            refusal("PUBLISH", "c", "LOADING", "").kind(),
            ErrorKind::Connection
        );
        let e = refusal(
            "XADD",
            "",
            "OOM",
            "command not allowed when used memory > 'maxmemory'.",
        );
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(e
            .message()
            .starts_with("Redis refused XADD: the server is out of memory"));
    }
}
