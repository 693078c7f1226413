"""Cross-language participant: an unchanged TS service, simulated with raw redis-py.

It writes exactly what @shared-infra/event-bus 1.0.0 put on Redis (key order id, type, data,
metadata{source, timestamp, traceId, correlationId?, userId?, version}; channel room > user >
broadcast > type) and reads with plain PSUBSCRIBE. See run.py for the protocol.
"""
from __future__ import annotations

import json
import os
import sys
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import redis

face, run, plan_file, out_file, ready_file, go_file = sys.argv[1:7]
with open(plan_file, encoding="utf-8") as f:
    plan = json.load(f)


def ts_envelope(event_type: str, data: Any, opts: dict[str, Any]) -> tuple[str, str]:
    meta: dict[str, Any] = {
        "source": f"xl-{face}",
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "traceId": opts.get("traceId") or str(uuid.uuid4()),
    }
    if "correlationId" in opts:
        meta["correlationId"] = opts["correlationId"]
    if "userId" in opts:
        meta["userId"] = opts["userId"]
    meta["version"] = "1.0.0"
    event = {"id": str(uuid.uuid4()), "type": event_type, "data": data, "metadata": meta}
    if opts.get("room"):
        channel = f"room:{opts['room']}"
    elif opts.get("userId"):
        channel = f"user:{opts['userId']}"
    elif opts.get("broadcast"):
        channel = "broadcast"
    else:
        channel = event_type
    # JSON.stringify: no spaces, non-ASCII kept as is.
    return channel, json.dumps(event, separators=(",", ":"), ensure_ascii=False)


r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
ps = r.pubsub(ignore_subscribe_messages=True)
for p in plan["patterns"]:
    if any(c in p for c in "*?["):
        ps.psubscribe(p)
    else:
        ps.subscribe(p)
while ps.get_message(timeout=0.05) is not None:
    pass
open(ready_file, "w").write("ready")
while not os.path.exists(go_file):
    time.sleep(0.02)
out: list[dict[str, Any]] = []


def drain(timeout: float) -> None:
    # Never a zero timeout: redis-py reads a message that is only partly in the socket buffer
    # without waiting for the rest, raises TimeoutError and drops the connection (and with it
    # the subscription). The timeout also bounds the wait for the rest of a message.
    m = ps.get_message(timeout=timeout)
    while m is not None:
        if m["type"] in ("message", "pmessage"):
            ev = json.loads(m["data"])
            if isinstance(ev.get("data"), dict) and ev["data"].get("run") == run:
                out.append({"channel": m["channel"].decode(), "id": ev["id"], "type": ev["type"], "data": ev["data"], "metadata": ev["metadata"]})
        m = ps.get_message(timeout=0.05)


for item in plan["items"][face]:
    channel, message = ts_envelope(item["type"], item["data"], item.get("options") or {})
    r.publish(channel, message)
    drain(0.05)
deadline = time.time() + plan["timeoutMs"] / 1000
while len(out) < plan["expected"] and time.time() < deadline:
    drain(0.05)
drain(0.2)
with open(out_file, "w", encoding="utf-8") as f:
    for e in out:
        f.write(json.dumps(e, ensure_ascii=False) + "\n")
