"""metrics(): a Prometheus scrape of a running client, read with prometheus_client's parser;
getStats()'s latency summaries; and a W3C traceparent carried to the receiver."""

from __future__ import annotations

import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import event_bus
import event_bus.asyncio as aio
from conftest import wait_for

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_scrape_parses_and_counts(config: dict[str, Any], uid: str) -> None:
    got: list[event_bus.Event] = []

    def slow(ev: event_bus.Event) -> None:
        time.sleep(0.005)
        got.append(ev)

    transport = "single" if config["redis"]["url"].startswith("redis") else "memory"
    with event_bus.EventBusClient(config) as bus:
        sub = bus.subscribe(f"{uid}.*", slow)
        for i in range(20):
            assert bus.publish(f"{uid}.a", {"i": i}).success
        assert wait_for(lambda: bus.get_stats()["eventsDelivered"] == 20, 10)
        fams = families(bus.metrics())

        base = {"service": "pytest", "transport": transport}
        delivered = fams["eventbus_events_delivered"]  # the parser drops `_total`
        assert delivered.type == "counter"
        assert [(s.labels, s.value) for s in delivered.samples if s.name.endswith("_total")] == [
            (base, 20.0)
        ]

        handler = fams["eventbus_handler_duration_seconds"]
        assert handler.type == "histogram"
        mine = {**base, "subscription": sub.id, "pattern": f"{uid}.*"}
        samples = [s for s in handler.samples if {k: v for k, v in s.labels.items() if k != "le"} == mine]
        count = [s.value for s in samples if s.name.endswith("_count")]
        assert count == [20.0]
        buckets = sorted(
            ((float(s.labels["le"]), s.value) for s in samples if s.name.endswith("_bucket")),
        )
        assert buckets[-1] == (float("inf"), 20.0)
        assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:]))
        # every call slept 5 ms: none at or below 1 ms
        assert dict(buckets)[0.001] == 0.0
        total = [s.value for s in samples if s.name.endswith("_sum")]
        assert total[0] >= 20 * 0.005

        publish = fams["eventbus_publish_duration_seconds"]
        assert [s.value for s in publish.samples if s.name.endswith("_count")] == [20.0]
        assert fams["eventbus_connected"].samples[0].value == 1.0

        lat = bus.get_stats()["latency"]
        assert set(lat) == {"publish", "delivery", "handler"}
        assert lat["publish"]["count"] == 20 and lat["delivery"]["count"] == 20
        h = lat["handler"]
        assert h["count"] == 20 and 5.0 <= h["p50"] <= h["p95"] <= h["p99"] <= h["max"]


async def test_asyncio_client_metrics(config: dict[str, Any], uid: str) -> None:
    async with aio.EventBusClient(config) as bus:
        await bus.subscribe(f"{uid}.x", lambda ev: None)
        await bus.publish(f"{uid}.x", 1)
        text = bus.metrics()
        assert isinstance(text, str)
        fams = families(text)
        assert fams["eventbus_subscriptions_active"].samples[0].value == 1.0
        assert fams["eventbus_events_published"].samples[0].value == 1.0


def test_traceparent_reaches_the_handler(config: dict[str, Any], uid: str) -> None:
    got: list[event_bus.Event] = []
    with event_bus.EventBusClient(config) as bus:
        bus.subscribe(f"{uid}.t", got.append)
        assert bus.publish(f"{uid}.t", 1, metadata={"traceparent": TP}).success
        assert wait_for(lambda: len(got) == 1)
        assert got[0].metadata["traceparent"] == TP
        assert got[0].metadata["traceId"] == TP.split("-")[1]
        with pytest.raises(event_bus.ValidationError, match="metadata.traceparent"):
            bus.publish(f"{uid}.t", 1, metadata={"traceparent": "nope"})
