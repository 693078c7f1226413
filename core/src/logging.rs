//! Logging: `tracing` events in the core, written as the TS package's lines
//! `[ISO time] [LEVEL] [serviceName] message key=value...`, or JSON lines.
//!
//! A library should not install a global subscriber behind a Rust user's back, so the core
//! only emits events through [`Logger`]; hosts decide where they go: the bindings call
//! [`set_sink`] (Python's `logging`, a C callback) or [`install_stderr`].

use std::fmt::Write as _;
use std::sync::{Arc, RwLock};

use crate::config::LogLevel;

/// Receives formatted log records: level, service name, message, and `key=value` fields.
pub type LogSink = Arc<dyn Fn(&LogRecord<'_>) + Send + Sync>;

/// One log record.
#[derive(Debug)]
pub struct LogRecord<'a> {
    /// Level.
    pub level: LogLevel,
    /// Service that logged it.
    pub service: &'a str,
    /// Message.
    pub message: &'a str,
    /// Extra fields.
    pub fields: &'a [(&'a str, String)],
}

impl LogRecord<'_> {
    /// The TS package's line format.
    pub fn to_line(&self) -> String {
        let mut s = format!(
            "[{}] [{:<5}] [{}] {}",
            crate::event::now_iso(),
            self.level.as_str().to_uppercase(),
            self.service,
            self.message
        );
        for (k, v) in self.fields {
            let _ = write!(s, " {k}={v}");
        }
        s
    }

    /// One JSON object.
    pub fn to_json(&self) -> String {
        let mut m = serde_json::Map::new();
        m.insert("time".into(), crate::event::now_iso().into());
        m.insert("level".into(), self.level.as_str().into());
        m.insert("service".into(), self.service.into());
        m.insert("message".into(), self.message.into());
        for (k, v) in self.fields {
            m.insert((*k).to_string(), v.clone().into());
        }
        serde_json::Value::Object(m).to_string()
    }
}

static SINK: RwLock<Option<LogSink>> = RwLock::new(None);

/// Send every record to `sink` (replaces the previous sink). `None` restores plain `tracing`.
pub fn set_sink(sink: Option<LogSink>) {
    *SINK.write().unwrap_or_else(|p| p.into_inner()) = sink;
}

/// Write records to stderr in text or JSON form (what the Node face uses by default).
///
/// A line stderr cannot take (a full non-blocking pipe, a closed descriptor) is dropped:
/// logging never panics and never blocks the runtime on a reader that is not reading
/// (`eprintln!` panics on such a write error).
pub fn install_stderr(json: bool) {
    set_sink(Some(Arc::new(move |r: &LogRecord<'_>| {
        use std::io::Write as _;
        let mut line = if json { r.to_json() } else { r.to_line() };
        line.push('\n');
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    })));
}

/// Per-client logger: knows the service name and level, forwards to the sink or `tracing`.
#[derive(Clone, Debug)]
pub struct Logger {
    service: Arc<str>,
    level: LogLevel,
    json: bool,
}

impl Logger {
    /// A logger for `service` at `level`.
    pub fn new(service: &str, level: LogLevel, json: bool) -> Self {
        Logger {
            service: service.into(),
            level,
            json,
        }
    }

    /// Is `level` enabled?
    pub fn enabled(&self, level: LogLevel) -> bool {
        level >= self.level
    }

    /// JSON lines requested.
    pub fn json(&self) -> bool {
        self.json
    }

    /// Log `message` with fields.
    pub fn log(&self, level: LogLevel, message: &str, fields: &[(&str, String)]) {
        if !self.enabled(level) {
            return;
        }
        let rec = LogRecord {
            level,
            service: &self.service,
            message,
            fields,
        };
        let sink = SINK.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(sink) = sink {
            sink(&rec);
            return;
        }
        let f: String = fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        match level {
            LogLevel::Debug => tracing::debug!(service = %self.service, fields = %f, "{message}"),
            LogLevel::Info => tracing::info!(service = %self.service, fields = %f, "{message}"),
            LogLevel::Warn => tracing::warn!(service = %self.service, fields = %f, "{message}"),
            LogLevel::Error => tracing::error!(service = %self.service, fields = %f, "{message}"),
        }
    }

    /// Debug.
    pub fn debug(&self, m: &str, f: &[(&str, String)]) {
        self.log(LogLevel::Debug, m, f)
    }
    /// Info.
    pub fn info(&self, m: &str, f: &[(&str, String)]) {
        self.log(LogLevel::Info, m, f)
    }
    /// Warn.
    pub fn warn(&self, m: &str, f: &[(&str, String)]) {
        self.log(LogLevel::Warn, m, f)
    }
    /// Error.
    pub fn error(&self, m: &str, f: &[(&str, String)]) {
        self.log(LogLevel::Error, m, f)
    }
}

/// Lets a message through at most once per `interval` (with a count of what was held back),
/// so a flood of drops or invalid messages cannot flood the log.
#[derive(Debug)]
pub struct RateLimit {
    interval_ms: u64,
    last: std::sync::atomic::AtomicU64,
    suppressed: std::sync::atomic::AtomicU64,
}

impl RateLimit {
    /// One message per `interval_ms`.
    pub fn new(interval_ms: u64) -> Self {
        RateLimit {
            interval_ms,
            last: 0.into(),
            suppressed: 0.into(),
        }
    }

    /// `Some(suppressed_since_last)` when a message may be logged now.
    pub fn check(&self) -> Option<u64> {
        use std::sync::atomic::Ordering::*;
        let now = crate::stats::now_ms();
        let last = self.last.load(Relaxed);
        if (last == 0 || now.saturating_sub(last) >= self.interval_ms)
            && self
                .last
                .compare_exchange(last, now, AcqRel, Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, AcqRel));
        }
        self.suppressed.fetch_add(1, Relaxed);
        None
    }
}
