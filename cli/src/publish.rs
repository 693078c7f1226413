//! `event-bus publish TYPE [DATA|@FILE|-]`: publish one event (or `--count` of them, at
//! `--rate`), or one per line of NDJSON on stdin, and print each PublishResult.

use std::io::BufRead;
use std::time::Duration;

use clap::Args;
use event_bus::{OutcomeJson, OutcomeShape, PublishOptions};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::conn::ConnArgs;
use crate::{exit, CliError, CliResult};

#[derive(Args, Debug)]
pub struct PublishArgs {
    /// Event type, e.g. photo.uploaded
    #[arg(value_name = "TYPE")]
    pub event_type: String,
    /// The data: JSON text, @FILE for a file's JSON, or - for NDJSON on stdin (one event per line)
    #[arg(value_name = "DATA", default_value = "{}", allow_hyphen_values = true)]
    pub data: String,
    /// Publish to room:ROOM
    #[arg(long, value_name = "ROOM")]
    pub room: Option<String>,
    /// Publish to user:USER (metadata.userId)
    #[arg(long = "user", value_name = "USER")]
    pub user_id: Option<String>,
    /// Publish on the broadcast channel
    #[arg(long)]
    pub broadcast: bool,
    /// metadata.traceId (a new UUID per event otherwise)
    #[arg(long, value_name = "ID")]
    pub trace_id: Option<String>,
    /// A W3C traceparent carried in metadata.traceparent
    #[arg(long, value_name = "TRACEPARENT")]
    pub traceparent: Option<String>,
    /// Also append the event to its type's stream, for durable subscriptions (Redis 7+)
    #[arg(long)]
    pub persistent: bool,
    /// With --persistent: trim the type's stream of entries older than MS milliseconds
    #[arg(long, value_name = "MS", requires = "persistent")]
    pub ttl: Option<u64>,
    /// Publish the event N times
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub count: u64,
    /// At most R events per second (default: as fast as Redis answers, one at a time)
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
}

/// `text` as JSON data, or the parser's complaint with its position (`what`: where it came from).
pub fn parse_data(text: &str, what: &str) -> CliResult<Box<RawValue>> {
    serde_json::from_str::<Box<RawValue>>(text.trim()).map_err(|e| {
        CliError::new(
            exit::BAD_INPUT,
            format!(
                "{what} is not valid JSON: {} at line {} column {}",
                describe(&e),
                e.line(),
                e.column()
            ),
        )
    })
}

/// serde_json's message without its own " at line L column C" (we place the position).
fn describe(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

impl PublishArgs {
    fn options(&self) -> CliResult<PublishOptions> {
        let mut o = Map::new();
        if let Some(r) = &self.room {
            o.insert("room".into(), json!(r));
        }
        if let Some(u) = &self.user_id {
            o.insert("userId".into(), json!(u));
        }
        if self.broadcast {
            o.insert("broadcast".into(), json!(true));
        }
        if let Some(t) = &self.trace_id {
            o.insert("traceId".into(), json!(t));
        }
        if let Some(tp) = &self.traceparent {
            o.insert("metadata".into(), json!({ "traceparent": tp }));
        }
        if self.persistent {
            o.insert("persistent".into(), json!(true));
        }
        if let Some(t) = self.ttl {
            o.insert("ttl".into(), json!(t));
        }
        PublishOptions::from_json(&Value::Object(o).to_string())
            .map_err(|e| CliError::new(exit::BAD_INPUT, e.to_string()))
    }
}

pub async fn run(conn: &ConnArgs, a: PublishArgs) -> CliResult {
    if let Some(r) = a.rate {
        if !(r > 0.0 && r.is_finite()) {
            return Err(CliError::new(
                exit::USAGE,
                "--rate must be a positive number of events per second",
            ));
        }
    }
    let opts = a.options()?;
    // Read and check all input before connecting: bad input is reported without side effects.
    let items: Vec<Box<RawValue>> = if a.data == "-" {
        let stdin = std::io::stdin();
        let mut out = Vec::new();
        for (i, line) in stdin.lock().lines().enumerate() {
            let line =
                line.map_err(|e| CliError::new(exit::BAD_INPUT, format!("reading stdin: {e}")))?;
            if line.trim().is_empty() {
                continue;
            }
            out.push(parse_data(&line, &format!("stdin line {}", i + 1))?);
        }
        out
    } else if let Some(path) = a.data.strip_prefix('@') {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::new(exit::BAD_INPUT, format!("cannot read {path}: {e}")))?;
        vec![parse_data(&text, path)?]
    } else {
        vec![parse_data(&a.data, "DATA")?]
    };
    let bus = conn.connect().await?;
    let interval = a.rate.map(|r| Duration::from_secs_f64(1.0 / r));
    let mut next = tokio::time::Instant::now();
    let mut failed = 0u64;
    for data in &items {
        for _ in 0..a.count {
            if let Some(iv) = interval {
                tokio::time::sleep_until(next).await;
                next += iv;
            }
            let o = bus.publish(&a.event_type, data, &opts).await;
            if o.is_err() {
                failed += 1;
            }
            println!(
                "{}",
                serde_json::to_string(&OutcomeJson::of(&o, OutcomeShape::Ts)).expect("serializes")
            );
        }
    }
    let _ = bus.disconnect().await;
    if failed > 0 {
        return Err(CliError::new(
            exit::FAILED,
            format!("{failed} publish(es) failed"),
        ));
    }
    Ok(())
}
