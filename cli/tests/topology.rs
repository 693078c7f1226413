//! The connection flags against real topologies started for the test: `--cluster` and
//! `--sentinels --name` (scripts/redis-topology.sh), `--tls-ca` (a TLS-only redis-server with a
//! throwaway CA) and `--password-env` (a server with `requirepass`).

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::process::Command;

use common::topology::Topology;
use common::{RedisServer, TlsFiles};
use serde_json::Value;

/// The binary with no connection from the environment.
fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_event-bus"));
    c.env_remove("REDIS_URL");
    c
}

fn run(c: &mut Command) -> (i32, String, String) {
    let o = c.output().expect("runs");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8(o.stdout).unwrap(),
        String::from_utf8(o.stderr).unwrap(),
    )
}

#[test]
fn cluster_flag() {
    let t = Topology::start("cluster");
    let seed = t.addrs("REDIS_CLUSTER_MASTERS")[0].clone();
    let (code, out, err) = run(cli().args(["--cluster", &seed, "topology"]));
    assert_eq!(code, 0, "{err}");
    let top: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(top["mode"], "cluster", "{top}");
    assert_eq!(top["masters"].as_array().unwrap().len(), 3, "{top}");
    let (code, out, err) = run(cli().args(["--cluster", &seed, "health"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["status"],
        "healthy"
    );
    // A persistent publish and a stream read, each routed to the type's slot.
    let ty = common::unique("cli.cluster");
    let (code, out, err) = run(cli().args([
        "--cluster",
        &seed,
        "publish",
        &ty,
        r#"{"n":1}"#,
        "--persistent",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(r#""success":true"#), "{out}");
    let (code, out, err) = run(cli().args([
        "--cluster",
        &seed,
        "tail",
        &ty,
        "--stream",
        "--json",
        "--count",
        "1",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["data"]["n"], 1);
}

#[test]
fn sentinel_flags() {
    let t = Topology::start("sentinel");
    let sentinels = t.env["REDIS_SENTINELS"].clone();
    let name = t.env["REDIS_SENTINEL_NAME"].clone();
    let (code, out, err) =
        run(cli().args(["--sentinels", &sentinels, "--name", &name, "topology"]));
    assert_eq!(code, 0, "{err}");
    let top: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(top["mode"], "sentinel", "{top}");
    assert!(out.contains(&t.env["REDIS_MASTER"]), "{out}");
    let (code, _, err) = run(cli().args(["--sentinels", &sentinels, "--name", &name, "health"]));
    assert_eq!(code, 0, "{err}");
    // A master name the sentinels do not know: exit 3, naming it.
    let (code, _, err) = run(cli().args(["--sentinels", &sentinels, "--name", "nosuch", "health"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("nosuch"), "{err}");
}

#[test]
fn tls_ca_flag() {
    let files = TlsFiles::generate();
    let server = RedisServer::start_tls(&files);
    let url = format!("redis://127.0.0.1:{}", server.port);
    let ca = files.ca.to_str().unwrap().to_string();
    let (code, out, err) = run(cli().args(["--url", &url, "--tls-ca", &ca, "health"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["status"],
        "healthy"
    );
    // Another CA does not vouch for this server: refused, exit 3 with the address.
    let other = TlsFiles::generate();
    let (code, _, err) = run(cli().args([
        "--url",
        &url,
        "--tls-ca",
        other.ca.to_str().unwrap(),
        "health",
    ]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains(&format!("127.0.0.1:{}", server.port)), "{err}");
    // Not a certificate file.
    let (code, _, err) = run(cli().args(["--url", &url, "--tls-ca", "/etc/hostname", "health"]));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("no PEM certificate"), "{err}");
}

#[test]
fn password_env_and_redaction() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret-pw"]);
    let url = server.url();
    let (code, out, err) = run(cli().env("EB_CLI_PW", "s3cret-pw").args([
        "--url",
        &url,
        "--password-env",
        "EB_CLI_PW",
        "health",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("s3cret") && !err.contains("s3cret"));
    let (code, out, err) = run(cli().env("EB_CLI_PW", "wrong").args([
        "--url",
        &url,
        "--password-env",
        "EB_CLI_PW",
        "health",
    ]));
    assert_eq!(code, 3, "{err}");
    assert!(!out.contains("wrong") && !err.contains("wrong"), "{err}");
    // `config` shows what would be used, without the secret.
    let (code, out, err) = run(cli().env("EB_CLI_PW", "s3cret-pw").args([
        "--url",
        &url,
        "--password-env",
        "EB_CLI_PW",
        "--redis-user",
        "ops",
        "config",
    ]));
    assert_eq!(code, 0, "{err}");
    let cfg: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(cfg["redis"]["password"], "<redacted>");
    assert_eq!(cfg["redis"]["username"], "ops");
    assert_eq!(cfg["redis"]["url"], url.as_str());
    assert!(!out.contains("s3cret"));
}

#[test]
fn built_configs_and_refusals() {
    let cfg = |args: &[&str]| -> Value {
        let (code, out, err) = run(cli().args(args).arg("config"));
        assert_eq!(code, 0, "{args:?}: {err}");
        serde_json::from_str(&out).unwrap()
    };
    let c = cfg(&["--cluster", "10.0.0.1:7000,10.0.0.2"]);
    assert_eq!(
        c["redis"]["cluster"],
        serde_json::json!([{"host":"10.0.0.1","port":7000},{"host":"10.0.0.2","port":6379}])
    );
    assert!(c["redis"].get("url").is_none());
    let c = cfg(&[
        "--sentinels",
        "10.0.0.5:26380,10.0.0.6",
        "--name",
        "mymaster",
    ]);
    assert_eq!(
        c["redis"]["sentinels"],
        serde_json::json!([{"host":"10.0.0.5","port":26380},{"host":"10.0.0.6","port":26379}])
    );
    assert_eq!(c["redis"]["name"], "mymaster");
    // REDIS_URL gives way to --cluster; --url does not.
    let (code, out, err) =
        run(cli()
            .env("REDIS_URL", "redis://elsewhere:1")
            .args(["--cluster", "h:1", "config"]));
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("elsewhere"), "{out}");
    let (code, _, err) = run(cli().args(["--url", "redis://h:1", "--cluster", "h:1", "config"]));
    assert_eq!(code, 2, "{err}");
    // --sentinels needs --name; --cluster and --sentinels are exclusive; bad ports.
    for args in [
        &["--sentinels", "h:1", "config"][..],
        &[
            "--cluster",
            "h:1",
            "--sentinels",
            "h:2",
            "--name",
            "m",
            "config",
        ][..],
        &["--cluster", "h:port", "config"][..],
    ] {
        let (code, _, err) = run(cli().args(args));
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    // An unreachable cluster seed: exit 3 naming it.
    let (code, _, err) = run(cli().args(["--cluster", "127.0.0.1:1", "health"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("127.0.0.1:1"), "{err}");
    // --ask-password without a terminal: a clear failure, not a hang.
    let (code, _, err) = run(cli().stdin(std::process::Stdio::null()).args([
        "--ask-password",
        "--url",
        "redis://127.0.0.1:1",
        "config",
    ]));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("--ask-password"), "{err}");
}
