"""Benchmark harness: every face against its peer, in one run, on one Redis.

    bench/run.sh                 # builds what it needs (release), runs everything
    BENCH_ROUNDS=5 BENCH_FACES="rust node" bench/run.sh

Each face's driver alternates project and peer over several rounds and reports medians; this
script collects them, adds the Rust core's figures against `redis-benchmark` (the server's own
ceiling), and writes bench/results/latest.md (the README table) and latest.json (raw figures).
"""
from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
FACES = os.environ.get("BENCH_FACES", "rust c node python").split()
PY = os.environ.get("PYTHON", os.path.join(ROOT, ".venv", "bin", "python"))
RUST_BIN = os.environ.get("BENCH_RUST_BIN", os.path.join(ROOT, "target", "release", "event-bus-bench"))
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
# Wire sizes of the two events (envelope included): the sample photo.uploaded, and 16 KB.
SIZES = {"small": (0, 330), "16KB": (16384, 16384 + 240)}


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def redis_host_port() -> tuple[str, str]:
    hp = REDIS_URL.split("://", 1)[1].split("@")[-1].split("/")[0]
    host, _, port = hp.partition(":")
    return host, port or "6379"


def redis_benchmark(pipeline: int, n: int, size: int) -> float:
    host, port = redis_host_port()
    out = subprocess.run(
        ["redis-benchmark", "-h", host, "-p", port, "-c", "1", "-P", str(pipeline), "-n", str(n), "-q",
         "PUBLISH", "bench-ceiling", "x" * size],
        capture_output=True, text=True, check=True,
    ).stdout
    m = re.findall(r"([\d.]+) requests per second", out)
    return float(m[-1])


def redis_benchmark_serial(n: int, size: int) -> tuple[float, float, float]:
    """`redis-benchmark -c 1 -P 1`: requests per second, and the p50 and p99 of one round trip (ms)."""
    host, port = redis_host_port()
    out = subprocess.run(
        ["redis-benchmark", "-h", host, "-p", port, "-c", "1", "-P", "1", "-n", str(n), "--csv",
         "PUBLISH", "bench-ceiling", "x" * size],
        capture_output=True, text=True, check=True,
    ).stdout
    head, values = [line.replace('"', "").split(",") for line in out.strip().splitlines()[-2:]]
    row = dict(zip(head, values))
    return float(row["rps"]), float(row["p50_latency_ms"]), float(row["p99_latency_ms"])


DRAIN = r"""
import socket, sys
host, port, chan = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((host, port))
s.sendall(b"SUBSCRIBE %s\r\n" % chan.encode())
total = 0
sys.stdout.write("READY\n"); sys.stdout.flush()
while True:
    b = s.recv(1 << 20)
    if not b:
        break
    total += len(b)
"""


def redis_ceiling_with_subscriber(n: int, size: int) -> float:
    """PUBLISH -P 64 while one subscriber drains every message: the most events per second the
    server itself can carry end to end on this machine (a raw socket reader, the cheapest
    possible subscriber; it is checked to be still subscribed afterwards)."""
    host, port = redis_host_port()
    chan = f"bench-ceiling-sub-{os.getpid()}"
    drain = subprocess.Popen([sys.executable, "-c", DRAIN, host, port, chan], stdout=subprocess.PIPE, text=True)
    try:
        assert drain.stdout is not None and drain.stdout.readline().strip() == "READY"
        time.sleep(0.2)
        out = subprocess.run(
            ["redis-benchmark", "-h", host, "-p", port, "-c", "1", "-P", "64", "-n", str(n), "-q",
             "PUBLISH", chan, "x" * size],
            capture_output=True, text=True, check=True,
        ).stdout
        subs = subprocess.run(["redis-cli", "-h", host, "-p", port, "PUBSUB", "NUMSUB", chan],
                              capture_output=True, text=True, check=True).stdout.split()
        if subs[-1] != "1":
            raise RuntimeError("the draining subscriber was disconnected during the ceiling run")
        m = re.findall(r"([\d.]+) requests per second", out)
        return float(m[-1])
    finally:
        drain.kill()
        drain.wait()


def rust(scenario: str, n: int, size: int) -> dict[str, Any]:
    out = subprocess.run([RUST_BIN, scenario, str(n), str(size)], capture_output=True, text=True, check=True,
                         env={**os.environ, "REDIS_URL": REDIS_URL}).stdout
    figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return figures


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def rust_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for label, (size, wire) in SIZES.items():
        burst, batch, ceil, serial, p1, p50, p99, e2e, ceil_sub = [], [], [], [], [], [], [], [], []
        p1_p50, p1_p99 = [], []
        n = 100_000 if label == "small" else 20_000
        for r in range(ROUNDS):
            log(f"rust {label} round {r + 1}/{ROUNDS}")
            burst.append(rust("burst", n, size)["rate"])
            batch.append(rust("batch", n, size)["rate"])
            ceil.append(redis_benchmark(64, n * 2, wire))
            s = rust("serial", n // 10, size)
            serial.append(s["rate"]); p50.append(s["p50_ms"]); p99.append(s["p99_ms"])
            rps, q50, q99 = redis_benchmark_serial(n // 10, wire)
            p1.append(rps); p1_p50.append(q50); p1_p99.append(q99)
            e2e.append(rust("e2e", n, size)["rate"])
            ceil_sub.append(redis_ceiling_with_subscriber(n, wire))
        rows += [
            {"scenario": f"burst publish, 1,000 concurrent publish() ({label})", "unit": "events/s", "higher_is_better": True,
             "project": med(burst), "peer": med(ceil), "peer_name": "redis-benchmark -P 64 (server ceiling)"},
            {"scenario": f"burst publish, publish_batch x1000 ({label})", "unit": "events/s", "higher_is_better": True,
             "project": med(batch), "peer": med(ceil), "peer_name": "redis-benchmark -P 64 (server ceiling)"},
            {"scenario": f"awaited publish, one at a time ({label})", "unit": "events/s", "higher_is_better": True,
             "project": med(serial), "peer": med(p1), "peer_name": "redis-benchmark -P 1"},
            {"scenario": f"awaited publish p50 ({label})", "unit": "ms", "higher_is_better": False,
             "project": med(p50), "peer": med(p1_p50), "peer_name": "redis-benchmark -P 1"},
            {"scenario": f"awaited publish p99 ({label})", "unit": "ms", "higher_is_better": False,
             "project": med(p99), "peer": med(p1_p99), "peer_name": "redis-benchmark -P 1"},
            {"scenario": f"end-to-end into a handler, one process ({label})", "unit": "events/s", "higher_is_better": True,
             "project": med(e2e), "peer": med(ceil_sub),
             "peer_name": "redis-benchmark -P 64 with one raw subscriber draining (end-to-end ceiling)"},
        ]
    fan, idle = [], []
    for r in range(ROUNDS):
        log(f"rust fan-out and idle latency round {r + 1}/{ROUNDS}")
        fan.append(rust("fanout", 20_000, 0)["rate"])
        idle.append(rust("idle", 1_000, SIZES["small"][0]))
    rows.append({"scenario": "fan-out: 1 publisher, 8 clients x 50 patterns, delivered", "unit": "events/s",
                 "higher_is_better": True, "project": med(fan), "peer": None, "peer_name": "-"})
    # The core's own floor under the Node and Python latency rows (no host thread involved).
    for q in ("p50", "p99"):
        rows.append({"scenario": f"publish-to-handler latency {q}, idle, one process (small)", "unit": "ms",
                     "higher_is_better": False, "project": med([x[f"{q}_ms"] for x in idle]), "peer": None,
                     "peer_name": "-"})
    return rows


def face_rows(face: str, cmd: list[str]) -> list[dict[str, Any]]:
    path = os.path.join(RESULTS, f"{face}.json")
    log(f"{face}: {' '.join(cmd)}")
    subprocess.run(cmd + ["--json", path], check=True, cwd=ROOT, env={**os.environ, "BENCH_ROUNDS": str(ROUNDS)})
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    for row in data["rows"]:
        row.setdefault("peer_name", data.get("peer", "peer"))
    return list(data["rows"])


def fmt(v: Any, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "events/s":
        return f"{v:,.0f}"
    return f"{v:,.2f}"


def ratio(row: dict[str, Any]) -> str:
    p, q = row.get("project"), row.get("peer")
    if not p or not q:
        return "-"
    return f"{p / q:.2f}x" if row["higher_is_better"] else f"{q / p:.2f}x"


def main() -> int:
    os.makedirs(RESULTS, exist_ok=True)
    started = time.time()
    sections: dict[str, list[dict[str, Any]]] = {}
    drivers = {
        "c": ["bash", "bench/c/run.sh"],
        "node": ["node", "bench/node/bench.js"],
        "python": [PY, "bench/python/bench.py"],
    }
    for face in FACES:
        try:
            sections[face] = rust_rows() if face == "rust" else face_rows(face, drivers[face])
        except Exception as e:  # a face that fails is reported, the others still run
            log(f"{face} failed: {e}")
            sections[face] = [{"scenario": f"FAILED: {e}", "unit": "", "higher_is_better": True,
                               "project": None, "peer": None, "peer_name": "-"}]
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), Redis at {REDIS_URL}"
    lines = [f"Machine: {machine}. {ROUNDS} rounds, medians; ratio > 1 means the project is better.", ""]
    names = {"rust": "Rust core", "c": "C", "node": "Node", "python": "Python"}
    for face, rows in sections.items():
        lines += [f"**{names.get(face, face)}**", "", "| scenario | project | peer | peer is | ratio |", "|---|---:|---:|---|---:|"]
        for r in rows:
            unit = r.get("unit", "")
            lines.append(f"| {r['scenario']} ({unit}) | {fmt(r.get('project'), unit)} | {fmt(r.get('peer'), unit)} | {r.get('peer_name', '')} | {ratio(r)} |")
        lines.append("")
    md = "\n".join(lines)
    with open(os.path.join(RESULTS, "latest.md"), "w", encoding="utf-8") as f:
        f.write(md)
    with open(os.path.join(RESULTS, "latest.json"), "w", encoding="utf-8") as f:
        json.dump({"machine": machine, "rounds": ROUNDS, "seconds": time.time() - started, "faces": sections}, f, indent=2)
    print(md)
    log(f"done in {time.time() - started:.0f} s: bench/results/latest.md, latest.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
