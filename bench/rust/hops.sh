#!/usr/bin/env bash
# The floor of each hop of one awaited publish, against `redis-benchmark -c 1 -P 1` run in the
# same rounds (alternating), medians of BENCH_ROUNDS (default 3). Scenarios of the Rust driver:
#   serial        client.publish(...).await one at a time, caller on its own tokio runtime
#   serial-core   the same loop as a task of the core's runtime (no runtime crossing)
#   serial-redis  the redis crate's multiplexed connection alone (caller + driver task)
#   serial-raw    PUBLISH written and read on the caller's task over a TCP socket
# Usage: [BENCH_BIN=path] bench/rust/hops.sh [N] [SIZE]   (N publishes per run, SIZE bytes of
# event data)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-20000}
SIZE=${2:-200}
ROUNDS=${BENCH_ROUNDS:-3}
WIRE=$((SIZE + 130)) # the envelope `serial` publishes for SIZE bytes of data
url=${REDIS_URL:-redis://127.0.0.1:6379}
hp=${url#redis://}; hp=${hp%/}; host=${hp%:*}; port=${hp##*:}
# BENCH_BIN: a driver built already (to compare two builds); else a release build now.
bin=${BENCH_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release -q -p event-bus-bench
  bin=${CARGO_TARGET_DIR:-target}/release/event-bus-bench
fi
payload=$(printf 'x%.0s' $(seq "$WIRE"))
out=$(mktemp)
for r in $(seq "$ROUNDS"); do
  echo "round $r/$ROUNDS" >&2
  for s in redis-benchmark serial serial-core serial-redis serial-raw; do
    if [ "$s" = redis-benchmark ]; then
      rate=$(redis-benchmark -h "$host" -p "$port" -c 1 -P 1 -n "$N" -q PUBLISH hops-ceiling "$payload" \
        | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1)
      echo "{\"scenario\":\"redis-benchmark\",\"rate\":$rate,\"p50_ms\":null,\"p99_ms\":null}" >>"$out"
    else
      "$bin" "$s" "$N" "$SIZE" >>"$out"
    fi
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault(r["scenario"], []).append(r)
ceil = statistics.median(r["rate"] for r in by["redis-benchmark"])
print(f"| hop floor | publishes/s (median) | vs redis-benchmark -c1 -P1 | p50 ms | p99 ms | runs (publishes/s) |")
print(f"|---|---:|---:|---:|---:|---|")
for name in ["redis-benchmark", "serial-raw", "serial-redis", "serial-core", "serial"]:
    rs = by.get(name, [])
    if not rs:
        continue
    rate = statistics.median(r["rate"] for r in rs)
    p50 = [r["p50_ms"] for r in rs if r["p50_ms"] is not None]
    p99 = [r["p99_ms"] for r in rs if r["p99_ms"] is not None]
    f = lambda v: f"{statistics.median(v):.3f}" if v else "-"
    runs = ", ".join(f"{r['rate']:,.0f}" for r in rs)
    print(f"| {name} | {rate:,.0f} | {rate / ceil:.2f}x | {f(p50)} | {f(p99)} | {runs} |")
PY
rm -f "$out"
