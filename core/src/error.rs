//! One error model for the whole library.
//!
//! Every failure is an [`Error`] with an [`ErrorKind`]; each face (Node, Python, C) has exactly
//! one place that maps kinds to its host's errors, so the kinds are the contract.

use std::fmt;

/// What went wrong, independent of the cause.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The configuration is incomplete or malformed.
    Config,
    /// An event, pattern or option broke a validation rule (the TS package's `ValidationError`).
    Validation,
    /// The call needs `connect()` first (`Not connected to Event Bus`).
    NotConnected,
    /// Redis could not be reached, or a connection failed.
    Connection,
    /// A deadline passed before the operation was sent (publish timeout, connect timeout).
    Timeout,
    /// The offline publish queue is full: the publish was refused without being sent.
    QueueFull,
    /// The publish was written but the connection died before Redis answered: it may or may
    /// not have been delivered. Never retried automatically.
    OutcomeUnknown,
    /// Redis answered something unexpected (a server error, a wrong reply type).
    Protocol,
    /// Redis refused the command for this client's user (ACL `NOPERM`): the user may not run
    /// the command or use the channel or key. Not retried; fix the ACL, the client heals
    /// without a restart.
    PermissionDenied,
    /// The client was disconnected/closed while the call was pending, or used after close.
    Closed,
    /// A subscription handler failed or timed out.
    Handler,
    /// An argument had the wrong type or shape (bindings use this for host-side input errors).
    InvalidArgument,
    /// The feature is not available in this build or configuration.
    Unsupported,
    /// A bug: an invariant of the library did not hold.
    Internal,
}

impl ErrorKind {
    /// Stable SCREAMING_CASE name, used as the Node `error.code` and in `PublishResult.error.code`.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Config => "CONFIG_ERROR",
            ErrorKind::Validation => "VALIDATION_ERROR",
            ErrorKind::NotConnected => "NOT_CONNECTED",
            ErrorKind::Connection => "CONNECTION_ERROR",
            ErrorKind::Timeout => "TIMEOUT",
            ErrorKind::QueueFull => "QUEUE_FULL",
            ErrorKind::OutcomeUnknown => "OUTCOME_UNKNOWN",
            ErrorKind::Protocol => "PROTOCOL_ERROR",
            ErrorKind::PermissionDenied => "PERMISSION_DENIED",
            ErrorKind::Closed => "CLOSED",
            ErrorKind::Handler => "HANDLER_ERROR",
            ErrorKind::InvalidArgument => "INVALID_ARGUMENT",
            ErrorKind::Unsupported => "NOT_SUPPORTED",
            ErrorKind::Internal => "INTERNAL_ERROR",
        }
    }
}

impl ErrorKind {
    /// The kind whose [`code`](Self::code) is `code` (a host hands a code back to the core).
    pub fn from_code(code: &str) -> Option<ErrorKind> {
        use ErrorKind::*;
        [
            Config,
            Validation,
            NotConnected,
            Connection,
            Timeout,
            QueueFull,
            OutcomeUnknown,
            Protocol,
            PermissionDenied,
            Closed,
            Handler,
            InvalidArgument,
            Unsupported,
            Internal,
        ]
        .into_iter()
        .find(|k| k.code() == code)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An error of the event bus: a kind, a human message, and the cause when there is one.
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attach the underlying cause (kept for `source()` and the cause chain in messages).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message without the cause chain (the TS-compatible text for validation errors).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Message followed by every cause, `a: b: c`.
    pub fn full_message(&self) -> String {
        let mut out = self.message.clone();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = self
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static));
        while let Some(e) = cur {
            let s = e.to_string();
            if !s.is_empty() && !out.contains(&s) {
                out.push_str(": ");
                out.push_str(&s);
            }
            cur = e.source();
        }
        out
    }

    /// True when the publish is known not to have reached Redis.
    pub fn is_not_sent(&self) -> bool {
        !matches!(self.kind, ErrorKind::OutcomeUnknown)
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Validation, message)
    }

    /// `Not connected to Event Bus`: the one message every face uses for calls before
    /// `connect()`.
    pub fn not_connected() -> Self {
        Error::new(ErrorKind::NotConnected, "Not connected to Event Bus")
    }

    pub(crate) fn closed() -> Self {
        Error::new(ErrorKind::Closed, "Event Bus client is disconnected")
    }

    /// A publish that waited for room in a full queue until its publish timeout and was
    /// never sent.
    pub(crate) fn unsent_timeout(timeout: std::time::Duration) -> Self {
        Error::new(
            ErrorKind::Timeout,
            format!(
                "Publish timed out after {} ms before it was sent",
                timeout.as_millis()
            ),
        )
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.full_message())
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full_message())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<serde_json::Error> for Error {
    /// Text that should have been JSON and is not: the position, not serde's wording.
    fn from(e: serde_json::Error) -> Self {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("not valid JSON (line {}, column {})", e.line(), e.column()),
        )
    }
}
