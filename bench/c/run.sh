#!/usr/bin/env bash
# C face benchmark: bench/c/bench.c against redis-benchmark on the same Redis, alternating,
# BENCH_ROUNDS rounds (default 3), medians.
#
#   bench/c/run.sh [--json PATH]
#
# Rows: burst publish (eb_publish_batch of 1,000 items, repeated) and 4 threads calling
# eb_publish vs `redis-benchmark -c 1 -P 64` (the server's ceiling); awaited eb_publish one at a
# time (rate, p50, p99) vs `-P 1`. Small (~320 B on the wire, the sample photo.uploaded) and 16 KB.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh
ensure_redis
command -v redis-benchmark >/dev/null || apt_install redis-tools
ensure_c_lib
BIN=$ROOT/target/bench-c
build_c_program "$BIN" bench/c/bench.c
export BENCH_C_BIN=$BIN
exec python3 - "$@" <<'PY'
import json, os, re, statistics, subprocess, sys
args = sys.argv[1:]
out_path = args[args.index("--json") + 1] if "--json" in args else None
rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
hp = url.split("://", 1)[1].split("@")[-1].split("/")[0]
host, _, port = hp.partition(":"); port = port or "6379"
BIN = os.environ["BENCH_C_BIN"]
SIZES = {"small": (0, 330), "16KB": (16384, 16384 + 240)}   # (data size, wire size), as bench/run.py

def c(scenario, n, size):
    o = subprocess.run([BIN, scenario, str(n), str(size)], capture_output=True, text=True, check=True).stdout
    return json.loads(o.strip().splitlines()[-1])

def rb(pipeline, n, wire):
    o = subprocess.run(["redis-benchmark", "-h", host, "-p", port, "-c", "1", "-P", str(pipeline), "-n", str(n),
                        "-q", "PUBLISH", "bench-ceiling", "x" * wire], capture_output=True, text=True, check=True).stdout
    return float(re.findall(r"([\d.]+) requests per second", o)[-1])

def rb_serial(n, wire):
    """-c 1 -P 1: requests per second, and the p50 and p99 of one round trip (ms)."""
    o = subprocess.run(["redis-benchmark", "-h", host, "-p", port, "-c", "1", "-P", "1", "-n", str(n), "--csv",
                        "PUBLISH", "bench-ceiling", "x" * wire], capture_output=True, text=True, check=True).stdout
    head, values = [line.replace('"', "").split(",") for line in o.strip().splitlines()[-2:]]
    row = dict(zip(head, values))
    return float(row["rps"]), float(row["p50_latency_ms"]), float(row["p99_latency_ms"])

med = statistics.median
rows = []
for label, (size, wire) in SIZES.items():
    n = 100_000 if label == "small" else 20_000
    f = {k: [] for k in ("batch", "threads", "ceil", "serial", "p50", "p99", "p1", "p1_p50", "p1_p99")}
    for r in range(rounds):
        print(f"[bench c] {label} round {r + 1}/{rounds}", file=sys.stderr, flush=True)
        f["batch"].append(c("batch", n, size)["rate"])
        f["ceil"].append(rb(64, n * 2, wire))
        f["threads"].append(c("threads", n // 2, size)["rate"])
        s = c("serial", n // 10, size)
        f["serial"].append(s["rate"]); f["p50"].append(s["p50_ms"]); f["p99"].append(s["p99_ms"])
        rps, q50, q99 = rb_serial(n // 10, wire)
        f["p1"].append(rps); f["p1_p50"].append(q50); f["p1_p99"].append(q99)
    ceil, p1 = med(f["ceil"]), med(f["p1"])
    rows += [
        {"scenario": f"burst publish, eb_publish_batch x1000 ({label})", "unit": "events/s", "higher_is_better": True,
         "project": med(f["batch"]), "peer": ceil, "peer_name": "redis-benchmark -c 1 -P 64 (server ceiling)"},
        {"scenario": f"burst publish, 4 threads x eb_publish ({label})", "unit": "events/s", "higher_is_better": True,
         "project": med(f["threads"]), "peer": ceil, "peer_name": "redis-benchmark -c 1 -P 64 (server ceiling)"},
        {"scenario": f"awaited publish, one at a time ({label})", "unit": "events/s", "higher_is_better": True,
         "project": med(f["serial"]), "peer": p1, "peer_name": "redis-benchmark -c 1 -P 1"},
        {"scenario": f"awaited publish p50 ({label})", "unit": "ms", "higher_is_better": False,
         "project": med(f["p50"]), "peer": med(f["p1_p50"]), "peer_name": "redis-benchmark -c 1 -P 1"},
        {"scenario": f"awaited publish p99 ({label})", "unit": "ms", "higher_is_better": False,
         "project": med(f["p99"]), "peer": med(f["p1_p99"]), "peer_name": "redis-benchmark -c 1 -P 1"},
    ]
doc = {"face": "c", "peer": "redis-benchmark", "rounds": rounds, "rows": rows}
if out_path:
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
print("| scenario | C | peer | peer is | ratio |\n|---|---:|---:|---|---:|")
for r in rows:
    p, q = r["project"], r["peer"]
    ratio = "-" if not q else (f"{p / q:.2f}x" if r["higher_is_better"] else f"{q / p:.2f}x")
    fmt = (lambda v: "-" if v is None else (f"{v:,.0f}" if r["unit"] == "events/s" else f"{v:.3f}"))
    print(f"| {r['scenario']} ({r['unit']}) | {fmt(p)} | {fmt(q)} | {r['peer_name']} | {ratio} |")
PY
