"""Soak subscriber, Python face (scripts/soak.sh): writes every delivery and every state event
(gaps included) to an NDJSON ledger:
  {"k":"recv","id":N,"t":ms}  {"k":"state","type":"gap","t":ms,"from":iso,"to":iso,...}
  {"k":"ready","t":ms}  {"k":"end","t":ms}
SIGTERM: disconnect (queued handlers finish), write `end`.
With a group, it is a member of that durable group instead of a pub/sub subscriber: it reads
the persistent events from the channel's (the event type's) stream and writes the delivery's
attempt too: {"k":"recv","id":N,"t":ms,"attempt":A}.
  python sub.py <redis-url> <channel> <ledger> [<group> <consumer>]
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from typing import Any

import event_bus


def main() -> int:
    url, channel, ledger = sys.argv[1:4]
    group, consumer = (sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 else (None, None)
    out = open(ledger, "a", buffering=1, encoding="utf-8")
    lock = threading.Lock()

    def write(o: dict[str, Any]) -> None:
        line = json.dumps(o, separators=(",", ":"))
        with lock:
            out.write(line + "\n")

    def now() -> int:
        return int(time.time() * 1000)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    bus = event_bus.EventBusClient(
        service_name="soak-py-dur" if group else "soak-py-sub",
        redis_url=url,
        log_level="error",
        heartbeat_interval=1000,
        reconnect_delay=50,
        reconnect_delay_max=1000,
        connect_timeout=2000,
    )
    bus.on_state(lambda s: write({"k": "state", "t": now(), **s}))
    while not stop.is_set():
        try:
            bus.connect()
            break
        except event_bus.EventBusError as e:
            write({"k": "state", "type": "connect-failed", "t": now(), "message": str(e)})
            time.sleep(0.5)
    if group:
        # Reclaim quickly: entries a lost connection left pending come back within about
        # min_idle_time + claim_interval.
        bus.subscribe(
            channel,
            lambda e: write({"k": "recv", "id": e.data["id"], "t": now(),
                             "attempt": e.delivery.attempt if e.delivery else 0}),
            durable={"group": group, "consumer": consumer, "min_idle_time": 2000,
                     "claim_interval": 500, "block": 1000, "count": 50},
        )
    else:
        bus.subscribe(channel, lambda e: write({"k": "recv", "id": e.data["id"], "t": now()}),
                      max_pending=1_000_000)
    write({"k": "ready", "t": now()})
    while not stop.wait(0.2):
        pass
    write({"k": "stopping", "t": now()})
    bus.disconnect()
    write({"k": "end", "t": now()})
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
