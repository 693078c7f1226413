"""One publish/subscribe round trip through an installed event_bus (run by
scripts/check-dist.sh in a fresh venv, with no Rust on PATH). Prints one line, exits 0."""

import importlib.metadata
import os
import platform
import queue
import sys

import event_bus


def main() -> int:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
    channel = f"dist.check.python.{os.getpid()}"
    got: "queue.Queue[event_bus.Event]" = queue.Queue()
    with event_bus.EventBusClient({"serviceName": "dist-check", "redis": {"url": url}}) as bus:
        bus.subscribe(channel, got.put)
        result = bus.publish(channel, {"n": 1})
        try:
            event = got.get(timeout=30)
        except queue.Empty:
            print(f"roundtrip: no event on {channel} within 30 s", file=sys.stderr)
            return 1
    if not result.success or event.id != result.event_id or event.data != {"n": 1}:
        print(f"roundtrip: wrong event {event!r} for {result!r}", file=sys.stderr)
        return 1
    print(
        f"roundtrip ok: python {platform.python_version()} {platform.machine()}, "
        f"shared-infra-event-bus {importlib.metadata.version('shared-infra-event-bus')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
