"""Cross-language test: Node, Python, C and an unchanged TS service (raw redis-py) in their own
processes, each publishing and each receiving through one Redis.

Protocol for a participant `P FACE RUN PLAN OUT READY GO`: connect, subscribe every pattern of
the plan, write READY, wait for GO, publish its items in order, collect every event whose
`data.run` is RUN until it has `expected` of them (or the timeout), write them as JSON lines to
OUT, disconnect and exit 0.

Checks, for every receiver and every publisher: all items arrive exactly once and intact (data
deep-equal, type, channel by the room > user > broadcast > type rule, metadata source/userId),
and the publisher's `xl.RUN.*` events arrive in publish order.

Environment: CROSS_FACES (the participants), CROSS_PUBLISHERS (those of them that publish;
default all; the others only receive), CROSS_REDIS (the `redis` config section as JSON for the
participants, e.g. a cluster's seeds; default REDIS_URL) and CROSS_LABEL (names the run in the
summary line). CROSS_DURABLE=1 runs the durable round instead: the publishers publish
persistent events of one type, and every participant reads that type's stream as its own
consumer group (the plan's `subscribeOptions[face]`), so each group gets every event once.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = os.environ.get("PYTHON", sys.executable)
C_BIN = os.environ.get("CROSS_C_BIN", os.path.join(ROOT, "target", "cross-participant"))
HERE = os.path.join(ROOT, "tests", "cross")

COMMANDS = {
    "node": ["node", os.path.join(HERE, "participant.js")],
    "python": [PY, os.path.join(HERE, "participant.py")],
    "c": [C_BIN],
    "raw": [PY, os.path.join(HERE, "raw_ts.py")],
}
DURABLE = os.environ.get("CROSS_DURABLE", "0") == "1"
FACES = [f for f in os.environ.get("CROSS_FACES", "node python c raw").split()]
PUBLISHERS = os.environ.get("CROSS_PUBLISHERS", " ".join(FACES)).split()
LABEL = os.environ.get("CROSS_LABEL", "cross-language")

TEXT = 'héllo ✓ 日本語 🎉 "quoted" \\ back\nslash \u0000 nul \t tab \u2028'


def plan_items(run: str, face: str) -> list[dict[str, Any]]:
    base = {"run": run, "from": face}
    items: list[dict[str, Any]] = []
    for seq in range(5):
        items.append({
            "type": f"xl.{run}.seq",
            "data": {**base, "seq": seq, "text": TEXT, "nested": {"a": [1, 2, {"b": None}], "n": 1.5, "t": True, "neg": -7, "big": 9007199254740991}},
        })
    blob = ("0123456789abcdefé✓" * 30000)[: 400 * 1024]
    items.append({"type": f"xl.{run}.big", "data": {**base, "seq": 5, "blob": blob}})
    items.append({"type": f"xl.{run}.room", "data": {**base, "seq": 6}, "options": {"room": f"xl-{run}"}})
    items.append({"type": f"xl.{run}.user", "data": {**base, "seq": 7}, "options": {"userId": f"xl-{run}"}})
    items.append({"type": f"xl.{run}.all", "data": {**base, "seq": 8}, "options": {"broadcast": True}})
    return items


def durable_items(run: str, face: str) -> list[dict[str, Any]]:
    base = {"run": run, "from": face}
    return [
        {"type": f"xl.{run}.durable", "data": {**base, "seq": seq, "text": TEXT}, "options": {"persistent": True}}
        for seq in range(20)
    ]


def expected_channel(item: dict[str, Any]) -> str:
    o = item.get("options") or {}
    if o.get("room"):
        return f"room:{o['room']}"
    if o.get("userId"):
        return f"user:{o['userId']}"
    if o.get("broadcast"):
        return "broadcast"
    return str(item["type"])


def main() -> int:
    run = uuid.uuid4().hex[:10]
    tmp = tempfile.mkdtemp(prefix="xl-")
    make = durable_items if DURABLE else plan_items
    items = {f: make(run, f) if f in PUBLISHERS else [] for f in FACES}
    plan: dict[str, Any] = {
        "patterns": [f"xl.{run}.*", f"room:xl-{run}", f"user:xl-{run}", "broadcast"],
        "items": items,
        "expected": sum(len(v) for v in items.values()),
        "timeoutMs": 30000,
    }
    if DURABLE:
        plan["patterns"] = [f"xl.{run}.durable"]
        plan["subscribeOptions"] = {
            f: {"retryOnError": False, "durable": {"group": f"xl-{run}-{f}", "startFrom": "all"}} for f in FACES
        }
    plan_file = os.path.join(tmp, "plan.json")
    with open(plan_file, "w", encoding="utf-8") as f:
        json.dump(plan, f, ensure_ascii=False)
    go = os.path.join(tmp, "go")
    procs = {}
    for face in FACES:
        args = COMMANDS[face] + [face, run, plan_file, os.path.join(tmp, f"{face}.out"), os.path.join(tmp, f"{face}.ready"), go]
        procs[face] = subprocess.Popen(args, cwd=ROOT)
    deadline = time.time() + 60
    while time.time() < deadline and not all(os.path.exists(os.path.join(tmp, f"{f}.ready")) for f in FACES):
        if any(p.poll() not in (None, 0) for p in procs.values()):
            break
        time.sleep(0.05)
    open(go, "w").write("go")
    failures: list[str] = []
    for face, p in procs.items():
        try:
            rc = p.wait(timeout=90)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = -9
        if rc != 0:
            failures.append(f"{face}: participant exited with {rc}")
    checks = 0
    for recv in FACES:
        path = os.path.join(tmp, f"{recv}.out")
        if not os.path.exists(path):
            failures.append(f"{recv}: wrote no output")
            continue
        with open(path, encoding="utf-8") as f:
            got = [json.loads(line) for line in f if line.strip()]
        for sender in FACES:
            mine = [e for e in got if e["data"].get("from") == sender]
            sent = items[sender]
            seqs = [e["data"]["seq"] for e in mine]
            if sorted(seqs) != list(range(len(sent))):
                failures.append(f"{sender} -> {recv}: got seqs {sorted(seqs)}, expected 0..{len(sent) - 1} once each")
                continue
            ordered = [s for s in seqs if s < 5]
            if ordered != sorted(ordered):
                failures.append(f"{sender} -> {recv}: xl.*.seq events out of order: {ordered}")
            for e in mine:
                item = sent[e["data"]["seq"]]
                checks += 1
                if e["data"] != item["data"]:
                    failures.append(f"{sender} -> {recv}: seq {e['data']['seq']} data differs")
                if e["type"] != item["type"]:
                    failures.append(f"{sender} -> {recv}: type {e['type']!r} != {item['type']!r}")
                if e["channel"] != expected_channel(item):
                    failures.append(f"{sender} -> {recv}: channel {e['channel']!r} != {expected_channel(item)!r}")
                md = e["metadata"]
                if md.get("source") != f"xl-{sender}" or md.get("version") != "1.0.0":
                    failures.append(f"{sender} -> {recv}: metadata {md}")
                if (item.get("options") or {}).get("userId") and md.get("userId") != item["options"]["userId"]:
                    failures.append(f"{sender} -> {recv}: metadata.userId missing")
    if DURABLE:
        try:
            import redis  # the streams of the run, not needed any more

            redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")).delete(
                f"events:{{xl.{run}.durable}}", f"events:{{xl.{run}.durable}}:dead"
            )
        except Exception:  # noqa: BLE001 - cleanup only
            pass
    for f in failures:
        print("FAIL", f)
    print(f"{LABEL}: {checks} events checked across {len(FACES)} faces ({', '.join(FACES)}; "
          f"publishing: {', '.join(f for f in FACES if f in PUBLISHERS)})")
    pairs = len(FACES) * len(FACES)
    bad = len({f.split(':')[0] for f in failures})
    print(f"{pairs - bad} passed, {bad} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
