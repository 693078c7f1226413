"""Demo "photo worker" (Python): processes photo.uploaded events and reports progress.

For each photo.uploaded it publishes photo.processing.started, .progress (x3) and .completed,
as the platform's Python workers do. Stops on demo.shutdown and prints its stats.

photo.uploaded is read through a durable group (a Redis Stream consumer group, the API service
publishes it with persistent=True): a worker that is killed and started again, under the same
consumer name, first finishes the entries it had not acknowledged, then reads what was published
while it was away; nothing is lost (`scripts/demo.sh --kill-worker` shows it).
"""
from __future__ import annotations

import os
import sys
import threading
import time
from datetime import datetime, timezone

import event_bus

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
# REDIS_CLUSTER_NODES (host:port,... as scripts/redis-topology.sh writes it): a Redis Cluster.
CLUSTER = os.environ.get("REDIS_CLUSTER_NODES")
REDIS = {"cluster": [f"redis://{a}" for a in CLUSTER.split(",")]} if CLUSTER else {"url": REDIS_URL}
RUN = os.environ.get("DEMO_RUN", "demo")
WORK_S = float(os.environ.get("DEMO_WORK_MS", "20")) / 1000


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def main() -> int:
    stop = threading.Event()
    with event_bus.EventBusClient(
        {"serviceName": "photo-worker", "redis": REDIS, "logLevel": "warn"}
    ) as bus:

        def on_uploaded(event: event_bus.Event) -> None:
            data = event.data
            if data.get("run") != RUN:
                return
            photo, user = data["photoId"], data["userId"]
            attempt = event.delivery.attempt if event.delivery is not None else 1
            if attempt > 1:
                print(f"[worker] {photo} again (delivery {attempt}): the last worker did not finish it", flush=True)
            job = f"job-{photo}"
            started = time.monotonic()
            common = {"photoId": photo, "userId": user, "jobId": job, "run": RUN}
            bus.publish(
                "photo.processing.started",
                {**common, "startedAt": now_iso()},
                correlation_id=event.id,
            )
            for progress, stage in ((25, "decode"), (60, "thumbnails"), (90, "metadata")):
                time.sleep(WORK_S)  # the "work"
                bus.publish(
                    "photo.processing.progress",
                    {**common, "progress": progress, "stage": stage},
                    correlation_id=event.id,
                )
            bus.publish(
                "photo.processing.completed",
                {
                    **common,
                    "completedAt": now_iso(),
                    "duration": round((time.monotonic() - started) * 1000),
                    "thumbnails": [
                        {"size": s, "width": w, "height": w, "url": f"/t/{photo}/{s}", "path": f"t/{photo}/{s}.jpg"}
                        for s, w in (("small", 150), ("medium", 600))
                    ],
                    "metadata": {"width": 4000, "height": 3000, "format": "jpeg"},
                    "storageInfo": {"bucket": "photos", "key": f"{photo}.jpg", "size": data["size"], "contentType": data["mimeType"]},
                },
                correlation_id=event.id,
            )
            print(f"[worker] processed {photo}", flush=True)

        def on_shutdown(event: event_bus.Event) -> None:
            if event.data.get("run") == RUN:
                stop.set()

        # One group per demo run (a service would keep one name, e.g. "thumbnailer"); the consumer
        # name stays the same across restarts, so a restarted worker drains its own pending entries.
        bus.subscribe(
            "photo.uploaded",
            on_uploaded,
            durable={"group": f"thumbnailer-{RUN}", "consumer": "worker-1", "minIdleTime": 5000, "claimInterval": 1000},
        )
        bus.subscribe("demo.shutdown", on_shutdown)
        print("[worker] ready", flush=True)
        if not stop.wait(float(os.environ.get("DEMO_TIMEOUT_S", "30"))):
            print("[worker] timed out waiting for demo.shutdown", file=sys.stderr)
        s = bus.get_stats()
        print(
            f"[worker] stats: published={s['eventsPublished']} received={s['eventsReceived']} "
            f"delivered={s['eventsDelivered']} failed={s['eventsFailed']}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
