"""A sample worker checked with `mypy --strict` (not collected by pytest)."""

from __future__ import annotations

import asyncio
from typing import Any

import event_bus
import event_bus.asyncio


def sync_worker() -> None:
    with event_bus.EventBusClient(service_name="w", redis_url="redis://127.0.0.1:6379") as bus:

        def on_event(event: event_bus.Event) -> None:
            data: Any = event.data
            print(event.id, event.type, event.channel, event.metadata.get("traceId"), data)

        sub: event_bus.Subscription = bus.subscribe("photo.*", on_event, timeout=5000, retry_on_error=True)
        try:
            r: event_bus.PublishResult = bus.publish("photo.uploaded", {"photoId": "p1"}, trace_id="t")
            print(r.event_id, r.delivered_to, r.published_at, r.success)
        except event_bus.ValidationError as e:
            print("invalid", e.code)
        except event_bus.EventBusError as e:
            print("failed", e)
        try:
            bus.publish("photo.uploaded", {"photoId": "p1"}, {"traceId": "t", "userId": "u1"})
        except TimeoutError as e:  # the built-in: event_bus.TimeoutError derives from it
            print("timed out", e)
        except (event_bus.QueueFullError, event_bus.OutcomeUnknownError) as e:
            print("not sent / unknown", e.event_id)
        results = bus.publish_batch([("a.b", {"x": 1}), {"type": "a.c", "data": [1]}])
        print([x.success for x in results], bus.get_stats()["eventsPublished"])
        print(bus.health_check()["status"], bus.unsubscribe(sub.id), event_bus.matches_pattern("a.*", "a.b"))
        bus.run_forever()


def durable_worker() -> None:
    with event_bus.EventBusClient(service_name="w", redis_url="redis://127.0.0.1:6379") as bus:
        bus.publish("photo.uploaded", {"photoId": "p1"}, persistent=True, ttl=86_400_000)

        def on_event(event: event_bus.Event) -> None:
            d: event_bus.Delivery | None = event.delivery
            if d is not None:
                attempt: int = d.attempt
                print(attempt, d.stream_id, d.group)

        bus.subscribe(["photo.uploaded", "photo.deleted"], on_event, durable={"group": "thumbs", "max_deliveries": 3})
        for dl in bus.dead_letters("photo.uploaded", group="thumbs", count=10):
            print(dl["event"]["id"], dl["error"]["message"])
        n: int = bus.replay_dead_letters("photo.uploaded", group="thumbs") + bus.purge_dead_letters("photo.uploaded", "thumbs")
        print(n)


async def durable_async_worker() -> None:
    async with event_bus.asyncio.EventBusClient({"serviceName": "w", "redis": {"url": "redis://127.0.0.1:6379"}}) as bus:
        await bus.subscribe("photo.uploaded", lambda e: None, durable={"group": "thumbs"})
        dead = await bus.dead_letters("photo.uploaded", "thumbs")
        n: int = await bus.replay_dead_letters("photo.uploaded", "thumbs", count=1)
        m: int = await bus.purge_dead_letters("photo.uploaded", "thumbs")
        print(len(dead), n + m)


def config_check() -> None:
    try:
        event_bus.EventBusClient({"serviceName": "w"})
    except event_bus.ConfigError as e:
        code: str = e.code
        print(code, str(e))
    except event_bus.InvalidArgumentError as e:
        print("not a config", e)


async def async_worker() -> None:
    async with event_bus.asyncio.EventBusClient({"serviceName": "w", "redis": {"host": "127.0.0.1", "port": 6379}}) as bus:

        async def on_event(event: event_bus.Event) -> None:
            await asyncio.sleep(0)
            print(event.data)

        sub = await bus.subscribe("photo.*", on_event, max_pending=100)
        r = await bus.publish_to_user("u1", "photo.uploaded", {"photoId": "p1"})
        print(r.delivered_to, sub.pattern, await bus.unsubscribe(sub.id))
