"""Cross-language participant: the Python face (blocking client). See run.py for the protocol.

    participant.py FACE RUN PLAN OUT READY GO
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

import event_bus

def main(argv: list[str]) -> int:
    face, run, plan_file, out_file, ready_file, go_file = argv[1:7]
    with open(plan_file, encoding="utf-8") as f:
        plan: dict[str, Any] = json.load(f)
    expected = int(plan["expected"])

    out: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_event(ev: event_bus.Event) -> None:
        data = ev.data
        if not isinstance(data, dict) or data.get("run") != run:
            return
        rec = {"channel": ev.channel, "id": ev.id, "type": ev.type, "data": data, "metadata": ev.metadata}
        with lock:
            out.append(rec)

    # CROSS_REDIS: the `redis` config section as JSON (a cluster's seeds, ...); else REDIS_URL.
    redis = json.loads(os.environ["CROSS_REDIS"]) if os.environ.get("CROSS_REDIS") else {
        "url": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")}
    bus = event_bus.EventBusClient({"serviceName": f"xl-{face}", "redis": redis, "logLevel": "error"})
    bus.connect()
    try:
        # subscribeOptions[face]: the durable round's consumer group (see run.py).
        opts = (plan.get("subscribeOptions") or {}).get(face)
        for pattern in plan["patterns"]:
            bus.subscribe(pattern, on_event, options=opts)
        with open(ready_file, "w", encoding="utf-8") as f:
            f.write("ready")
        while not os.path.exists(go_file):
            time.sleep(0.02)

        for item in plan["items"][face]:
            # The plan's options are the Node API's camelCase dict, which publish() takes as is.
            r = bus.publish(item["type"], item["data"], options=item.get("options"))
            if not r.success:
                raise RuntimeError(f"publish failed: {r.error!r}")

        deadline = time.monotonic() + plan["timeoutMs"] / 1000
        while time.monotonic() < deadline:
            with lock:
                if len(out) >= expected:
                    break
            time.sleep(0.02)
        time.sleep(0.2)  # catch duplicates, if any
        with lock:
            lines = [json.dumps(e, ensure_ascii=False) for e in out]
        with open(out_file, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
    finally:
        bus.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
