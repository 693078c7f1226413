"""Bad input, calls in the wrong state: clear exceptions, never a crash or a hang."""

from __future__ import annotations

import datetime
from typing import Any, Iterator

import pytest

import event_bus
from conftest import wait_for


@pytest.fixture
def bus(uid: str) -> Iterator[event_bus.EventBusClient]:
    with event_bus.EventBusClient(service_name="err", redis_url=f"memory://{uid}") as b:
        yield b


@pytest.mark.parametrize(
    "data, exc, words",
    [
        ({1, 2}, TypeError, "set"),
        (b"bytes", TypeError, "bytes"),
        ({"when": datetime.datetime.now()}, TypeError, "datetime"),
        ({"o": object()}, TypeError, "object"),
        ({"x": [1, float("nan")]}, event_bus.ValidationError, "NaN"),
        ({"x": float("inf")}, event_bus.ValidationError, "inf"),
        ({1: "int key"}, TypeError, "keys must be str"),
        (None, event_bus.ValidationError, "Event data is required"),
    ],
)
def test_data_json_cannot_carry(bus: event_bus.EventBusClient, data: Any, exc: type, words: str) -> None:
    with pytest.raises(exc, match=words):
        bus.publish("a.b", data)


def test_error_names_the_place(bus: event_bus.EventBusClient) -> None:
    with pytest.raises(TypeError, match=r"at data\['tags'\]\[1\]"):
        bus.publish("a.b", {"tags": ["ok", {1}]})


def test_cycle_is_not_a_crash(bus: event_bus.EventBusClient) -> None:
    cyc: list[Any] = []
    cyc.append(cyc)
    with pytest.raises(event_bus.ValidationError, match="nested too deeply"):
        bus.publish("a.b", cyc)


def test_failed_results_are_collectable_successes_skip_the_gc(bus: event_bus.EventBusClient) -> None:
    """Successful PublishResults hold no Python objects and stay out of the cyclic GC (cheaper
    gen-0 collections after big batches); a failed one holds its exception, which can end up in
    a cycle (exception -> traceback -> frame -> results list), so it stays tracked and such a
    cycle is still collected."""
    import gc
    import weakref

    ok, bad = bus.publish_batch([{"type": "a.b", "data": 1}, {"type": "", "data": 1}])
    assert ok.success and not gc.is_tracked(ok)
    assert not bad.success and gc.is_tracked(bad)
    assert any(r is bad.error for r in gc.get_referents(bad))

    def make_cycle() -> weakref.ref[BaseException]:
        results = bus.publish_batch([{"type": "", "data": 1}])
        try:
            assert results[0].error is not None
            raise results[0].error
        except event_bus.ValidationError as e:
            return weakref.ref(e)  # e.__traceback__ -> this frame -> results -> result -> e

    ref = make_cycle()
    gc.collect()
    assert ref() is None


def test_an_event_stored_in_its_own_data_is_collected(bus: event_bus.EventBusClient) -> None:
    import gc

    seen: list[event_bus.Event] = []
    bus.subscribe("cyc.*", seen.append)
    bus.publish("cyc.a", {"k": 1})
    assert wait_for(lambda: len(seen) == 1)
    ev = seen.pop()
    data = ev.data
    data["me"] = ev  # event -> data -> event
    assert any(r is data for r in gc.get_referents(ev))
    n = sum(1 for o in gc.get_objects() if o is data)
    del ev, data
    gc.collect()
    assert n == 1 and not any(isinstance(o, dict) and o.get("k") == 1 and "me" in o for o in gc.get_objects())


def test_big_int_and_unicode(bus: event_bus.EventBusClient) -> None:
    got: list[Any] = []
    bus.subscribe("a.b", got.append)
    data = {"big": 2**70, "i64": -(2**63), "u64": 2**64 - 1, "u": "✓\u0000\"", "t": (1, 2)}
    assert bus.publish("a.b", data).success
    assert wait_for(lambda: len(got) == 1)
    # Integers up to 64 bits come back exact; beyond, as a float (as JavaScript reads them).
    assert got[0].data == {"big": float(2**70), "i64": -(2**63), "u64": 2**64 - 1, "u": "✓\u0000\"", "t": [1, 2]}
    assert type(got[0].data["u64"]) is int and type(got[0].data["big"]) is float


def test_wrong_argument_types(bus: event_bus.EventBusClient) -> None:
    with pytest.raises(TypeError, match="event_type must be str"):
        bus.publish(123, {"a": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected publish option"):
        bus.publish("a.b", {"a": 1}, tracid="x")
    with pytest.raises(TypeError, match="trace_id must be str"):
        bus.publish("a.b", {"a": 1}, trace_id=5)
    with pytest.raises(TypeError, match="metadata must be a dict"):
        bus.publish("a.b", {"a": 1}, metadata=[1])
    with pytest.raises(TypeError, match="handler must be callable"):
        bus.subscribe("a.b", 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected subscription option"):
        bus.subscribe("a.b", print, timout=5)
    with pytest.raises(TypeError, match="timeout must be a number"):
        bus.subscribe("a.b", print, timeout="5")
    with pytest.raises(event_bus.ValidationError):
        bus.subscribe("", print)
    with pytest.raises(event_bus.ValidationError, match="concurrency"):
        bus.subscribe("a.b", print, concurrency=0)
    with pytest.raises(TypeError, match="async handlers"):
        async def h(e: event_bus.Event) -> None: ...
        bus.subscribe("a.b", h)
    with pytest.raises(TypeError, match="publish_batch item 1"):
        bus.publish_batch([("a.b", 1), ("a.b", {1})])
    with pytest.raises(event_bus.ValidationError, match="reserved|source"):
        bus.publish("a.b", {"a": 1}, metadata={"source": "x"})


def test_config_errors() -> None:
    with pytest.raises(event_bus.ValidationError, match="serviceName is required"):
        event_bus.EventBusClient({"redis": {"host": "x", "port": 1}})
    with pytest.raises(event_bus.ValidationError, match="redis configuration is required"):
        event_bus.EventBusClient({"serviceName": "a"})
    with pytest.raises(TypeError):
        event_bus.EventBusClient("not a dict")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected config keyword"):
        event_bus.EventBusClient(service_name="a", redis_uri="x")


def test_calls_before_and_after_disconnect(uid: str) -> None:
    bus = event_bus.EventBusClient(service_name="e", redis_url=f"memory://{uid}")
    with pytest.raises(event_bus.NotConnectedError, match="Not connected to Event Bus") as ei:
        bus.publish("a.b", {"a": 1})
    assert ei.value.code == "NOT_CONNECTED" and ei.value.event_id
    with pytest.raises(event_bus.NotConnectedError):
        bus.subscribe("a.b", print)
    bus.connect()
    bus.disconnect()
    with pytest.raises(event_bus.NotConnectedError):
        bus.publish("a.b", {"a": 1})
    with pytest.raises(event_bus.NotConnectedError):
        bus.publish_batch([("a.b", 1)])
    assert bus.unsubscribe("nope") is False


def test_connect_failure_names_address() -> None:
    from conftest import wait_for, free_port

    port = free_port()
    bus = event_bus.EventBusClient(
        {"serviceName": "e", "redis": {"host": "127.0.0.1", "port": port, "connectTimeout": 500}}
    )
    with pytest.raises(event_bus.EventBusError, match=str(port)) as ei:
        bus.connect()
    assert isinstance(ei.value, (event_bus.ConnectionError, event_bus.TimeoutError))


def test_hierarchy() -> None:
    for cls in (event_bus.ValidationError, event_bus.NotConnectedError, event_bus.ConnectionError,
                event_bus.TimeoutError, event_bus.PublishError):
        assert issubclass(cls, event_bus.EventBusError)
    assert issubclass(event_bus.QueueFullError, event_bus.PublishError)
    assert issubclass(event_bus.OutcomeUnknownError, event_bus.PublishError)


def test_strings_that_need_escaping_round_trip(bus: event_bus.EventBusClient) -> None:
    # The Rust JSON writer escapes as JSON.stringify does; what arrives parses back equal.
    import queue

    got: "queue.Queue[Any]" = queue.Queue()
    bus.subscribe("esc.*", lambda ev: got.put(ev.data))
    tricky = {
        'q"uote': 'a "b" \\ c',
        "ctl": "\x00\x01\x1f\t\n\r\x7f",
        "uni": "é ✓ 𝄞 \u2028\u2029",
        "plain": "no escapes at all",
        "nested": [{"k\\": ["\"", "\\\\", ""]}],
    }
    bus.publish("esc.x", tricky)
    assert got.get(timeout=5) == tricky
