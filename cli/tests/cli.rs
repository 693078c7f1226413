//! The `event-bus` binary against the shared Redis (REDIS_URL or 127.0.0.1:6379): exit codes,
//! messages and output of each command.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn unique(p: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{p}.{}.{nanos:x}", std::process::id())
}

fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_event-bus"));
    c.env_remove("REDIS_URL").arg("--url").arg(url());
    c
}

fn run(c: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = c.output().expect("runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

fn numsub(channel: &str) -> i64 {
    let client = redis::Client::open(url()).unwrap();
    let mut c = client.get_connection().unwrap();
    let v: Vec<redis::Value> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query(&mut c)
        .unwrap();
    match &v[1] {
        redis::Value::Int(n) => *n,
        other => panic!("{other:?}"),
    }
}

fn wait_subscribed(channel: &str) {
    let end = Instant::now() + Duration::from_secs(20);
    while numsub(channel) < 1 {
        assert!(Instant::now() < end, "tail never subscribed to {channel}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn publish_then_tail_json_and_count() {
    let ty = unique("cli.tail");
    let mut tail = cli()
        .args(["tail", &ty, "--json", "--count", "3"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_subscribed(&ty);
    let (code, out, err) = run(cli().args([
        "publish",
        &ty,
        r#"{"n":1}"#,
        "--count",
        "3",
        "--trace-id",
        "t-1",
    ]));
    assert_eq!(code, 0, "{err}");
    let results: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), 3);
    for r in &results {
        assert_eq!(r["success"], true, "{r}");
        assert_eq!(r["deliveredTo"], 1, "{r}");
    }
    let lines: Vec<String> = BufReader::new(tail.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .collect();
    assert!(tail.wait().unwrap().success());
    assert_eq!(lines.len(), 3, "{lines:?}");
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["type"], ty.as_str());
        assert_eq!(v["data"]["n"], 1);
        assert_eq!(v["metadata"]["traceId"], "t-1");
        assert_eq!(v["metadata"]["source"], "event-bus-cli");
    }
}

#[test]
fn tail_one_line_form_and_stdin_ndjson() {
    let ty = unique("cli.pretty");
    let mut tail = cli()
        .args(["tail", &format!("{ty}.*"), "--count", "2"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // A pattern subscription: probe until one publish reaches a subscriber (the first line).
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, out, err) = run(cli().args(["publish", &format!("{ty}.probe"), "0"]));
        assert_eq!(code, 0, "{err}");
        if out.contains(r#""deliveredTo":1"#) {
            break;
        }
        assert!(Instant::now() < end, "tail never subscribed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut p = cli()
        .args(["publish", &format!("{ty}.x"), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    p.stdin
        .take()
        .unwrap()
        .write_all(b"{\"k\":\"v\"}\n\n")
        .unwrap();
    let o = p.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8(o.stdout).unwrap().lines().count(),
        1,
        "blank lines skipped"
    );
    let lines: Vec<String> = BufReader::new(tail.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .collect();
    assert!(tail.wait().unwrap().success());
    assert_eq!(lines.len(), 2, "{lines:?}");
    // `time type channel source data`
    let f: Vec<&str> = lines[1].splitn(5, ' ').collect();
    assert_eq!(f.len(), 5, "{lines:?}");
    assert!(f[0].ends_with('Z'), "{lines:?}");
    assert_eq!(f[1], format!("{ty}.x"));
    assert_eq!(f[2], format!("{ty}.x"));
    assert_eq!(f[3], "event-bus-cli");
    assert_eq!(f[4], r#"{"k":"v"}"#);
    assert!(lines[0].contains(&format!("{ty}.probe")), "{lines:?}");
}

#[test]
fn unreachable_redis_names_the_address() {
    let (code, _, err) = run(Command::new(env!("CARGO_BIN_EXE_event-bus")).args([
        "--url",
        "redis://127.0.0.1:1",
        "health",
    ]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn password_in_url_is_warned_about() {
    let (code, _, err) = run(Command::new(env!("CARGO_BIN_EXE_event-bus")).args([
        "--url",
        "redis://:sekret@127.0.0.1:1",
        "health",
    ]));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("warning: the password in --url is visible"),
        "{err}"
    );
    assert!(!err.contains("sekret"), "{err}");
}

#[test]
fn password_env_must_be_set() {
    let (code, _, err) = run(cli().env_remove("EB_CLI_TEST_NO_SUCH_VAR").args([
        "--password-env",
        "EB_CLI_TEST_NO_SUCH_VAR",
        "health",
    ]));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("EB_CLI_TEST_NO_SUCH_VAR"), "{err}");
}

#[test]
fn bad_json_reports_the_position() {
    let (code, out, err) = run(cli().args(["publish", "cli.bad", r#"{"a":}"#]));
    assert_eq!(code, 4, "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("DATA is not valid JSON") && err.contains("line 1 column 6"),
        "{err}"
    );

    let mut p = cli()
        .args(["publish", "cli.bad", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    p.stdin
        .take()
        .unwrap()
        .write_all(b"{\"ok\":1}\n[1,2\n")
        .unwrap();
    let o = p.wait_with_output().unwrap();
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(
        o.stdout.is_empty(),
        "nothing is published when a line is bad"
    );
    assert!(err.contains("stdin line 2 is not valid JSON"), "{err}");

    let (code, _, err) = run(cli().args(["publish", "cli.bad", "@/nonexistent/file.json"]));
    assert_eq!(code, 4);
    assert!(err.contains("/nonexistent/file.json"), "{err}");

    let cfg = std::env::temp_dir().join(format!("{}.json", unique("cli-cfg")));
    std::fs::write(&cfg, "{\n  \"serviceName\": \"x\",\n  oops\n}").unwrap();
    let (code, _, err) = run(cli().arg("--config").arg(&cfg).arg("health"));
    std::fs::remove_file(&cfg).unwrap();
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("line 3"), "{err}");
}

#[test]
fn not_yet_available_commands() {
    for args in [
        &["dlq", "list", "photo.uploaded", "--group", "g"][..],
        &["tail", "x", "--stream"][..],
    ] {
        let (code, _, err) = run(cli().args(args));
        assert_eq!(code, 5, "{args:?}: {err}");
        assert!(err.contains("not yet available"), "{err}");
    }
    let (_, out, _) = run(cli().arg("--help"));
    assert!(out.contains("Not yet available"), "{out}");
}

#[test]
fn health_stats_topology() {
    let (code, out, err) = run(cli().arg("health"));
    assert_eq!(code, 0, "{err}");
    let h: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(h["status"], "healthy");
    let (code, out, _) = run(cli().arg("stats"));
    assert_eq!(code, 0);
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["topology"]["mode"], "single");
    assert!(s["latency"]["publish"].is_object());
    let (code, out, _) = run(cli().arg("topology"));
    assert_eq!(code, 0);
    let t: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(t["mode"], "single");
    assert_eq!(t["masters"].as_array().unwrap().len(), 1);
}

#[test]
fn bench_json_is_one_object() {
    for kind in ["pub", "e2e", "latency"] {
        let (code, out, err) = run(cli().args(["bench", kind, "--msgs", "200", "--json"]));
        assert_eq!(code, 0, "{kind}: {err}");
        assert_eq!(out.lines().count(), 1, "{out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["bench"], kind);
        assert_eq!(v["published"], 200);
        assert!(v["msgsPerSec"].as_f64().unwrap() > 0.0);
        let p = &v["publishLatencyMs"];
        assert_eq!(p["count"], 200);
        assert!(p["p50"].as_f64().unwrap() <= p["p99"].as_f64().unwrap());
        if kind != "pub" {
            assert_eq!(v["delivered"], 200);
            assert_eq!(v["deliveryLatencyMs"]["count"], 200);
        }
    }
}
