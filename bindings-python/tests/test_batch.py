"""In-order subscriptions (concurrency 1) take queued events in batches (Handler::run_batch):
order kept under load, one handler at a time, failed events retried, batches really formed."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable, Optional

import event_bus
import event_bus.asyncio as aio
from conftest import wait_for

N = 3000


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.01)
    return cond()


async def publish_load(bus: aio.EventBusClient, channel: str, n: int) -> None:
    for start in range(0, n, 500):
        await bus.publish_batch([{"type": channel, "data": i} for i in range(start, min(n, start + 500))])


async def test_async_def_order_under_load(config: dict[str, Any], uid: str) -> None:
    got: list[int] = []
    running = [0]
    overlaps = [0]
    tasks: set[int] = set()

    async def h(e: event_bus.Event) -> None:
        running[0] += 1
        if running[0] > 1:
            overlaps[0] += 1
        tasks.add(id(asyncio.current_task()))
        if e.data % 97 == 0:
            await asyncio.sleep(0.001)  # a real suspension: the next event must still wait
        else:
            await asyncio.sleep(0)
        got.append(e.data)
        running[0] -= 1

    async with aio.EventBusClient(config) as bus:
        await bus.subscribe(f"{uid}.o", h, max_pending=N + 10)
        await publish_load(bus, f"{uid}.o", N)
        assert await until(lambda: len(got) == N), len(got)
        assert got == list(range(N))
        assert overlaps[0] == 0
        assert len(tasks) < N // 2  # batched: far fewer tasks than events
        assert await until(lambda: bus._native.get_stats()["eventsDelivered"] == N)


async def test_plain_handler_order_in_async_client(config: dict[str, Any], uid: str) -> None:
    got: list[int] = []
    async with aio.EventBusClient(config) as bus:
        await bus.subscribe(f"{uid}.p", lambda e: got.append(e.data), max_pending=N + 10)
        await publish_load(bus, f"{uid}.p", N)
        assert await until(lambda: len(got) == N), len(got)
        assert got == list(range(N))


async def test_mixed_sync_and_coroutine_results(config: dict[str, Any], uid: str) -> None:
    got: list[int] = []

    async def later(i: int) -> None:
        await asyncio.sleep(0)
        got.append(i)

    def h(e: event_bus.Event) -> Optional[Any]:
        if e.data % 3 == 0:
            return later(e.data)
        got.append(e.data)
        return None

    async with aio.EventBusClient(config) as bus:
        await bus.subscribe(f"{uid}.m", h, max_pending=N + 10)
        await publish_load(bus, f"{uid}.m", 1000)
        assert await until(lambda: len(got) == 1000)
        assert got == list(range(1000))


async def test_async_failing_event_in_batch_is_retried(config: dict[str, Any], uid: str) -> None:
    got: list[int] = []
    failed: set[int] = set()

    async def h(e: event_bus.Event) -> None:
        await asyncio.sleep(0)
        if e.data in (5, 700) and e.data not in failed:
            failed.add(e.data)
            raise RuntimeError(f"transient {e.data}")
        got.append(e.data)

    async with aio.EventBusClient(config) as bus:
        await bus.subscribe(f"{uid}.f", h, retry_on_error=True, max_retries=2, retry_delay=5, max_pending=N + 10)
        await publish_load(bus, f"{uid}.f", 1000)
        assert await until(lambda: len(got) == 1000)
        assert sorted(got) == list(range(1000))
        assert failed == {5, 700}
        assert await until(lambda: bus._native.get_stats()["eventsDelivered"] == 1000)
        assert bus._native.get_stats()["eventsFailed"] == 0


async def test_async_broken_event_fails_alone(config: dict[str, Any], uid: str) -> None:
    got: list[int] = []

    async def h(e: event_bus.Event) -> None:
        if e.data == 10:
            raise ValueError("bad event")
        got.append(e.data)

    async with aio.EventBusClient(config) as bus:
        await bus.subscribe(f"{uid}.b", h, max_pending=N + 10)
        await publish_load(bus, f"{uid}.b", 500)
        assert await until(lambda: len(got) == 499)
        assert got == [i for i in range(500) if i != 10]
        assert await until(lambda: bus._native.get_stats()["eventsFailed"] == 1)


async def test_async_outcomes_reach_the_core_while_a_later_event_awaits(config: dict[str, Any], uid: str) -> None:
    """A batch reports its finished events when its task yields to the loop, not only when the
    whole batch is done: here event 5 waits on a gate, and events 0-4 must count as delivered
    meanwhile (the core learns of them, so maxPending and stats stay true)."""
    started0 = asyncio.Event()
    gate0 = asyncio.Event()
    gate5 = asyncio.Event()
    got: list[int] = []

    async def h(e: event_bus.Event) -> None:
        if e.data == 0:
            started0.set()
            await gate0.wait()
        if e.data == 5:
            await gate5.wait()
        got.append(e.data)

    async with aio.EventBusClient(config) as bus:
        await bus.subscribe(f"{uid}.g", h)
        await bus.publish(f"{uid}.g", 0)
        await asyncio.wait_for(started0.wait(), 5)
        # Queued while event 0 runs, so they reach the handler as one batch.
        await bus.publish_batch([{"type": f"{uid}.g", "data": i} for i in range(1, 7)])
        assert await until(lambda: bus._native.get_stats()["eventsReceived"] == 7)
        gate0.set()
        assert await until(lambda: got == [0, 1, 2, 3, 4])
        assert await until(lambda: bus._native.get_stats()["eventsDelivered"] == 5)
        await asyncio.sleep(0.05)
        assert got == [0, 1, 2, 3, 4]  # event 5 still waits; 6 has not started
        gate5.set()
        assert await until(lambda: got == list(range(7)))
        assert await until(lambda: bus._native.get_stats()["eventsDelivered"] == 7)


def test_blocking_order_under_load(config: dict[str, Any], uid: str) -> None:
    got: list[int] = []
    threads: set[int] = set()

    def h(e: event_bus.Event) -> None:
        threads.add(threading.get_ident())
        got.append(e.data)

    with event_bus.EventBusClient(config) as bus:
        bus.subscribe(f"{uid}.o", h, max_pending=N + 10)
        for start in range(0, N, 500):
            bus.publish_batch([{"type": f"{uid}.o", "data": i} for i in range(start, min(N, start + 500))])
        assert wait_for(lambda: len(got) == N, 10), len(got)
        assert got == list(range(N))
        assert len(threads) == 1 and threading.get_ident() not in threads


def test_blocking_failing_event_in_batch_is_retried(config: dict[str, Any], uid: str) -> None:
    got: list[int] = []
    failed: set[int] = set()

    def h(e: event_bus.Event) -> None:
        if e.data in (3, 400) and e.data not in failed:
            failed.add(e.data)
            raise RuntimeError("transient")
        got.append(e.data)

    with event_bus.EventBusClient(config) as bus:
        bus.subscribe(f"{uid}.f", h, retry_on_error=True, max_retries=2, retry_delay=5, max_pending=N + 10)
        bus.publish_batch([{"type": f"{uid}.f", "data": i} for i in range(1000)])
        assert wait_for(lambda: len(got) == 1000, 10)
        assert sorted(got) == list(range(1000))
        assert failed == {3, 400}
        assert wait_for(lambda: bus._native.get_stats()["eventsDelivered"] == 1000)
        assert bus._native.get_stats()["eventsFailed"] == 0
