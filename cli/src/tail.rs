//! `event-bus tail PATTERN...`: print the events of matching channels as they arrive.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

use clap::Args;
use event_bus::{Delivery, HandlerError, SubscriptionOptions};
use tokio::sync::Notify;

use crate::conn::ConnArgs;
use crate::{exit, CliError, CliResult};

#[derive(Args, Debug)]
pub struct TailArgs {
    /// Channel patterns (Redis globs: 'photo.*', 'user:*', 'broadcast')
    #[arg(required = true, value_name = "PATTERN")]
    pub patterns: Vec<String>,
    /// One wire-format JSON object per line (for jq) instead of the one-line summary
    #[arg(long)]
    pub json: bool,
    /// Stop after N events
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Read a type's stream without joining a group (not yet available in this build)
    #[arg(long)]
    pub stream: bool,
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

pub async fn run(conn: &ConnArgs, a: TailArgs) -> CliResult {
    if a.stream {
        return Err(crate::not_available("tail --stream"));
    }
    if a.count == Some(0) {
        return Ok(());
    }
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
        bus.subscribe(p, handler, SubscriptionOptions::default())
            .await
            .map_err(|e| CliError::new(exit::BAD_INPUT, format!("cannot subscribe to {p}: {e}")))?;
    }
    done.notified().await;
    let _ = bus.disconnect().await;
    Ok(())
}
