"""The asyncio client: every method, on Redis and on the memory transport; coroutine handlers
on the subscribing loop; timeout and retry for coroutines."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable

import pytest

import event_bus
import event_bus.asyncio as aio


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.01)
    return cond()


async def test_lifecycle(config: dict[str, Any]) -> None:
    bus = aio.EventBusClient(config)
    assert not bus.is_connected()
    await bus.connect()
    assert bus.is_connected()
    await bus.disconnect()
    await bus.disconnect()
    assert not bus.is_connected()
    async with aio.EventBusClient(config) as b2:
        assert b2.is_connected()
    assert not b2.is_connected()


async def test_coroutine_handlers_run_on_the_loop(config: dict[str, Any], uid: str) -> None:
    loop = asyncio.get_running_loop()
    seen: list[tuple[Any, bool, bool]] = []

    async def handler(ev: event_bus.Event) -> None:
        await asyncio.sleep(0.001)
        seen.append((ev.data, asyncio.get_running_loop() is loop,
                     threading.current_thread() is threading.main_thread()))

    async with aio.EventBusClient(config) as bus:
        sub = await bus.subscribe(f"{uid}.*", handler)
        assert sub.pattern == f"{uid}.*"
        r = await bus.publish(f"{uid}.a", {"i": 1}, trace_id="t")
        assert r.success and r.delivered_to >= 1
        for i in range(2, 50):
            await bus.publish(f"{uid}.a", {"i": i})
        assert await until(lambda: len(seen) == 49)
        assert [s[0]["i"] for s in seen] == list(range(1, 50))  # in order
        assert all(s[1] and s[2] for s in seen)


async def test_sync_handler_in_async_client(config: dict[str, Any], uid: str) -> None:
    got: list[str] = []
    async with aio.EventBusClient(config) as bus:
        await bus.subscribe(f"{uid}.s", lambda e: got.append(e.type))
        await bus.publish(f"{uid}.s", [1])
        assert await until(lambda: got == [f"{uid}.s"])


async def test_all_publish_forms_and_batch(config: dict[str, Any], uid: str) -> None:
    chans: list[str] = []
    async with aio.EventBusClient(config) as bus:
        await bus.subscribe(f"room:{uid}", lambda e: chans.append(e.channel))
        await bus.subscribe(f"user:{uid}", lambda e: chans.append(e.channel))
        await bus.subscribe("broadcast", lambda e: chans.append(e.channel) if e.type == f"{uid}.b" else None)
        await bus.subscribe(f"{uid}.*", lambda e: chans.append(e.channel))
        assert (await bus.publish_to_room(uid, "x.r", 1)).channel == f"room:{uid}"
        assert (await bus.publish_to_user(uid, "x.u", 1)).channel == f"user:{uid}"
        assert (await bus.broadcast(f"{uid}.b", 1)).channel == "broadcast"
        rs = await bus.publish_batch([(f"{uid}.a", 1), {"type": "bad!", "data": 1}, (f"{uid}.c", 3)])
        assert [r.success for r in rs] == [True, False, True]
        assert isinstance(rs[1].error, event_bus.ValidationError)
        assert await until(lambda: len(chans) == 5)


async def test_errors_raise(config: dict[str, Any], uid: str) -> None:
    bus = aio.EventBusClient(config)
    with pytest.raises(event_bus.NotConnectedError):
        await bus.publish("a.b", 1)
    with pytest.raises(event_bus.NotConnectedError):
        await bus.subscribe("a.b", print)
    async with bus:
        with pytest.raises(event_bus.ValidationError):
            await bus.publish("bad type!", 1)
        with pytest.raises(event_bus.InvalidArgumentError, match="set"):
            await bus.publish("a.b", {1})
        with pytest.raises(event_bus.InvalidArgumentError, match="handler must be callable"):
            await bus.subscribe("a.b", 3)  # type: ignore[arg-type]
        r = await bus.publish(f"{uid}.o", 1, {"traceId": "t-1", "userId": "u1"}, user_id=uid)
        assert r.channel == f"user:{uid}"
        # Option values are the core's to judge; the same error as the blocking client's.
        with pytest.raises(event_bus.ValidationError) as ei:
            await bus.publish("a.b", 1, trace_id=5)
        with pytest.raises(event_bus.ValidationError) as di:
            await bus.publish("a.b", 1, {"traceId": 5})
        assert ei.value.code == "VALIDATION_ERROR" and str(ei.value) == str(di.value)
        with pytest.raises(event_bus.ValidationError) as ei:
            await bus.subscribe("a.b", print, max_retries=-3)
        assert ei.value.code == "VALIDATION_ERROR"
        sub = await bus.subscribe(f"{uid}.frac", print, timeout=1.5)
        assert sub.options == {"timeout": 1.5}
        with pytest.raises(event_bus.EventBusError, match="Socket.IO"):
            await bus.join_room("r")
        with pytest.raises(event_bus.EventBusError, match="Socket.IO"):
            await bus.leave_room("r")
        with pytest.raises(event_bus.EventBusError, match="Socket.IO"):
            await bus.get_room_members("r")


async def test_unsubscribe_health_stats(config: dict[str, Any], uid: str) -> None:
    got: list[int] = []
    async with aio.EventBusClient(config) as bus:
        s = await bus.subscribe(f"{uid}.u", lambda e: got.append(e.data))
        await bus.publish(f"{uid}.u", 1)
        assert await until(lambda: got == [1])
        assert await bus.unsubscribe(s.id) is True
        assert await bus.unsubscribe(s.id) is False
        await bus.publish(f"{uid}.u", 2)
        await asyncio.sleep(0.1)
        assert got == [1]
        h = await bus.health_check()
        assert h["status"] == "healthy"
        st = await bus.get_stats()
        assert st["eventsPublished"] == 2 and st["activeSubscriptions"] == 0


async def test_coroutine_retry_and_failure(config: dict[str, Any], uid: str) -> None:
    attempts: list[int] = []
    others: list[int] = []

    async def flaky(e: event_bus.Event) -> None:
        await asyncio.sleep(0)
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("transient")

    async def broken(e: event_bus.Event) -> None:
        raise ValueError("always")

    async with aio.EventBusClient(config) as bus:
        await bus.subscribe(f"{uid}.r", flaky, retry_on_error=True, max_retries=5, retry_delay=5)
        await bus.subscribe(f"{uid}.r", broken)
        await bus.subscribe(f"{uid}.r", lambda e: others.append(1))
        await bus.publish(f"{uid}.r", 1)
        assert await until(lambda: len(attempts) == 3 and others == [1])
        assert await until(lambda: bus._native.get_stats()["eventsFailed"] == 1)
        assert bus._native.get_stats()["eventsDelivered"] == 2


async def test_coroutine_timeout_then_retry(config: dict[str, Any], uid: str) -> None:
    starts: list[float] = []

    async def slow(e: event_bus.Event) -> None:
        starts.append(time.monotonic())
        await asyncio.sleep(0.5 if len(starts) == 1 else 0)

    async with aio.EventBusClient(config) as bus:
        await bus.subscribe(f"{uid}.t", slow, timeout=50, retry_on_error=True, max_retries=1, retry_delay=10)
        await bus.publish(f"{uid}.t", 1)
        assert await until(lambda: len(starts) == 2)
        assert starts[1] - starts[0] < 0.4  # retried after the timeout, not after the sleep
        assert await until(lambda: bus._native.get_stats()["eventsDelivered"] == 1)


async def test_a_timed_out_coroutine_does_not_fail_the_rest_of_its_batch(config: dict[str, Any], uid: str) -> None:
    # Events of one in-order batch run one after another on the loop. When one handler times
    # out, the events behind it must still run (once each) and count as delivered, not wait
    # behind it and time out unstarted.
    runs: list[int] = []
    gate = asyncio.Event()

    async def h(e: event_bus.Event) -> None:
        runs.append(e.data)
        if e.data == -1:
            time.sleep(0.05)  # holds the loop, so the next events queue up as one batch
        if e.data == 0:
            await gate.wait()

    async with aio.EventBusClient(config) as bus:
        await bus.subscribe(f"{uid}.tb", h, timeout=100)
        await bus.publish_batch([(f"{uid}.tb", i) for i in (-1, 0, 1, 2, 3)])
        assert await until(lambda: len(runs) == 5), runs
        gate.set()
        await asyncio.sleep(0.1)
        assert runs == [-1, 0, 1, 2, 3]
        stats = bus._native.get_stats()
        assert (stats["eventsFailed"], stats["eventsDelivered"]) == (1, 4), stats
        # Event 0 finished after the core gave it up: one late completion (a handler of an
        # in-order batch is not cancelled, see docs/reliability.md).
        assert await until(lambda: bus._native.get_stats()["handlersLateCompleted"] == 1), stats


async def test_a_timed_out_coroutine_is_cancelled(config: dict[str, Any], uid: str) -> None:
    seen: list[str] = []

    async def slow(e: event_bus.Event) -> None:
        try:
            await asyncio.sleep(60)
            seen.append("finished")
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async with aio.EventBusClient(config) as bus:
        # concurrency 2: each event runs in a task of its own.
        await bus.subscribe(f"{uid}.c", slow, timeout=100, concurrency=2)
        await bus.publish(f"{uid}.c", 1)
        assert await until(lambda: seen == ["cancelled"], timeout=10), seen
        stats = bus._native.get_stats()
        assert stats["eventsFailed"] == 1, stats
        # Cancelled is not completed: no late completion.
        await asyncio.sleep(0.2)
        assert bus._native.get_stats()["handlersLateCompleted"] == 0


async def test_a_coroutine_that_ignores_its_cancel_counts_as_late_once(config: dict[str, Any], uid: str) -> None:
    seen: list[str] = []

    async def stubborn(e: event_bus.Event) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen.append("cancelled")
        await asyncio.sleep(0.05)
        seen.append("finished")

    async with aio.EventBusClient(config) as bus:
        await bus.subscribe(f"{uid}.s", stubborn, timeout=100, concurrency=2)
        await bus.publish(f"{uid}.s", 1)
        assert await until(lambda: bus._native.get_stats()["handlersLateCompleted"] == 1, timeout=10)
        assert seen == ["cancelled", "finished"]
        await asyncio.sleep(0.2)
        stats = bus._native.get_stats()
        assert (stats["handlersLateCompleted"], stats["eventsFailed"], stats["eventsDelivered"]) == (1, 1, 0)
        assert "eventbus_handlers_late_completed_total" in bus.metrics()


async def test_exactly_once(config: dict[str, Any], uid: str) -> None:
    a: list[str] = []
    b: list[str] = []
    async with aio.EventBusClient(config) as bus:
        await bus.subscribe(f"{uid}.x", lambda e: a.append(e.id))
        await bus.subscribe(f"{uid}.*", lambda e: b.append(e.id))
        ids = [(await bus.publish(f"{uid}.x", i)).event_id for i in range(30)]
        assert await until(lambda: len(a) == 30 and len(b) == 30)
        await asyncio.sleep(0.1)
        assert a == ids and b == ids


async def test_concurrent_publishes_gathered(config: dict[str, Any], uid: str) -> None:
    got: list[int] = []
    async with aio.EventBusClient(config) as bus:
        await bus.subscribe(f"{uid}.g", lambda e: got.append(e.data))
        rs = await asyncio.gather(*(bus.publish(f"{uid}.g", i) for i in range(500)))
        assert all(r.success for r in rs)
        assert await until(lambda: len(got) == 500)
        assert sorted(got) == list(range(500))


async def test_state_callback_on_loop(config: dict[str, Any]) -> None:
    states: list[str] = []
    bus = aio.EventBusClient(config)
    bus.on_state(lambda s: states.append(s["type"]))
    async with bus:
        pass
    assert await until(lambda: "connected" in states)


def test_two_loops_sequentially(uid: str) -> None:
    bus = aio.EventBusClient(service_name="l", redis_url=f"memory://{uid}")
    got: list[int] = []

    async def one() -> None:
        await bus.connect()
        await bus.subscribe("a.b", lambda e: got.append(e.data))
        await bus.publish("a.b", 1)
        await until(lambda: got == [1])

    async def two() -> None:
        await bus.publish("a.b", 2)
        await bus.disconnect()

    asyncio.run(one())
    asyncio.run(two())  # the first loop is closed: its handler fails, nothing hangs
    assert got == [1]


async def test_disconnect_from_a_coroutine_handler_does_not_wait_for_itself(config: dict[str, Any], uid: str) -> None:
    # With a disconnect timeout far longer than the test's own limit: waiting for the calling
    # handler (which cannot finish before disconnect returns) would run past wait_for.
    bus = aio.EventBusClient({**config, "disconnectTimeout": 120_000})
    await bus.connect()
    done = asyncio.Event()
    seen: list[int] = []

    async def h(e: event_bus.Event) -> None:
        seen.append(e.data)
        if e.data == 0:
            await bus.disconnect()
            done.set()

    await bus.subscribe(f"{uid}.d", h)
    await bus.publish(f"{uid}.d", 0)
    await asyncio.wait_for(done.wait(), 30)
    assert not bus.is_connected()
    assert seen == [0]


async def test_disconnect_outside_handlers_still_waits_for_them(config: dict[str, Any], uid: str) -> None:
    finished: list[int] = []
    started = asyncio.Event()

    async def slow(e: event_bus.Event) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.append(e.data)

    bus = aio.EventBusClient({**config, "disconnectTimeout": 30_000})
    await bus.connect()
    await bus.subscribe(f"{uid}.w", slow)
    await bus.publish(f"{uid}.w", 1)
    await asyncio.wait_for(started.wait(), 5)
    await bus.disconnect()  # from the test's own task: waits for the running handler
    assert finished == [1]
