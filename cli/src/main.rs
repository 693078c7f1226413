//! `event-bus`: the operator's command line for the event bus (tail, publish, health, stats,
//! topology, bench), on the same core and configuration as the libraries.

mod bench;
mod conn;
mod dlq;
mod publish;
mod tail;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes (also listed in `--help`).
pub mod exit {
    /// A command ran but its result is a failure: a publish failed, the bus is not healthy.
    pub const FAILED: u8 = 1;
    /// Bad command line (clap's own code).
    pub const USAGE: u8 = 2;
    /// Redis could not be reached, or refused the connection.
    pub const UNREACHABLE: u8 = 3;
    /// Bad input: JSON that does not parse, a file that cannot be read, a bad configuration.
    pub const BAD_INPUT: u8 = 4;
    /// The command needs a feature this build does not have yet.
    pub const NOT_AVAILABLE: u8 = 5;
}

/// A failure to report on stderr, with its exit code.
#[derive(Debug)]
pub struct CliError {
    /// Exit code (see [`exit`]).
    pub code: u8,
    /// What to print after `event-bus: `.
    pub message: String,
}

impl CliError {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
        }
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

const AFTER_HELP: &str = "\
Examples:
  event-bus tail 'photo.*'                       one line per event
  event-bus tail 'photo.*' --json | jq .data     wire-format JSON, one object per line
  event-bus tail 'photo.*' --filter data.photoId=p1 --filter source=uploader
  event-bus tail order.created --stream --since 15m   a type's stream, outside any group
  event-bus publish photo.uploaded '{\"photoId\":\"p1\"}' --room photo:p1
  event-bus publish order.created @order.json --persistent --ttl 86400000
  event-bus publish photo.uploaded @event.json --count 100 --rate 10
  cat events.ndjson | event-bus publish photo.uploaded -
  event-bus dlq list order.created --group billing
  event-bus dlq replay order.created --group billing --count 10
  event-bus health && echo up
  event-bus bench e2e --msgs 100000 --json
  REDIS_PW=secret event-bus --url redis://redis.internal:6379 --password-env REDIS_PW stats
  event-bus --cluster 10.0.0.1:7000,10.0.0.2:7000 --ask-password topology
  event-bus --sentinels 10.0.0.5:26379,10.0.0.6 --name mymaster --tls-ca ca.pem health

Connection: --url, else REDIS_URL, else redis://127.0.0.1:6379; --config FILE takes the
libraries' JSON configuration (cluster, sentinels, TLS, ...), and the flags override it:
--url (redis.url), --cluster h:p,... (redis.cluster), --sentinels h:p,... --name M
(redis.sentinels, redis.name), --tls-ca FILE (redis.tls.ca), --redis-user (redis.username).
`event-bus config` prints the result, secrets redacted.
A password belongs in --password-env VAR or --ask-password (read from the terminal without
echo): a command line is visible to other users, and a password in --url is warned about.

Exit codes: 0 success; 1 the command failed (a publish failed, health not healthy);
2 bad command line; 3 Redis unreachable or refused the connection; 4 bad input (JSON,
file, configuration); 5 not available in this build.";

#[derive(Parser)]
#[command(name = "event-bus", version, about = "Watch, publish to and measure the event bus", after_help = AFTER_HELP)]
struct Cli {
    #[command(flatten)]
    conn: conn::ConnArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the events published on channels matching PATTERN... until interrupted (or, with
    /// --stream/--since, the entries of event types' streams, read outside any group)
    Tail(tail::TailArgs),
    /// Publish events and print each PublishResult as JSON
    Publish(publish::PublishArgs),
    /// Check Redis (PING on each node) and print the health report; exit 1 unless healthy
    Health,
    /// Print getStats() of a fresh client as JSON (latency distributions, topology)
    Stats,
    /// Print the servers the client sees (single, sentinel, cluster) as JSON
    Topology,
    /// Print the libraries' JSON configuration these flags build, secrets redacted (does not
    /// connect)
    Config,
    /// Measure publishing and delivery against this Redis
    Bench(bench::BenchArgs),
    /// Dead letters of a durable subscription group: list, replay or purge
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = event_bus::runtime::block_on(run(cli));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("event-bus: {}", e.message);
            }
            ExitCode::from(e.code)
        }
    }
}

async fn run(cli: Cli) -> CliResult {
    let conn = cli.conn;
    match cli.command {
        Command::Tail(a) => tail::run(&conn, a).await,
        Command::Publish(a) => publish::run(&conn, a).await,
        Command::Health => {
            let bus = conn.connect().await?;
            let h = bus.health_check().await;
            print_json(&h);
            let _ = bus.disconnect().await;
            if h.status == "healthy" {
                Ok(())
            } else {
                Err(CliError::new(
                    exit::FAILED,
                    format!("the event bus is {}", h.status),
                ))
            }
        }
        Command::Stats => {
            let bus = conn.connect().await?;
            print_json(&bus.stats());
            let _ = bus.disconnect().await;
            Ok(())
        }
        Command::Topology => {
            let bus = conn.connect().await?;
            print_json(&bus.stats().topology);
            let _ = bus.disconnect().await;
            Ok(())
        }
        Command::Config => {
            print_json(&conn.redacted_config()?);
            Ok(())
        }
        Command::Bench(a) => bench::run(&conn, a).await,
        Command::Dlq(c) => dlq::run(&conn, c).await,
    }
}

/// `ms` since the epoch as an ISO-8601 UTC time with milliseconds.
pub fn iso_ms(ms: u64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn print_json<T: serde::Serialize>(v: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("reports serialize")
    );
}
