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
fn help_lists_dlq_and_stream() {
    let (code, out, _) = run(cli().arg("--help"));
    assert_eq!(code, 0);
    assert!(!out.contains("Not yet available"), "{out}");
    assert!(out.contains("event-bus dlq list"), "{out}");
    assert!(out.contains("--stream"), "{out}");
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
    for kind in ["pub", "sub", "e2e", "latency"] {
        let (code, out, err) =
            run(cli().args(["bench", kind, "--msgs", "200", "--clients", "2", "--json"]));
        assert_eq!(code, 0, "{kind}: {err}");
        assert!(
            err.is_empty(),
            "no progress bar without a terminal: {err:?}"
        );
        assert_eq!(out.lines().count(), 1, "{out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["bench"], kind);
        assert_eq!(v["published"], 200);
        assert!(v["msgsPerSec"].as_f64().unwrap() > 0.0);
        assert!(v["mbPerSec"].as_f64().unwrap() > 0.0);
        let p = &v["publishLatencyMs"];
        assert_eq!(p["count"], 200);
        assert!(p["p50"].as_f64().unwrap() <= p["p99"].as_f64().unwrap());
        let rows = v["perClient"].as_array().unwrap();
        let (pubs, subs): (Vec<&Value>, Vec<&Value>) =
            rows.iter().partition(|r| r["role"] == "pub");
        match kind {
            "pub" => {
                assert_eq!((pubs.len(), subs.len()), (2, 0));
                assert_eq!(
                    pubs.iter()
                        .map(|r| r["msgs"].as_u64().unwrap())
                        .sum::<u64>(),
                    200
                );
                assert!(v["delivered"].is_null());
            }
            "sub" => {
                // Fan-out: each of the 2 subscribers gets all 200 of the one publisher.
                assert_eq!((pubs.len(), subs.len()), (1, 2));
                assert!(subs
                    .iter()
                    .all(|r| r["msgs"] == 200 && r["latencyMs"]["count"] == 200));
                assert_eq!(v["delivered"], 400);
                assert_eq!(v["deliveryLatencyMs"]["count"], 400);
            }
            "e2e" => {
                assert_eq!((pubs.len(), subs.len()), (2, 1));
                assert_eq!(v["delivered"], 200);
                assert_eq!(v["deliveryLatencyMs"]["count"], 200);
            }
            _ => {
                assert_eq!((pubs.len(), subs.len()), (1, 1));
                assert_eq!(v["delivered"], 200);
            }
        }
        for r in rows {
            assert!(r["msgsPerSec"].as_f64().unwrap() > 0.0, "{r}");
        }
    }
}

#[test]
fn bench_csv_duration_and_rate() {
    let (code, out, err) =
        run(cli().args(["bench", "e2e", "--msgs", "300", "--clients", "3", "--csv"]));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(lines[0][0], "bench");
    assert_eq!(lines.len(), 1 + 3 + 1 + 1, "{out}");
    assert!(lines.iter().all(|l| l.len() == 12), "{out}");
    let total = lines.last().unwrap();
    assert_eq!(&total[1..4], ["total", "all", "300"]);
    assert_eq!(total[4], (300 * 200).to_string());
    let sub = &lines[4];
    assert_eq!(&sub[1..4], ["sub", "sub-1", "300"]);

    // --duration with --rate: it stops by itself and publishes at most rate x duration (+1).
    let (code, out, err) =
        run(cli().args(["bench", "pub", "--duration", "1s", "--rate", "50", "--json"]));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let n = v["published"].as_u64().unwrap();
    assert!((1..=51).contains(&n), "{v}");
    assert!(v["msgs"].is_null());

    let (code, _, err) = run(cli().args(["bench", "pub", "--duration", "soon"]));
    assert_eq!(code, 2, "{err}");
}

/// A durable subscriber in this process: group `group` on `ty`, failing while `fail` is set,
/// each delivery counted into `calls`.
fn durable_worker(
    ty: &str,
    group: &str,
    fail: std::sync::Arc<std::sync::atomic::AtomicBool>,
    calls: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> event_bus::EventBusClient {
    use std::sync::atomic::Ordering::SeqCst;
    let bus = event_bus::EventBusClient::from_json(
        &serde_json::json!({"serviceName": "cli-test-worker", "redis": {"url": url()}}).to_string(),
    )
    .unwrap();
    let handler = std::sync::Arc::new(move |_d: event_bus::Delivery| {
        calls.fetch_add(1, SeqCst);
        let poison = fail.load(SeqCst);
        async move {
            if poison {
                Err(event_bus::HandlerError::new("poison pill"))
            } else {
                Ok(())
            }
        }
    });
    let opts = event_bus::SubscriptionOptions::from_json(
        &serde_json::json!({"durable": {"group": group, "consumer": "w1", "maxDeliveries": 1,
            "startFrom": "all", "block": 200}})
        .to_string(),
    )
    .unwrap();
    let b = bus.clone();
    let t = ty.to_string();
    event_bus::runtime::block_on(async move {
        b.connect().await.unwrap();
        b.subscribe_target(t.as_str().into(), handler, opts)
            .await
            .unwrap();
    });
    bus
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn del_keys(keys: &[String]) {
    let client = redis::Client::open(url()).unwrap();
    let mut c = client.get_connection().unwrap();
    let _: () = redis::cmd("DEL").arg(keys).query(&mut c).unwrap();
}

fn dlq_list(ty: &str, group: &str) -> Vec<Value> {
    let (code, out, err) = run(cli().args(["dlq", "list", ty, "--group", group, "--json"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn dlq_list_replay_purge() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
    use std::sync::Arc;
    let ty = unique("cli.dlq");
    let keys = [format!("events:{{{ty}}}"), format!("events:{{{ty}}}:dead")];
    let fail = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicU64::new(0));
    let worker = durable_worker(&ty, "billing", fail.clone(), calls.clone());

    let (code, out, err) = run(cli().args(["publish", &ty, r#"{"n":7}"#, "--persistent"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(r#""success":true"#), "{out}");
    wait_for("a dead letter", || dlq_list(&ty, "billing").len() == 1);
    let list = dlq_list(&ty, "billing");
    assert_eq!(list[0]["event"]["data"]["n"], 7);
    assert_eq!(list[0]["event"]["type"], ty.as_str());
    assert_eq!(list[0]["error"]["message"], "poison pill");
    assert_eq!(list[0]["deliveries"], 1);
    assert!(dlq_list(&ty, "other-group").is_empty());
    // The text form: one line per letter.
    let (code, out, err) = run(cli().args(["dlq", "list", &ty, "--group", "billing"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains("deliveries=1") && out.contains("error=poison pill"),
        "{out}"
    );

    // Replay: back on the stream, delivered again to the group, which now succeeds.
    fail.store(false, SeqCst);
    let before = calls.load(SeqCst);
    let (code, out, err) = run(cli().args(["dlq", "replay", &ty, "--group", "billing"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "1");
    wait_for("the replayed delivery", || calls.load(SeqCst) == before + 1);
    assert!(dlq_list(&ty, "billing").is_empty());

    // Two more poison events; purge removes both and says so.
    fail.store(true, SeqCst);
    let (code, _, err) =
        run(cli().args(["publish", &ty, r#"{"n":8}"#, "--persistent", "--count", "2"]));
    assert_eq!(code, 0, "{err}");
    wait_for("two dead letters", || dlq_list(&ty, "billing").len() == 2);
    let (code, out, err) = run(cli().args(["dlq", "purge", &ty, "--group", "billing", "--json"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["purged"], 2);
    assert!(dlq_list(&ty, "billing").is_empty());
    let (code, out, _) = run(cli().args(["dlq", "purge", &ty, "--group", "billing"]));
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "0");

    event_bus::runtime::block_on(async move {
        let _ = worker.disconnect().await;
    });
    del_keys(&keys);
}

/// A stream entry as the redis crate reads it: id and field-value pairs.
type Entry = (String, Vec<(String, String)>);

fn redis_conn() -> redis::Connection {
    redis::Client::open(url())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// `(id, delivery count)` of each of `group`'s pending entries.
fn pending_counts(c: &mut redis::Connection, key: &str, group: &str) -> Vec<(String, i64)> {
    let v: Vec<(String, String, i64, i64)> = redis::cmd("XPENDING")
        .arg(key)
        .arg(group)
        .arg("-")
        .arg("+")
        .arg(100)
        .query(c)
        .unwrap();
    v.into_iter().map(|(id, _, _, n)| (id, n)).collect()
}

/// The group fields an observer must not change: name, consumers, pending, last-delivered-id,
/// entries-read (not lag: a publish changes it).
fn group_state(c: &mut redis::Connection, key: &str) -> Vec<Vec<(String, String)>> {
    let groups: Vec<Vec<redis::Value>> =
        redis::cmd("XINFO").arg("GROUPS").arg(key).query(c).unwrap();
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Int(i) => i.to_string(),
        other => format!("{other:?}"),
    };
    groups
        .iter()
        .map(|g| {
            g.chunks(2)
                .map(|kv| (text(&kv[0]), text(&kv[1])))
                .filter(|(k, _)| {
                    [
                        "name",
                        "consumers",
                        "pending",
                        "last-delivered-id",
                        "entries-read",
                    ]
                    .contains(&k.as_str())
                })
                .collect()
        })
        .collect()
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn tail_stream_reads_without_touching_groups() {
    let ty = unique("cli.stream");
    let key = format!("events:{{{ty}}}");
    let mut c = redis_conn();
    // A real worker's group: two of three entries delivered to it and pending, one not yet.
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg("workers")
        .arg("0")
        .arg("MKSTREAM")
        .query(&mut c)
        .unwrap();
    for n in 1..=3 {
        let (code, _, err) = run(cli().args([
            "publish",
            &ty,
            &format!(r#"{{"n":{n},"k":"{}"}}"#, if n == 2 { "b" } else { "a" }),
            "--persistent",
        ]));
        assert_eq!(code, 0, "{err}");
    }
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg("w1")
        .arg("COUNT")
        .arg(2)
        .arg("STREAMS")
        .arg(&key)
        .arg(">")
        .query(&mut c)
        .unwrap();
    let pending = pending_counts(&mut c, &key, "workers");
    assert_eq!(pending.len(), 2);
    let groups = group_state(&mut c, &key);

    // Catch up: everything the stream holds, oldest first, wire-format JSON.
    let (code, out, err) = run(cli().args(["tail", &ty, "--stream", "--json", "--count", "3"]));
    assert_eq!(code, 0, "{err}");
    let got = json_lines(&out);
    assert_eq!(
        got.iter()
            .map(|v| v["data"]["n"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(got
        .iter()
        .all(|v| v["type"] == ty.as_str() && v["metadata"]["source"] == "event-bus-cli"));

    // --since a stream id (inclusive): entries 2 and 3.
    let ids: Vec<Entry> = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query(&mut c)
        .unwrap();
    let (code, out, err) =
        run(cli().args(["tail", &ty, "--since", &ids[1].0, "--json", "--count", "2"]));
    assert_eq!(code, 0, "{err}");
    let got = json_lines(&out);
    assert_eq!(got[0]["data"]["n"], 2);
    assert_eq!(got[1]["data"]["n"], 3);
    // --since a duration ago, with a filter: only the entry whose data.k is "b".
    let (code, out, err) = run(cli().args([
        "tail", &ty, "--since", "1h", "--filter", "data.k=b", "--json", "--count", "1",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(json_lines(&out)[0]["data"]["n"], 2);
    // Numbers compare as numbers, and every filter must match.
    let (code, out, err) = run(cli().args([
        "tail",
        &ty,
        "--stream",
        "--filter",
        "data.n=3",
        "--filter",
        "source=event-bus-cli",
        "--count",
        "1",
    ]));
    assert_eq!(code, 0, "{err}");
    let f: Vec<&str> = out.trim_end().splitn(5, ' ').collect();
    assert_eq!(f[1], ty.as_str(), "{out}");
    assert_eq!(f[4], r#"{"n":3,"k":"a"}"#, "{out}");

    // `--since now`: only what is added after it started (XREAD BLOCK).
    let watcher = unique("cli-watcher").replace('.', "-");
    let live = cli()
        .args([
            "--service",
            &watcher,
            "tail",
            &ty,
            "--since",
            "now",
            "--json",
            "--count",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It is blocked in XREAD once a client of the CLI shows `cmd=xread`.
    wait_for("the tail's blocking XREAD", || {
        let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut c).unwrap();
        list.lines()
            .any(|l| l.contains("cmd=xread") && l.contains(&watcher))
    });
    let (code, _, err) = run(cli().args(["publish", &ty, r#"{"n":4}"#, "--persistent"]));
    assert_eq!(code, 0, "{err}");
    let o = live.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = json_lines(&String::from_utf8(o.stdout).unwrap());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["data"]["n"], 4);

    // The group is exactly as the worker left it: no new group, same pending entries with the
    // same delivery counts, same last-delivered-id and entries-read.
    assert_eq!(pending_counts(&mut c, &key, "workers"), pending);
    assert_eq!(group_state(&mut c, &key), groups);
    let n_groups: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(&key)
        .query(&mut c)
        .unwrap();
    assert_eq!(n_groups.len(), 1);
    // The worker still gets the entries it was not given yet (3 and 4): none was taken.
    let v: Vec<(String, Vec<Entry>)> = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg("w1")
        .arg("COUNT")
        .arg(10)
        .arg("STREAMS")
        .arg(&key)
        .arg(">")
        .query(&mut c)
        .unwrap();
    assert_eq!(v[0].1.len(), 2);

    // Refusals: a glob, a bad --since.
    let (code, _, err) = run(cli().args(["tail", "photo.*", "--stream"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not patterns"), "{err}");
    let (code, _, err) = run(cli().args(["tail", &ty, "--since", "yesterday"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--since yesterday"), "{err}");
    del_keys(&[key]);
}

#[test]
fn live_tail_filter() {
    let ty = unique("cli.filter");
    let tail = cli()
        .args([
            "tail", &ty, "--json", "--count", "1", "--filter", "data.k=b",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_subscribed(&ty);
    for k in ["a", "c", "b"] {
        let (code, _, err) = run(cli().args(["publish", &ty, &format!(r#"{{"k":"{k}"}}"#)]));
        assert_eq!(code, 0, "{err}");
    }
    let o = tail.wait_with_output().unwrap();
    assert!(o.status.success());
    let got = json_lines(&String::from_utf8(o.stdout).unwrap());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["data"]["k"], "b");
}
