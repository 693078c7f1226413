"""Rooms over Socket.IO, against the test hub (tests/fixtures/socketio-hub/hub.js, on the npm
socket.io server), with the blocking and the asyncio client: join/leave/members, room events
reaching exactly the members (once per subscription, although they come by Redis and by
Socket.IO), the hub restarted mid-test, a wrong token, an unreachable hub, the polling
transport, and no `client` config at all. A scripted fake hub (Engine.IO long-polling, below)
checks which exception each failure of a room call raises.

The hub needs `npm ci --prefix tests/fixtures/socketio-hub` (scripts/test-all.sh does it).
"""

from __future__ import annotations

import asyncio
import http.server
import json
import queue
import shutil
import subprocess
import threading
import time
import urllib.request
from typing import Any, Callable, Iterator, Optional, Sequence

import pytest

import event_bus
import event_bus.asyncio as aio
from conftest import REDIS_URL, ROOT, free_port, unique, wait_for

HUB_DIR = ROOT / "tests" / "fixtures" / "socketio-hub"
TOKEN = "py-hub-secret"
NOT_CONNECTED = "Socket.IO not connected"
REJECTED = "Socket.IO connection rejected by the hub: invalid token"


class Hub:
    """The test hub as a child process (stdin a pipe: it exits when the pipe closes)."""

    def __init__(self, port: int = 0, extra: Sequence[str] = ()) -> None:
        self.port = port
        self.extra = list(extra)
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.start()

    def start(self) -> None:
        """Start the hub (again on the same port after :meth:`kill`)."""
        if shutil.which("node") is None:
            pytest.fail("node is required to run the Socket.IO test hub")
        if not (HUB_DIR / "node_modules" / "socket.io").is_dir():
            pytest.fail("the test hub's dependencies are missing: run `npm ci --prefix tests/fixtures/socketio-hub`")
        proc = subprocess.Popen(
            ["node", str(HUB_DIR / "hub.js"), "--port", str(self.port), "--token", TOKEN,
             "--redis", REDIS_URL, *self.extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("READY "):
            proc.kill()
            proc.wait()
            raise RuntimeError(f"the hub did not start: {line!r}")
        self.port = int(line.split()[1])
        self.proc = proc

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    pipe.close()
            self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def http(self, method: str, path: str) -> Any:
        req = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)

    def state(self) -> dict[str, Any]:
        st: dict[str, Any] = self.http("GET", "/state")
        return st

    def socket_of(self, service: str) -> Optional[dict[str, Any]]:
        """The hub's view of the socket of `service` (None when it has none)."""
        for s in self.state()["sockets"]:
            if s["serviceName"] == service:
                found: dict[str, Any] = s
                return found
        return None


@pytest.fixture
def hubs() -> Iterator[Callable[..., Hub]]:
    """`hubs(port=0, extra=())` starts a hub; every hub started is killed after the test."""
    started: list[Hub] = []

    def start(port: int = 0, extra: Sequence[str] = ()) -> Hub:
        h = Hub(port, extra)
        started.append(h)
        return h

    yield start
    for h in started:
        h.kill()


@pytest.fixture
def hub(hubs: Callable[..., Hub]) -> Hub:
    return hubs()


def client_config(url: str, token: str = TOKEN, **extra: Any) -> dict[str, Any]:
    """The Socket.IO `client` config, with short delays for tests."""
    return {"url": url, "authToken": token, "reconnectionDelay": 50, "reconnectionDelayMax": 200,
            "timeout": 3000, **extra}


def config(service: str, client: Optional[dict[str, Any]] = None, **top: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {"serviceName": service, "redis": {"url": REDIS_URL}, "logLevel": "error", **top}
    if client is not None:
        cfg["client"] = client
    return cfg


def blocking(service: str, hub: Hub) -> event_bus.EventBusClient:
    bus = event_bus.EventBusClient(config(service, client_config(hub.url)))
    bus.connect()
    return bus


async def asyncio_client(service: str, hub: Hub) -> aio.EventBusClient:
    bus = aio.EventBusClient(config(service, client_config(hub.url)))
    await bus.connect()
    return bus


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.02)
    return cond()


def settle() -> None:
    """Give a duplicate (the second copy of an event, by the other path) time to arrive before
    counting. Not a timing assertion: a too-short pause can only hide a failure."""
    time.sleep(0.3)


def collect_type(out: list[event_bus.Event], ty: str) -> Callable[[event_bus.Event], None]:
    """A handler keeping the events of type `ty`."""

    def handler(ev: event_bus.Event) -> None:
        if ev.type == ty:
            out.append(ev)

    return handler


def collect_field(out: list[Any], field: str) -> Callable[[event_bus.Event], None]:
    """A handler keeping `data[field]` of each event."""

    def handler(ev: event_bus.Event) -> None:
        out.append(ev.data[field])

    return handler


def socketio_check(h: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = h["checks"]["socketio"]
    return c


# --------------------------------------------------------------------------- join/leave/members


def test_join_leave_and_members_blocking(hub: Hub) -> None:
    a_name, b_name = unique("py-a"), unique("py-b")
    a, b = blocking(a_name, hub), blocking(b_name, hub)
    room = unique("room")
    try:
        a.join_room(room)
        b.join_room(room)
        assert a.get_room_members(room) == sorted([a_name, b_name])
        assert b.get_room_members(room) == sorted([a_name, b_name])
        s = a.get_stats()
        assert s["activeRooms"] == 1
        assert s["activeConnections"] == 3  # publisher, subscriber, hub
        h = a.health_check()
        assert h["status"] == "healthy", h
        c = socketio_check(h)
        assert c["status"] == "pass"
        assert c["details"]["transport"] == "websocket"
        assert c["details"]["rooms"] == [room]
        assert c["details"]["url"] == hub.url
        a_sock = hub.socket_of(a_name)
        assert a_sock is not None and room in a_sock["rooms"]

        a.leave_room(room)
        assert b.get_room_members(room) == [b_name]
        assert a.get_stats()["activeRooms"] == 0
        assert socketio_check(a.health_check())["details"]["rooms"] == []
        # Leaving twice, or a room never joined, is not an error for the hub.
        a.leave_room(room)

        with pytest.raises(event_bus.ValidationError, match="Room name cannot be empty") as ei:
            a.join_room("")
        assert ei.value.code == "VALIDATION_ERROR"
        with pytest.raises(event_bus.ValidationError):
            a.get_room_members("")
    finally:
        a.disconnect()
        b.disconnect()
    assert wait_for(lambda: hub.socket_of(a_name) is None and hub.socket_of(b_name) is None, 10)
    # After disconnect(), rooms fail as without a hub.
    for call in (a.join_room, a.leave_room, a.get_room_members):
        with pytest.raises(event_bus.ConnectionError, match=f"^{NOT_CONNECTED}$") as ci:
            call(room)
        assert ci.value.code == "CONNECTION_ERROR"


async def test_join_leave_and_members_asyncio(hub: Hub) -> None:
    a_name, b_name = unique("py-aa"), unique("py-ab")
    room = unique("room")
    async with aio.EventBusClient(config(a_name, client_config(hub.url))) as a:
        # The same config as keyword arguments.
        async with aio.EventBusClient(service_name=b_name, redis_url=REDIS_URL, log_level="error",
                                      client=client_config(hub.url)) as b:
            await a.join_room(room)
            await b.join_room(room)
            assert await a.get_room_members(room) == sorted([a_name, b_name])
            assert (await a.get_stats())["activeRooms"] == 1
            h = await b.health_check()
            assert h["status"] == "healthy", h
            assert socketio_check(h)["details"]["rooms"] == [room]
            await b.leave_room(room)
            assert await a.get_room_members(room) == [a_name]
            assert (await b.get_stats())["activeRooms"] == 0
            with pytest.raises(event_bus.ValidationError, match="Room name cannot be empty"):
                await b.leave_room("")
        with pytest.raises(event_bus.ConnectionError, match=f"^{NOT_CONNECTED}$"):
            await b.join_room(room)
        # Concurrent room calls on one client each get their own ack.
        rooms = [unique("many") for _ in range(10)]
        await asyncio.gather(*(a.join_room(r) for r in rooms))
        members = await asyncio.gather(*(a.get_room_members(r) for r in rooms))
        assert members == [[a_name]] * 10
        assert (await a.get_stats())["activeRooms"] == 11


# --------------------------------------------------------------------------- room events


def test_room_events_reach_exactly_the_members_once_blocking(hub: Hub) -> None:
    room = unique("room")
    prefix = unique("chat")
    ty = f"{prefix}.sent"
    sender = blocking(unique("py-sender"), hub)
    outsider = blocking(unique("py-outsider"), hub)
    members: list[tuple[event_bus.EventBusClient, list[event_bus.Event], list[event_bus.Event]]] = []
    outside: list[event_bus.Event] = []
    try:
        for i in range(2):
            bus = blocking(unique(f"py-member{i}"), hub)
            bus.join_room(room)
            by_type: list[event_bus.Event] = []
            everything: list[event_bus.Event] = []
            bus.subscribe(f"{prefix}.*", by_type.append)
            # `*` matches the Redis channel room:<room> AND the type of the Socket.IO copy:
            # the handler must still run once per event. (`*` also sees the shared Redis'
            # other traffic: only this test's type is counted.)
            bus.subscribe("*", collect_type(everything, ty))
            members.append((bus, by_type, everything))
        outsider.subscribe(ty, outside.append)
        outsider.subscribe(f"{prefix}.*", outside.append)

        for n in range(5):
            r = sender.publish_to_room(room, ty, {"n": n})
            assert r.success and r.channel == f"room:{room}"
        for _, by_type, everything in members:
            assert wait_for(lambda: len(by_type) >= 5 and len(everything) >= 5, 10)
        settle()
        for _, by_type, everything in members:
            assert [e.data["n"] for e in by_type] == [0, 1, 2, 3, 4], "in order, once each"
            assert all(e.channel == ty for e in by_type), "Socket.IO events carry their type as channel"
            assert len(everything) == 5, "an event by Redis and by Socket.IO runs a handler once"
            assert sorted(e.data["n"] for e in everything) == [0, 1, 2, 3, 4]
            assert {e.id for e in everything} == {e.id for e in by_type}
        assert outside == [], "not a member: nothing"
    finally:
        for bus, _, _ in members:
            bus.disconnect()
        sender.disconnect()
        outsider.disconnect()


async def test_room_events_reach_exactly_the_members_once_asyncio(hub: Hub) -> None:
    room = unique("room")
    prefix = unique("achat")
    ty = f"{prefix}.sent"
    loop = asyncio.get_running_loop()
    member = await asyncio_client(unique("py-amember"), hub)
    outsider = await asyncio_client(unique("py-aoutsider"), hub)
    sender = await asyncio_client(unique("py-asender"), hub)
    got: list[event_bus.Event] = []
    star: list[event_bus.Event] = []
    outside: list[event_bus.Event] = []
    on_loop: list[bool] = []

    async def on_type(ev: event_bus.Event) -> None:
        on_loop.append(asyncio.get_running_loop() is loop)
        got.append(ev)

    async def on_star(ev: event_bus.Event) -> None:
        if ev.type == ty:
            star.append(ev)

    async def on_outside(ev: event_bus.Event) -> None:
        outside.append(ev)

    try:
        await member.join_room(room)
        await member.subscribe(ty, on_type)
        await member.subscribe("*", on_star)
        await outsider.subscribe(ty, on_outside)
        for n in range(5):
            await sender.publish_to_room(room, ty, {"n": n})
        assert await until(lambda: len(got) >= 5 and len(star) >= 5)
        await asyncio.sleep(0.3)  # let a duplicate arrive before counting (see settle())
        assert [e.data["n"] for e in got] == [0, 1, 2, 3, 4]
        assert all(on_loop)
        assert len(star) == 5
        assert outside == []
    finally:
        for b in (member, outsider, sender):
            await b.disconnect()


# --------------------------------------------------------------------------- hub restart


async def test_hub_restarted_mid_test_rejoins_and_resubscribes_asyncio(hubs: Callable[..., Hub]) -> None:
    hub = hubs()
    name = unique("py-restart")
    room = unique("room")
    ty = f"{unique('rt')}.x"
    states: list[dict[str, Any]] = []
    got: list[Any] = []

    async def handler(ev: event_bus.Event) -> None:
        got.append(ev.data)

    def sio_states(kind: str) -> list[dict[str, Any]]:
        return [s for s in states if s.get("connection") == "socketio" and s["type"] == kind]

    bus = aio.EventBusClient(config(name, client_config(hub.url)))
    bus.on_state(states.append)
    await bus.connect()
    pub = await asyncio_client(unique("py-pub"), hub)
    try:
        assert await until(lambda: len(sio_states("connected")) == 1)
        assert sio_states("connected")[0]["reconnect"] is False
        await bus.join_room(room)
        sub = await bus.subscribe(ty, handler)

        def announced() -> bool:
            s = hub.socket_of(name)
            return s is not None and room in s["rooms"] and len(s["subscriptions"]) == 1

        assert await until(announced), hub.socket_of(name)
        sock = hub.socket_of(name)
        assert sock is not None
        assert sock["subscriptions"][0]["pattern"] == ty
        assert sock["subscriptions"][0]["subscriptionId"] == sub.id
        await pub.publish_to_room(room, ty, {"n": 1})
        assert await until(lambda: got == [{"n": 1}])

        hub.kill()
        assert await until(lambda: len(sio_states("disconnected")) >= 1), states
        assert sio_states("disconnected")[0]["reason"]
        with pytest.raises(event_bus.ConnectionError, match=f"^{NOT_CONNECTED}$"):
            await bus.join_room(unique("other"))
        h = await bus.health_check()
        assert h["status"] == "degraded", h
        assert socketio_check(h)["status"] == "fail"
        assert h["checks"]["redis"]["status"] == "pass"

        hub.start()  # the same port
        assert await until(announced, 20), f"rejoined and resubscribed: {hub.socket_of(name)}"
        sock = hub.socket_of(name)
        assert sock is not None
        assert sock["subscriptions"][0]["subscriptionId"] == sub.id
        assert sock["subscriptions"][0]["pattern"] == ty
        assert await until(lambda: any(s["reconnect"] for s in sio_states("connected"))), states
        assert sio_states("reconnecting"), states
        assert all(s["attempt"] >= 1 and s["delay"] >= 0 for s in sio_states("reconnecting"))
        h = await bus.health_check()
        assert h["status"] == "healthy", h
        assert socketio_check(h)["details"]["reconnects"] >= 1
        assert socketio_check(h)["details"]["rooms"] == [room]

        # Receives again through the restarted hub (the publisher only needs Redis).
        await pub.publish_to_room(room, ty, {"n": 2})
        assert await until(lambda: got == [{"n": 1}, {"n": 2}]), got

        # Unsubscribing tells the hub.
        assert await bus.unsubscribe(sub.id)

        def unannounced() -> bool:
            s = hub.socket_of(name)
            return s is not None and s["subscriptions"] == []

        assert await until(unannounced), hub.socket_of(name)
    finally:
        await bus.disconnect()
        await pub.disconnect()


def test_hub_restarted_mid_test_blocking(hubs: Callable[..., Hub]) -> None:
    hub = hubs()
    name = unique("py-brestart")
    room = unique("room")
    ty = f"{unique('brt')}.x"
    states: list[dict[str, Any]] = []
    got: list[Any] = []
    with event_bus.EventBusClient(config(name, client_config(hub.url))) as bus:
        bus.on_state(states.append)
        bus.join_room(room)
        bus.subscribe(ty, lambda ev: got.append(ev.data))
        hub.kill()
        assert wait_for(lambda: any(s["type"] == "disconnected" and s["connection"] == "socketio"
                                    for s in states), 10), states
        hub.start()

        def back() -> bool:
            s = hub.socket_of(name)
            return s is not None and room in s["rooms"] and len(s["subscriptions"]) == 1

        assert wait_for(back, 20), hub.socket_of(name)
        assert any(s["type"] == "connected" and s["connection"] == "socketio" and s["reconnect"]
                   for s in states), states
        with event_bus.EventBusClient(config(unique("py-bpub"))) as pub:
            pub.publish_to_room(room, ty, {"n": 1})
        assert wait_for(lambda: got == [{"n": 1}], 10)
        assert bus.get_room_members(room) == [name]


# --------------------------------------------------------------------------- refused / unreachable


def test_wrong_token_fails_connect_blocking(hub: Hub) -> None:
    bus = event_bus.EventBusClient(config(unique("py-bad"), client_config(hub.url, token="wrong")))
    with pytest.raises(event_bus.ConnectionError) as ei:
        bus.connect()
    assert str(ei.value) == REJECTED
    assert ei.value.code == "CONNECTION_ERROR"
    assert not bus.is_connected()
    assert hub.state()["rejected"] == 1
    with pytest.raises(event_bus.NotConnectedError):
        bus.publish("a.b", {})
    bus.disconnect()


async def test_wrong_token_fails_connect_asyncio(hub: Hub) -> None:
    bus = aio.EventBusClient(config(unique("py-abad"), client_config(hub.url, token="wrong")))
    with pytest.raises(event_bus.ConnectionError) as ei:
        await bus.connect()
    assert str(ei.value) == REJECTED
    assert ei.value.code == "CONNECTION_ERROR"
    assert not bus.is_connected()
    assert hub.state()["rejected"] == 1
    # The right token on the same hub works (the failure was not sticky).
    async with aio.EventBusClient(config(unique("py-agood"), client_config(hub.url))) as ok:
        assert ok.is_connected()
    assert hub.state()["rejected"] == 1


def test_unreachable_hub_blocking(hubs: Callable[..., Hub]) -> None:
    port = free_port()  # nothing listens there
    url = f"http://127.0.0.1:{port}"

    strict = event_bus.EventBusClient(config(unique("py-strict"), client_config(url, reconnection=False)))
    with pytest.raises(event_bus.ConnectionError, match="Socket.IO connection to 127.0.0.1") as ei:
        strict.connect()
    assert ei.value.code == "CONNECTION_ERROR"
    assert not strict.is_connected()

    name = unique("py-patient")
    with event_bus.EventBusClient(config(name, client_config(url))) as bus:
        assert bus.is_connected()
        h = bus.health_check()
        assert h["status"] == "degraded", h
        assert socketio_check(h)["status"] == "fail"
        assert h["checks"]["redis"]["status"] == "pass"
        with pytest.raises(event_bus.ConnectionError, match=f"^{NOT_CONNECTED}$"):
            bus.join_room("r")
        assert bus.publish(f"{unique('t')}.y", {}).success  # Redis is unaffected

        hubs(port)
        room = unique("room")
        joined: list[bool] = []

        def try_join() -> bool:
            try:
                bus.join_room(room)
            except event_bus.ConnectionError as e:
                assert str(e) == NOT_CONNECTED
                return False
            joined.append(True)
            return True

        assert wait_for(try_join, 20), "joined once the hub came up"
        assert bus.get_room_members(room) == [name]
        assert bus.health_check()["status"] == "healthy"


async def test_unreachable_hub_asyncio(hubs: Callable[..., Hub]) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    strict = aio.EventBusClient(config(unique("py-astrict"), client_config(url, reconnection=False)))
    with pytest.raises(event_bus.ConnectionError, match="Socket.IO connection to 127.0.0.1"):
        await strict.connect()
    assert not strict.is_connected()

    name = unique("py-apatient")
    async with aio.EventBusClient(config(name, client_config(url))) as bus:
        h = await bus.health_check()
        assert h["status"] == "degraded", h
        assert socketio_check(h)["status"] == "fail"
        for call in (bus.join_room, bus.leave_room, bus.get_room_members):
            with pytest.raises(event_bus.ConnectionError, match=f"^{NOT_CONNECTED}$"):
                await call("r")

        hubs(port)
        room = unique("room")
        deadline = time.monotonic() + 20
        while True:
            try:
                await bus.join_room(room)
                break
            except event_bus.ConnectionError as e:
                assert str(e) == NOT_CONNECTED
                assert time.monotonic() < deadline, "never joined once the hub came up"
                await asyncio.sleep(0.05)
        assert await bus.get_room_members(room) == [name]
        assert (await bus.health_check())["status"] == "healthy"


# --------------------------------------------------------------------------- long-polling


POLLING_HUB = ["--transports", "polling", "--ping-interval", "300", "--ping-timeout", "300"]


def test_long_polling_carries_everything_blocking(hubs: Callable[..., Hub]) -> None:
    # A polling-only hub: the default (websocket first) falls back to polling; a client
    # configured for polling only (keyword `websocket=`) uses it directly.
    hub = hubs(0, POLLING_HUB)
    room = unique("room")
    ty = f"{unique('poll')}.p"
    fallback = event_bus.EventBusClient(config(unique("py-poller"), client_config(hub.url)))
    direct = event_bus.EventBusClient(service_name=unique("py-poller"), redis_url=REDIS_URL,
                                      log_level="error", client=client_config(hub.url),
                                      websocket={"transports": ["polling"]})
    buses = [fallback, direct]
    got: list[list[Any]] = [[], []]
    try:
        for bus, out in zip(buses, got):
            bus.connect()
            c = socketio_check(bus.health_check())
            assert c["details"]["transport"] == "polling", c
            bus.join_room(room)
            bus.subscribe(ty, collect_field(out, "i"))
        assert len(fallback.get_room_members(room)) == 2
        # Longer than several ping intervals: the session stays up (pings answered).
        time.sleep(1.5)
        for i in range(20):
            fallback.publish_to_room(room, ty, {"i": i})
        for bus, out in zip(buses, got):
            assert wait_for(lambda: len(out) >= 20, 10), out
            settle()
            assert out == list(range(20))
            assert bus.health_check()["status"] == "healthy"
            assert bus.get_stats()["reconnects"] == 0
    finally:
        for bus in buses:
            bus.disconnect()


async def test_long_polling_asyncio(hubs: Callable[..., Hub]) -> None:
    hub = hubs(0, POLLING_HUB)
    name = unique("py-apoller")
    room = unique("room")
    ty = f"{unique('apoll')}.p"
    got: list[int] = []
    async with aio.EventBusClient(config(name, client_config(hub.url),
                                         websocket={"transports": ["polling"]})) as bus:
        assert socketio_check(await bus.health_check())["details"]["transport"] == "polling"
        await bus.join_room(room)
        await bus.subscribe(ty, lambda ev: got.append(ev.data["i"]))
        await asyncio.sleep(1.0)  # several ping intervals
        assert await bus.get_room_members(room) == [name]
        for i in range(10):
            await bus.publish_to_room(room, ty, {"i": i})
        assert await until(lambda: len(got) >= 10)
        await asyncio.sleep(0.3)
        assert got == list(range(10))


def test_bad_transport_config_is_a_config_error() -> None:
    with pytest.raises(event_bus.ConfigError, match="websocket.transports") as ei:
        event_bus.EventBusClient(config(unique("py-x"), client_config("http://127.0.0.1:1"),
                                        websocket={"transports": ["carrier-pigeon"]}))
    assert ei.value.code == "CONFIG_ERROR" and isinstance(ei.value, ValueError)


# --------------------------------------------------------------------------- no client config


def test_without_client_config_rooms_fail_blocking() -> None:
    with event_bus.EventBusClient(config(unique("py-plain"))) as bus:
        for call in (bus.join_room, bus.leave_room, bus.get_room_members):
            with pytest.raises(event_bus.ConnectionError, match=f"^{NOT_CONNECTED}$") as ei:
                call("r")
            assert ei.value.code == "CONNECTION_ERROR"
        assert "socketio" not in bus.health_check()["checks"]
        assert bus.get_stats()["activeRooms"] == 0


async def test_without_client_config_rooms_fail_asyncio() -> None:
    async with aio.EventBusClient(config(unique("py-aplain"))) as bus:
        for call in (bus.join_room, bus.leave_room, bus.get_room_members):
            with pytest.raises(event_bus.ConnectionError, match=f"^{NOT_CONNECTED}$") as ei:
                await call("r")
            assert ei.value.code == "CONNECTION_ERROR"
        assert "socketio" not in (await bus.health_check())["checks"]


# --------------------------------------------------------------------------- error mapping


class FakeHub:
    """A scripted Socket.IO hub on Engine.IO v4 long-polling, for answers the real hub never
    gives: ``acks`` maps an event name to its ack payload, or to None for no answer at all."""

    def __init__(self, acks: dict[str, Optional[dict[str, Any]]]) -> None:
        self.acks = acks
        self.outbox: "queue.Queue[str]" = queue.Queue()
        self.received: list[str] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the client expects

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def reply(self, body: str) -> None:
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if "sid=" not in self.path:
                    hs = {"sid": "fake", "upgrades": [], "pingInterval": 25000, "pingTimeout": 20000,
                          "maxPayload": 1000000}
                    return self.reply("0" + json.dumps(hs))
                try:
                    packets = [hub.outbox.get(timeout=0.5)]
                except queue.Empty:
                    return self.reply("6")  # noop: poll again
                while not hub.outbox.empty():
                    packets.append(hub.outbox.get_nowait())
                self.reply("\x1e".join(packets))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                for p in body.split("\x1e"):
                    hub.received.append(p)
                    hub.on_packet(p)
                self.reply("ok")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def on_packet(self, p: str) -> None:
        if p.startswith("40"):  # Socket.IO CONNECT with the auth payload: accepted
            self.outbox.put('40{"sid":"fake-socket"}')
        elif p.startswith("42"):  # EVENT; with an ack id when digits follow
            rest = p[2:]
            digits = len(rest) - len(rest.lstrip("0123456789"))
            if digits == 0:
                return
            ack_id, (event, *_args) = rest[:digits], json.loads(rest[digits:])
            ack = self.acks.get(event)
            if ack is not None:
                self.outbox.put(f"43{ack_id}{json.dumps([ack])}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    h = FakeHub({
        "join_room": {"success": False, "error": "rooms are closed today"},
        "get_room_members": {"success": True},  # no members list
        "leave_room": None,  # never answered
    })
    yield h
    h.close()


def fake_config(hub: FakeHub) -> dict[str, Any]:
    return config(unique("py-fake"), client_config(hub.url, timeout=1000),
                  websocket={"transports": ["polling"]})


def test_room_errors_map_to_the_right_exceptions_blocking(fake_hub: FakeHub) -> None:
    with event_bus.EventBusClient(fake_config(fake_hub)) as bus:
        assert socketio_check(bus.health_check())["status"] == "pass"
        with pytest.raises(event_bus.ProtocolError, match="rooms are closed today") as ei:
            bus.join_room("r1")
        assert not isinstance(ei.value, event_bus.PublishError), "a hub refusal is not a PublishError"
        assert ei.value.code == "PROTOCOL_ERROR"
        assert str(ei.value) == 'the Socket.IO hub refused join_room for room "r1": rooms are closed today'
        assert bus.get_stats()["activeRooms"] == 0, "a refused room is not remembered"
        with pytest.raises(event_bus.ProtocolError, match="without a members list") as ei:
            bus.get_room_members("r1")
        assert ei.value.code == "PROTOCOL_ERROR"
        with pytest.raises(event_bus.TimeoutError, match="did not acknowledge leave_room within 1000 ms") as ti:
            bus.leave_room("r1")
        assert ti.value.code == "TIMEOUT"
        assert bus.is_connected()
    assert any(p.startswith('421["join_room",{"room":"r1"}]') for p in fake_hub.received), fake_hub.received


async def test_room_errors_map_to_the_right_exceptions_asyncio(fake_hub: FakeHub) -> None:
    async with aio.EventBusClient(fake_config(fake_hub)) as bus:
        with pytest.raises(event_bus.ProtocolError, match="rooms are closed today") as ei:
            await bus.join_room("r2")
        assert ei.value.code == "PROTOCOL_ERROR"
        with pytest.raises(event_bus.ProtocolError, match="without a members list") as ei:
            await bus.get_room_members("r2")
        assert ei.value.code == "PROTOCOL_ERROR"
        with pytest.raises(event_bus.TimeoutError, match="did not acknowledge leave_room") as ti:
            await bus.leave_room("r2")
        assert ti.value.code == "TIMEOUT"
