"""The blocking client: every method, on Redis and on the memory transport."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

import event_bus
from conftest import wait_for


def test_lifecycle_and_context_manager(config: dict[str, Any]) -> None:
    bus = event_bus.EventBusClient(config)
    assert not bus.is_connected()
    bus.connect()
    assert bus.is_connected()
    bus.connect()  # second connect is a no-op
    bus.disconnect()
    assert not bus.is_connected()
    bus.disconnect()  # idempotent
    with event_bus.EventBusClient(config) as b2:
        assert b2.is_connected()
    assert not b2.is_connected()


def test_keyword_config(uid: str) -> None:
    with event_bus.EventBusClient(service_name="kw", redis_url=f"memory://{uid}") as bus:
        assert bus.is_connected()
    with event_bus.EventBusClient(service_name="kw", transport="memory") as bus:
        assert bus.publish("a.b", {"x": 1}).success


def test_publish_subscribe_roundtrip(config: dict[str, Any], uid: str) -> None:
    got: list[event_bus.Event] = []
    with event_bus.EventBusClient(config) as bus:
        sub = bus.subscribe(f"{uid}.*", got.append)
        assert sub.pattern == f"{uid}.*" and sub.active and sub.id
        r = bus.publish(f"{uid}.created", {"n": 1, "s": "héllo", "l": [1.5, None, True]},
                        trace_id="tr-1", correlation_id="c-1", metadata={"extra": 7})
        assert r.success and r.delivered_to >= 1 and r.event_id and r.published_at.endswith("Z")
        assert r.channel == f"{uid}.created"
        assert wait_for(lambda: len(got) == 1)
        ev = got[0]
        assert ev.id == r.event_id and ev.type == f"{uid}.created"
        assert ev.data == {"n": 1, "s": "héllo", "l": [1.5, None, True]}
        assert ev.channel == f"{uid}.created" and ev.pattern == f"{uid}.*"
        assert ev.trace_id == "tr-1" and ev.correlation_id == "c-1" and ev.source == "pytest"
        assert list(ev.metadata) == ["source", "timestamp", "traceId", "correlationId", "version", "extra"]
        assert ev.to_dict()["channel"] == ev.channel
        assert json.loads(ev.raw)["id"] == ev.id


def test_channels_room_user_broadcast(config: dict[str, Any], uid: str) -> None:
    got: list[str] = []
    with event_bus.EventBusClient(config) as bus:
        bus.subscribe(f"room:{uid}", lambda e: got.append(e.channel))
        bus.subscribe(f"user:{uid}", lambda e: got.append(e.channel))
        bus.subscribe("broadcast", lambda e: got.append(e.channel) if e.type == f"{uid}.b" else None)
        assert bus.publish_to_room(uid, "x.room", {"a": 1}).channel == f"room:{uid}"
        assert bus.publish_to_user(uid, "x.user", {"a": 1}).channel == f"user:{uid}"
        assert bus.broadcast(f"{uid}.b", {"a": 1}).channel == "broadcast"
        assert bus.publish("x.y", {"a": 1}, room=uid, user_id="u").channel == f"room:{uid}"
        assert wait_for(lambda: len(got) == 4)
        assert sorted(got) == sorted([f"room:{uid}", f"user:{uid}", "broadcast", f"room:{uid}"])


def test_publish_batch(config: dict[str, Any], uid: str) -> None:
    got: list[Any] = []
    with event_bus.EventBusClient(config) as bus:
        bus.subscribe(f"{uid}.*", lambda e: got.append(e.data))
        rs = bus.publish_batch(
            [(f"{uid}.a", 1), {"type": f"{uid}.b", "data": 2, "options": {"trace_id": "t"}},
             ("bad type!", 3), (f"{uid}.c", 4, {"correlationId": "c"})]
        )
        assert [r.success for r in rs] == [True, True, False, True]
        assert isinstance(rs[2].error, event_bus.ValidationError)
        assert wait_for(lambda: len(got) == 3)
        assert got == [1, 2, 4]  # in order


def test_unsubscribe_keeps_other_subscription(config: dict[str, Any], uid: str) -> None:
    a: list[int] = []
    b: list[int] = []
    with event_bus.EventBusClient(config) as bus:
        s1 = bus.subscribe(f"{uid}.x", lambda e: a.append(e.data))
        bus.subscribe(f"{uid}.x", lambda e: b.append(e.data))
        bus.publish(f"{uid}.x", 1)
        assert wait_for(lambda: len(a) == 1 and len(b) == 1)
        assert bus.unsubscribe(s1.id) is True
        assert bus.unsubscribe(s1.id) is False
        bus.publish(f"{uid}.x", 2)
        assert wait_for(lambda: len(b) == 2)
        time.sleep(0.1)
        assert a == [1] and b == [1, 2]


def test_exactly_once_with_overlapping_subscriptions(config: dict[str, Any], uid: str) -> None:
    exact: list[str] = []
    pat: list[str] = []
    with event_bus.EventBusClient(config) as bus:
        bus.subscribe(f"{uid}.evt", lambda e: exact.append(e.id))
        bus.subscribe(f"{uid}.*", lambda e: pat.append(e.id))
        ids = [bus.publish(f"{uid}.evt", {"i": i}).event_id for i in range(20)]
        assert wait_for(lambda: len(exact) == 20 and len(pat) == 20)
        time.sleep(0.2)
        assert exact == ids and pat == ids


def test_handler_failure_retry_and_stats(config: dict[str, Any], uid: str) -> None:
    calls: list[int] = []
    ok: list[int] = []

    def flaky(e: event_bus.Event) -> None:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("boom")

    def always_fail(e: event_bus.Event) -> None:
        raise ValueError("nope")

    with event_bus.EventBusClient(config) as bus:
        bus.subscribe(f"{uid}.r", flaky, retry_on_error=True, max_retries=3, retry_delay=10)
        bus.subscribe(f"{uid}.f", always_fail)
        bus.subscribe(f"{uid}.f", lambda e: ok.append(1))  # others go on
        bus.publish(f"{uid}.r", 1)
        bus.publish(f"{uid}.f", 1)
        assert wait_for(lambda: len(calls) == 3 and len(ok) == 1)
        assert wait_for(lambda: bus.get_stats()["eventsDelivered"] >= 2)
        st = bus.get_stats()
        assert st["eventsFailed"] >= 1 and st["activeSubscriptions"] == 3
        assert st["eventsPublished"] == 2 and st["eventsReceived"] >= 2


def test_handler_timeout(config: dict[str, Any], uid: str) -> None:
    with event_bus.EventBusClient(config) as bus:
        bus.subscribe(f"{uid}.t", lambda e: time.sleep(0.3), timeout=50)
        bus.publish(f"{uid}.t", 1)
        assert wait_for(lambda: bus.get_stats()["eventsFailed"] >= 1)
        # The blocking client cannot stop a running callable: it finishes, late, counted once.
        assert wait_for(lambda: bus.get_stats()["handlersLateCompleted"] == 1)
        time.sleep(0.2)
        assert bus.get_stats()["handlersLateCompleted"] == 1


def test_events_that_timed_out_behind_a_blocked_handler_do_not_run_late(config: dict[str, Any], uid: str) -> None:
    # Plain callables share one dispatcher thread: while one blocks past its timeout, the
    # events behind it time out waiting (and are counted failed). Once the thread is free they
    # must not run after all: with retries on, a retry would then run them a second time.
    runs: list[int] = []

    def h(e: event_bus.Event) -> None:
        runs.append(e.data)
        if e.data == 0:
            time.sleep(0.5)

    with event_bus.EventBusClient(config) as bus:
        bus.subscribe(f"{uid}.tl", h, timeout=100)
        bus.publish_batch([(f"{uid}.tl", i) for i in range(4)])
        assert wait_for(lambda: bus.get_stats()["eventsFailed"] == 4)
        time.sleep(0.6)
        assert runs == [0]
        assert bus.get_stats()["eventsDelivered"] == 0


def test_filter_option(config: dict[str, Any], uid: str) -> None:
    got: list[Any] = []
    flt = {"conditions": [{"field": "data.kind", "operator": "equals", "value": "keep"}], "operator": "AND"}
    with event_bus.EventBusClient(config) as bus:
        bus.subscribe(f"{uid}.f", lambda e: got.append(e.data["n"]), filter=flt)
        for n, kind in enumerate(["keep", "drop", "keep"]):
            bus.publish(f"{uid}.f", {"kind": kind, "n": n})
        assert wait_for(lambda: len(got) == 2)
        assert got == [0, 2]


def test_health_rooms_and_matches_pattern(config: dict[str, Any]) -> None:
    bus = event_bus.EventBusClient(config)
    assert bus.health_check()["status"] == "unhealthy"
    with bus:
        h = bus.health_check()
        assert h["status"] == "healthy" and "redis" in h["checks"] and h["version"]
        for call in (lambda: bus.join_room("r"), lambda: bus.leave_room("r"), lambda: bus.get_room_members("r")):
            with pytest.raises(event_bus.EventBusError, match="Socket.IO not connected"):
                call()
    assert event_bus.matches_pattern("photo.*", "photo.processing.started")
    assert not event_bus.matches_pattern("photo.?", "photo.ab")
    assert event_bus.matches_pattern("a[^b]c", "axc")


def test_publish_and_unsubscribe_from_inside_handler(config: dict[str, Any], uid: str) -> None:
    echoed: list[Any] = []
    with event_bus.EventBusClient(config) as bus:
        holder: dict[str, str] = {}

        def handler(e: event_bus.Event) -> None:
            bus.publish(f"{uid}.echo", {"of": e.data})  # blocking publish inside a handler
            bus.unsubscribe(holder["id"])  # unsubscribing itself must not deadlock

        holder["id"] = bus.subscribe(f"{uid}.in", handler).id
        bus.subscribe(f"{uid}.echo", lambda e: echoed.append(e.data))
        bus.publish(f"{uid}.in", 1)
        assert wait_for(lambda: echoed == [{"of": 1}])


def test_use_from_other_threads(config: dict[str, Any], uid: str) -> None:
    got: list[int] = []
    with event_bus.EventBusClient(config) as bus:
        bus.subscribe(f"{uid}.t", lambda e: got.append(e.data))
        threads = [threading.Thread(target=lambda i=i: [bus.publish(f"{uid}.t", i * 100 + j) for j in range(25)]) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert wait_for(lambda: len(got) == 100)
        assert sorted(got) == sorted(i * 100 + j for i in range(4) for j in range(25))


def test_state_callback(config: dict[str, Any]) -> None:
    states: list[str] = []
    bus = event_bus.EventBusClient(config)
    lid = bus.on_state(lambda s: states.append(s["type"]))
    with bus:
        pass
    assert "connected" in states
    assert bus.off_state(lid) is True


def test_disconnect_from_a_handler_does_not_wait_for_the_dispatcher(config: dict[str, Any], uid: str) -> None:
    # The dispatcher thread runs the handler that calls disconnect(): waiting for handlers
    # there could only end at the disconnect timeout, far past the test's own limit.
    bus = event_bus.EventBusClient({**config, "disconnectTimeout": 120_000})
    bus.connect()
    done = threading.Event()

    def h(e: event_bus.Event) -> None:
        bus.disconnect()
        done.set()

    bus.subscribe(f"{uid}.d", h)
    bus.publish(f"{uid}.d", 1)
    assert done.wait(30)
    assert not bus.is_connected()
