//! `event-bus dlq list|replay|purge TYPE --group G`: a durable subscription group's dead
//! letters of one event type, through the client's dead-letter calls (the same ones the Node
//! and Python faces expose as `deadLetters`, `replayDeadLetters`, `purgeDeadLetters`).

use clap::{Args, Subcommand};
use event_bus::{DeadLetter, EventBusClient};

use crate::conn::ConnArgs;
use crate::{exit, CliError, CliResult};

#[derive(Subcommand, Debug)]
pub enum DlqCommand {
    /// Print the group's dead letters of TYPE, oldest first (default at most 100)
    List(DlqArgs),
    /// Put the group's dead letters of TYPE back on the type's stream (oldest first; default
    /// all) and print how many were replayed
    Replay(DlqArgs),
    /// Delete the group's dead letters of TYPE and print how many were deleted
    Purge(DlqArgs),
}

#[derive(Args, Debug)]
pub struct DlqArgs {
    /// Event type (an exact type: a stream is a key, not a pattern)
    #[arg(value_name = "TYPE")]
    pub event_type: String,
    /// Consumer group whose dead letters these are
    #[arg(long, value_name = "G")]
    pub group: String,
    /// list: at most N (default 100); replay: the oldest N (default all); purge: not allowed
    #[arg(long, value_name = "N")]
    pub count: Option<usize>,
    /// One JSON value on stdout: the list as an array, or {"replayed": N} / {"purged": N}
    #[arg(long)]
    pub json: bool,
}

/// The one-line form of a dead letter: `failedAt deliveries originalId eventId error`.
fn line(d: &DeadLetter) -> String {
    let when = crate::iso_ms(d.failed_at);
    let id = d.event["id"].as_str().unwrap_or("-");
    let msg = d.error["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| d.error.to_string());
    let code = d.error["code"]
        .as_str()
        .map(|c| format!(" [{c}]"))
        .unwrap_or_default();
    format!(
        "{when} deliveries={} stream-id={} event-id={id} error={msg}{code}",
        d.deliveries, d.original_id
    )
}

fn failed(what: &str, a: &DlqArgs, e: event_bus::Error) -> CliError {
    let code = match e.kind() {
        event_bus::ErrorKind::Validation => exit::BAD_INPUT,
        _ => exit::FAILED,
    };
    CliError::new(
        code,
        format!(
            "dlq {what} {} --group {}: {} ({})",
            a.event_type,
            a.group,
            e.message(),
            e.kind().code()
        ),
    )
}

async fn with_bus(c: DlqCommand, bus: &EventBusClient) -> CliResult {
    match c {
        DlqCommand::List(a) => {
            if a.count == Some(0) {
                return Err(CliError::new(exit::USAGE, "--count must be at least 1"));
            }
            let list = bus
                .dead_letters(&a.event_type, &a.group, a.count)
                .await
                .map_err(|e| failed("list", &a, e))?;
            if a.json {
                println!(
                    "{}",
                    serde_json::to_string(&list).expect("dead letters serialize")
                );
            } else if list.is_empty() {
                eprintln!(
                    "event-bus: no dead letters of {} for group {}",
                    a.event_type, a.group
                );
            } else {
                for d in &list {
                    println!("{}", line(d));
                }
            }
            Ok(())
        }
        DlqCommand::Replay(a) => {
            if a.count == Some(0) {
                return Err(CliError::new(exit::USAGE, "--count must be at least 1"));
            }
            let n = bus
                .replay_dead_letters(&a.event_type, &a.group, a.count)
                .await
                .map_err(|e| failed("replay", &a, e))?;
            if a.json {
                println!("{}", serde_json::json!({ "replayed": n }));
            } else {
                println!("{n}");
            }
            Ok(())
        }
        DlqCommand::Purge(a) => {
            if a.count.is_some() {
                return Err(CliError::new(
                    exit::USAGE,
                    "dlq purge takes no --count: it deletes all of the group's dead letters of the type",
                ));
            }
            let n = bus
                .purge_dead_letters(&a.event_type, &a.group)
                .await
                .map_err(|e| failed("purge", &a, e))?;
            if a.json {
                println!("{}", serde_json::json!({ "purged": n }));
            } else {
                println!("{n}");
            }
            Ok(())
        }
    }
}

pub async fn run(conn: &ConnArgs, c: DlqCommand) -> CliResult {
    let bus = conn.connect().await?;
    let r = with_bus(c, &bus).await;
    let _ = bus.disconnect().await;
    r
}
