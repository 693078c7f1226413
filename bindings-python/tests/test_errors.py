"""Bad input, calls in the wrong state: clear exceptions, never a crash or a hang."""

from __future__ import annotations

import builtins
import datetime
import time
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
        ({1, 2}, event_bus.InvalidArgumentError, "set"),
        (b"bytes", event_bus.InvalidArgumentError, "bytes"),
        ({"when": datetime.datetime.now()}, event_bus.InvalidArgumentError, "datetime"),
        ({"o": object()}, event_bus.InvalidArgumentError, "object"),
        ({"s": "lone \ud800 surrogate"}, event_bus.InvalidArgumentError, "UTF-8"),
        ({"x": [1, float("nan")]}, event_bus.ValidationError, "NaN"),
        ({"x": float("inf")}, event_bus.ValidationError, "inf"),
        ({1: "int key"}, event_bus.InvalidArgumentError, "keys must be str"),
        (None, event_bus.ValidationError, "Event data is required"),
    ],
)
def test_data_json_cannot_carry(bus: event_bus.EventBusClient, data: Any, exc: type, words: str) -> None:
    with pytest.raises(exc, match=words) as ei:
        bus.publish("a.b", data)
    assert ei.value.code == {event_bus.InvalidArgumentError: "INVALID_ARGUMENT",
                             event_bus.ValidationError: "VALIDATION_ERROR"}[exc]
    # Still what Python code catches for such values (json.dumps raises these two).
    assert isinstance(ei.value, TypeError if exc is event_bus.InvalidArgumentError else ValueError)


def test_error_names_the_place(bus: event_bus.EventBusClient) -> None:
    with pytest.raises(event_bus.InvalidArgumentError, match=r"at data\['tags'\]\[1\]"):
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
    """What the face itself refuses: values of a kind the call cannot take. Each is an
    InvalidArgumentError (a TypeError) with a sentence and its code."""
    with pytest.raises(event_bus.InvalidArgumentError, match="event_type must be str") as ei:
        bus.publish(123, {"a": 1})  # type: ignore[arg-type]
    assert ei.value.code == "INVALID_ARGUMENT" and isinstance(ei.value, TypeError)
    with pytest.raises(event_bus.InvalidArgumentError, match="handler must be callable"):
        bus.subscribe("a.b", 42)  # type: ignore[arg-type]
    with pytest.raises(event_bus.InvalidArgumentError, match="pattern must be str"):
        bus.subscribe(5, print)  # type: ignore[arg-type]
    with pytest.raises(event_bus.InvalidArgumentError, match="async handlers"):
        async def h(e: event_bus.Event) -> None: ...
        bus.subscribe("a.b", h)
    with pytest.raises(event_bus.InvalidArgumentError, match="callback must be callable"):
        bus.on_state("not callable")  # type: ignore[arg-type]
    with pytest.raises(event_bus.InvalidArgumentError, match="iterable"):
        bus.publish_batch(5)  # type: ignore[arg-type]
    with pytest.raises(event_bus.InvalidArgumentError, match="tuple item") as ei:
        bus.publish_batch([("a.b", 1), ("a.b",)])
    with pytest.raises(event_bus.InvalidArgumentError, match="not JSON serializable") as ei:
        bus.publish_batch([("a.b", 1), ("a.b", {1})])
    # The message is the rule's; the item is named in a note (shown in tracebacks).
    assert getattr(ei.value, "__notes__", ["in publish_batch item 1"]) == ["in publish_batch item 1"]
    with pytest.raises(event_bus.InvalidArgumentError, match="subscription_id must be str"):
        bus.unsubscribe(None)  # type: ignore[arg-type]
    with pytest.raises(event_bus.InvalidArgumentError, match="listener_id"):
        bus.off_state("x")  # type: ignore[arg-type]


OLD_FACE_MESSAGES = ("must be str", "must be bool", "must be a dict", "must be a number, not", "unexpected")


def test_option_values_are_judged_by_the_core(bus: event_bus.EventBusClient) -> None:
    """Option values reach the core as given; a bad one is the core's ValidationError, with the
    core's message, the same whichever way the option was spelled."""
    bad_publish = [({"trace_id": 5}, {"traceId": 5}), ({"metadata": [1]}, {"metadata": [1]}),
                   ({"broadcast": "yes"}, {"broadcast": "yes"}), ({"room": ["a"]}, {"room": ["a"]})]
    for kwargs, options in bad_publish:
        with pytest.raises(event_bus.ValidationError) as kw:
            bus.publish("a.b", {"a": 1}, **kwargs)
        with pytest.raises(event_bus.ValidationError) as op:
            bus.publish("a.b", {"a": 1}, options=options)
        assert kw.value.code == op.value.code == "VALIDATION_ERROR"
        assert str(kw.value) == str(op.value), kwargs
        assert not any(m in str(kw.value) for m in OLD_FACE_MESSAGES), str(kw.value)
    with pytest.raises(event_bus.ValidationError) as ei:
        bus.publish("a.b", 1, options="fast")  # type: ignore[arg-type]
    assert ei.value.code == "VALIDATION_ERROR"

    bad_subscribe = [({"timeout": "5"}, {"timeout": "5"}), ({"retry_on_error": "yes"}, {"retryOnError": "yes"}),
                     ({"max_retries": -3}, {"maxRetries": -3}), ({"timeout": -1}, {"timeout": -1}),
                     ({"concurrency": 1.5}, {"concurrency": 1.5})]
    for kwargs, options in bad_subscribe:
        with pytest.raises(event_bus.ValidationError) as kw:
            bus.subscribe("a.b", print, **kwargs)
        with pytest.raises(event_bus.ValidationError) as op:
            bus.subscribe("a.b", print, options)
        assert kw.value.code == op.value.code == "VALIDATION_ERROR"
        assert str(kw.value) == str(op.value), kwargs
        assert not any(m in str(kw.value) for m in OLD_FACE_MESSAGES), str(kw.value)
    with pytest.raises(event_bus.ValidationError):
        bus.subscribe("a.b", print, [1, 2])  # type: ignore[arg-type]
    with pytest.raises(event_bus.ValidationError):
        bus.subscribe("", print)
    with pytest.raises(event_bus.ValidationError, match="concurrency"):
        bus.subscribe("a.b", print, concurrency=0)
    with pytest.raises(event_bus.ValidationError, match="reserved|source"):
        bus.publish("a.b", {"a": 1}, metadata={"source": "x"})
    # Bad options of a batch item raise for the whole call, before anything is sent.
    with pytest.raises(event_bus.ValidationError):
        bus.publish_batch([("a.b", 1), ("a.b", 1, {"traceId": 5})])


def test_unknown_option_names_are_left_to_the_core(bus: event_bus.EventBusClient) -> None:
    """A key the core does not know is ignored by it (with a warning), keyword or dict key."""
    assert bus.publish("a.b", {"a": 1}, tracid="x").success
    assert bus.publish("a.b", {"a": 1}, options={"tarceId": "x"}).success
    bus.subscribe("a.b", print, timout=5)
    bus.subscribe("a.b", print, {"timout": 5})


def test_none_means_absent(bus: event_bus.EventBusClient) -> None:
    assert bus.publish("a.b", 1, trace_id=None, options={"room": None}).channel == "a.b"
    assert bus.subscribe("a.b", print, timeout=None).active


def test_fractional_timeout_reaches_the_core(bus: event_bus.EventBusClient) -> None:
    """`timeout=1.5` goes to the core as 1.5 (which rounds it up to 2 ms), not truncated."""
    sub = bus.subscribe("frac.a", print, timeout=1.5, retry_delay=10.25)
    assert sub.options == {"timeout": 1.5, "retryDelay": 10.25}
    # 0.5 ms truncated would be 0 (the 30 s default); rounded up it is 1 ms, so a handler that
    # takes 300 ms fails.
    ran: list[int] = []
    bus.subscribe("frac.b", lambda ev: (time.sleep(0.3), ran.append(1)), timeout=0.5)
    before = bus.get_stats()["eventsFailed"]
    bus.publish("frac.b", 1)
    assert wait_for(lambda: bus.get_stats()["eventsFailed"] > before)


def test_config_errors() -> None:
    with pytest.raises(event_bus.ConfigError, match="serviceName is required") as ei:
        event_bus.EventBusClient({"redis": {"host": "x", "port": 1}})
    assert ei.value.code == "CONFIG_ERROR" and isinstance(ei.value, ValueError)
    with pytest.raises(event_bus.ConfigError, match="redis configuration is required"):
        event_bus.EventBusClient({"serviceName": "a"})
    with pytest.raises(event_bus.ConfigError) as ei:
        event_bus.EventBusClient(service_name="a", transport="memory", redis_port="6379x")
    assert ei.value.code == "CONFIG_ERROR"
    with pytest.raises(event_bus.InvalidArgumentError, match="config must be a dict") as ei:
        event_bus.EventBusClient("not a dict")  # type: ignore[arg-type]
    assert ei.value.code == "INVALID_ARGUMENT"
    with pytest.raises(event_bus.InvalidArgumentError, match="unexpected config keyword"):
        event_bus.EventBusClient(service_name="a", redis_uri="x")
    with pytest.raises(event_bus.InvalidArgumentError, match="not JSON serializable"):
        event_bus.EventBusClient({"serviceName": "a", "transport": "memory", "x": {1, 2}})
    with pytest.raises(event_bus.ConfigError, match="not JSON serializable"):
        event_bus.EventBusClient({"serviceName": "a", "transport": "memory", "x": float("nan")})


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


HIERARCHY = [
    # class, code, built-in base (besides EventBusError)
    (event_bus.ValidationError, "VALIDATION_ERROR", ValueError),
    (event_bus.ConfigError, "CONFIG_ERROR", ValueError),
    (event_bus.InvalidArgumentError, "INVALID_ARGUMENT", TypeError),
    (event_bus.NotConnectedError, "NOT_CONNECTED", None),
    (event_bus.ConnectionError, "CONNECTION_ERROR", builtins.ConnectionError),
    (event_bus.TimeoutError, "TIMEOUT", builtins.TimeoutError),
    (event_bus.QueueFullError, "QUEUE_FULL", None),
    (event_bus.OutcomeUnknownError, "OUTCOME_UNKNOWN", None),
    (event_bus.ClosedError, "CLOSED", None),
    (event_bus.ProtocolError, "PROTOCOL_ERROR", None),
    (event_bus.PermissionDeniedError, "PERMISSION_DENIED", PermissionError),
    (event_bus.NotSupportedError, "NOT_SUPPORTED", NotImplementedError),
    (event_bus.InternalError, "INTERNAL_ERROR", None),
]


@pytest.mark.parametrize("cls, code, builtin", HIERARCHY, ids=[c.__name__ for c, _, _ in HIERARCHY])
def test_hierarchy(cls: type, code: str, builtin: "type | None") -> None:
    assert issubclass(cls, event_bus.EventBusError) and issubclass(cls, Exception)
    assert cls.__module__ == "event_bus" and getattr(event_bus, cls.__name__) is cls
    e = cls("m")
    assert e.code == code and e.event_id is None and str(e) == "m"
    if builtin is not None:
        assert isinstance(e, builtin)
    if cls in (event_bus.QueueFullError, event_bus.OutcomeUnknownError):
        assert isinstance(e, event_bus.PublishError)
    # OSError subclasses keep a one-argument message as it is.
    assert not isinstance(e, OSError) or (e.args == ("m",) and e.errno is None)


def test_builtin_catches(uid: str) -> None:
    """Code that catches the built-in exceptions catches ours."""
    from conftest import free_port

    bus = event_bus.EventBusClient(
        {"serviceName": "e", "redis": {"host": "127.0.0.1", "port": free_port(), "connectTimeout": 500}}
    )
    with pytest.raises(OSError) as ei:  # builtins.ConnectionError or builtins.TimeoutError
        bus.connect()
    assert isinstance(ei.value, (builtins.ConnectionError, builtins.TimeoutError))
    assert isinstance(ei.value, event_bus.EventBusError) and ei.value.code in ("CONNECTION_ERROR", "TIMEOUT")
    with event_bus.EventBusClient(service_name="e", redis_url=f"memory://{uid}") as b:
        with pytest.raises(ValueError):
            b.publish("bad type!", 1)
        with pytest.raises(TypeError):
            b.publish("a.b", {1})


def test_connect_failure_has_its_cause() -> None:
    from conftest import free_port

    port = free_port()
    bus = event_bus.EventBusClient({"serviceName": "e", "redis": {"host": "127.0.0.1", "port": port}})
    with pytest.raises(event_bus.ConnectionError) as ei:
        bus.connect()
    cause = ei.value.__cause__
    assert isinstance(cause, Exception) and not isinstance(cause, event_bus.EventBusError)
    # A refused TCP connection is an OSError underneath: it stays one.
    assert isinstance(cause, OSError), repr(cause)


def test_failed_publish_results_carry_codes(bus: event_bus.EventBusClient) -> None:
    rs = bus.publish_batch([{"type": "", "data": 1}, {"data": 1}, {"type": "a.b"}])
    assert [r.success for r in rs] == [False, False, False]
    for r in rs:
        assert isinstance(r.error, event_bus.ValidationError)
        assert r.error.code == "VALIDATION_ERROR" and r.error.event_id == r.event_id
    assert [str(r.error) for r in rs] == ["Event type is required", "Event type is required",
                                         "Event data is required"]


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


def test_a_refused_publish_is_counted_by_the_core(bus: event_bus.EventBusClient) -> None:
    """Data JSON cannot carry and options the core refuses are failed publishes, counted once,
    whichever side found the problem."""
    before = bus.get_stats()["eventsFailed"]
    with pytest.raises(event_bus.ValidationError):
        bus.publish("a.b", 1, trace_id=5)
    with pytest.raises(event_bus.InvalidArgumentError):
        bus.publish("a.b", {1, 2})
    with pytest.raises(event_bus.ValidationError):
        bus.publish("a b", 1)
    assert bus.get_stats()["eventsFailed"] == before + 3
