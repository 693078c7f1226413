"""Durable delivery on the shared Redis (event types unique to each test): a member away gets
what was published meanwhile, groups are independent, plain subscribers still get persistent
events live, a SIGKILLed member's pending events are finished by another member, poison events
are dead-lettered, listed, replayed and purged; sync and asyncio clients."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
from typing import Any, Iterator

import pytest
import redis

import event_bus
import event_bus.asyncio as aio
from conftest import REDIS_URL, unique, wait_for

CFG: dict[str, Any] = {"serviceName": "pytest-durable", "redis": {"url": REDIS_URL}, "logLevel": "error"}


@pytest.fixture
def raw() -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    created: list[str] = []
    r.created = created  # type: ignore[attr-defined]
    yield r
    for t in created:
        r.delete(f"events:{{{t}}}", f"events:{{{t}}}:dead")
    r.close()


def new_type(raw: redis.Redis, prefix: str) -> str:
    t = unique(prefix)
    raw.created.append(t)  # type: ignore[attr-defined]
    return t


def pending(raw: redis.Redis, t: str, group: str) -> int:
    info: Any = raw.xpending(f"events:{{{t}}}", group)
    return int(info["pending"])


@pytest.fixture
def bus() -> Iterator[event_bus.EventBusClient]:
    b = event_bus.EventBusClient(CFG)
    b.connect()
    yield b
    b.disconnect()


def publish_many(b: event_bus.EventBusClient, t: str, n: int, **data: Any) -> list[str]:
    return [b.publish(t, {"n": i, **data}, persistent=True).event_id for i in range(n)]


def test_member_away_gets_everything_once(bus: event_bus.EventBusClient, raw: redis.Redis) -> None:
    t = new_type(raw, "pydur.away")
    group = unique("g")
    first = bus.subscribe(t, lambda e: None, durable={"group": group, "consumer": "m1"})
    bus.unsubscribe(first.id)
    ids = publish_many(bus, t, 500)
    assert raw.xlen(f"events:{{{t}}}") == 500
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def handler(e: event_bus.Event) -> None:
        with lock:
            seen[e.id] = seen.get(e.id, 0) + 1

    with event_bus.EventBusClient(CFG) as back:
        back.subscribe(t, handler, durable={"group": group, "consumer": "m1", "count": 50})
        assert wait_for(lambda: len(seen) == 500, 30)
        assert wait_for(lambda: pending(raw, t, group) == 0, 10)
    assert sorted(seen) == sorted(ids)
    assert set(seen.values()) == {1}
    assert bus.get_stats()["persistentPublished"] >= 500


def test_two_groups_each_get_all(bus: event_bus.EventBusClient, raw: redis.Redis) -> None:
    t = new_type(raw, "pydur.groups")
    got: dict[str, set[str]] = {"a": set(), "b": set()}
    bus.subscribe(t, lambda e: got["a"].add(e.id), durable={"group": unique("ga")})
    bus.subscribe(t, lambda e: got["b"].add(e.id), durable={"group": unique("gb")})
    ids = set(publish_many(bus, t, 100))
    assert wait_for(lambda: len(got["a"]) == 100 and len(got["b"]) == 100, 20)
    assert got["a"] == ids and got["b"] == ids


def test_plain_subscriber_live_and_delivery(bus: event_bus.EventBusClient, raw: redis.Redis) -> None:
    t = new_type(raw, "pydur.plain")
    group = unique("g")
    plain: list[event_bus.Event] = []
    durable: list[event_bus.Event] = []
    bus.subscribe(t, plain.append)
    bus.subscribe(t, durable.append, durable={"group": group})
    [eid] = publish_many(bus, t, 1)
    assert wait_for(lambda: len(plain) == 1 and len(durable) == 1, 10)
    assert plain[0].id == eid and plain[0].delivery is None
    d = durable[0].delivery
    assert d is not None
    assert (d.attempt, d.group) == (1, group)
    assert "-" in d.stream_id
    assert durable[0].to_dict()["delivery"] == {"attempt": 1, "streamId": d.stream_id, "group": group}
    assert isinstance(d, event_bus.Delivery)


MEMBER = """
    import sys, threading, event_bus
    url, t, group = sys.argv[1:4]
    bus = event_bus.EventBusClient(service_name="pydur-member", redis_url=url, log_level="error")
    bus.connect()
    stuck = threading.Event()
    def handler(e):
        print("got", e.id, flush=True)
        stuck.wait()  # never finishes: the entry stays pending
    bus.subscribe(t, handler, timeout=600000,
                  durable={"group": group, "consumer": "victim", "min_idle_time": 60000})
    print("ready", flush=True)
    stuck.wait()
"""


def test_sigkilled_member_pending_finished_by_another(raw: redis.Redis) -> None:
    t = new_type(raw, "pydur.kill")
    group = unique("g")
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(MEMBER), REDIS_URL, t, group],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "ready", line + (child.stderr.read() if child.stderr else "")
        with event_bus.EventBusClient(CFG) as pub:
            ids = publish_many(pub, t, 20)
        got = child.stdout.readline().split()
        assert got[0] == "got"
        assert wait_for(lambda: pending(raw, t, group) > 0, 10)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert pending(raw, t, group) >= 1
    done: dict[str, event_bus.Delivery] = {}

    def handler(e: event_bus.Event) -> None:
        assert e.delivery is not None
        done[e.id] = e.delivery

    with event_bus.EventBusClient(CFG) as rescuer:
        rescuer.subscribe(
            t,
            handler,
            durable={"group": group, "consumer": "rescuer", "min_idle_time": 300, "claim_interval": 100},
        )
        assert wait_for(lambda: len(done) == 20, 30)
        assert wait_for(lambda: pending(raw, t, group) == 0, 10)
        assert rescuer.get_stats()["eventsReclaimed"] >= 1
    assert sorted(done) == sorted(ids)
    assert done[got[1]].attempt >= 2


def test_poison_dead_lettered_replayed_purged(bus: event_bus.EventBusClient, raw: redis.Redis) -> None:
    t = new_type(raw, "pydur.poison")
    group = unique("g")
    healed: set[str] = set()
    handled: list[str] = []

    def handler(e: event_bus.Event) -> None:
        if e.data.get("poison") and e.id not in healed:
            raise RuntimeError(f"poison {e.data['n']}")
        handled.append(e.id)

    bus.subscribe(
        t,
        handler,
        retry_on_error=False,
        durable={"group": group, "max_deliveries": 2, "min_idle_time": 100, "claim_interval": 100},
    )
    ids = publish_many(bus, t, 2, poison=True)
    [good] = publish_many(bus, t, 1)
    assert wait_for(lambda: len(bus.dead_letters(t, group)) == 2, 30)
    dead = bus.dead_letters(t, group)
    assert sorted(d["event"]["id"] for d in dead) == sorted(ids)
    for d in dead:
        assert d["event"]["type"] == t
        assert d["deliveries"] == 2
        assert "poison" in d["error"]["message"]
        assert "-" in d["streamId"] and "-" in d["originalId"]
        assert isinstance(d["failedAt"], int)
    assert handled == [good]
    assert len(bus.dead_letters(t, group, count=1)) == 1
    assert wait_for(lambda: pending(raw, t, group) == 0, 10)
    assert bus.get_stats()["eventsDeadLettered"] >= 2

    fixed = dead[0]["event"]["id"]
    healed.add(fixed)
    assert bus.replay_dead_letters(t, group, count=1) == 1
    assert wait_for(lambda: fixed in handled, 10)
    assert [d["event"]["id"] for d in bus.dead_letters(t, group)] == [dead[1]["event"]["id"]]
    assert bus.purge_dead_letters(t, group) == 1
    assert bus.dead_letters(t, group) == []
    assert bus.replay_dead_letters(t, group) == 0


def test_refusals(bus: event_bus.EventBusClient) -> None:
    with pytest.raises(event_bus.ValidationError, match="stream"):
        bus.subscribe("pydur.*", lambda e: None, durable={"group": "g"})
    with pytest.raises(event_bus.ValidationError, match="needs durable"):
        bus.subscribe([unique("a"), unique("b")], lambda e: None)
    with pytest.raises(event_bus.ValidationError):
        bus.subscribe(unique("x"), lambda e: None, durable={})
    with pytest.raises(event_bus.InvalidArgumentError):
        bus.subscribe(42, lambda e: None)  # type: ignore[arg-type]
    with event_bus.EventBusClient({**CFG, "redis": {"url": f"memory://{unique('m')}"}}) as mem:
        with pytest.raises(event_bus.NotSupportedError, match="durable subscriptions need Redis"):
            mem.subscribe(unique("x"), lambda e: None, durable={"group": "g"})


def test_list_of_types(bus: event_bus.EventBusClient, raw: redis.Redis) -> None:
    t1, t2 = new_type(raw, "pydur.l1"), new_type(raw, "pydur.l2")
    got: list[str] = []
    bus.subscribe([t1, t2], lambda e: got.append(e.type), durable={"group": unique("g")})
    publish_many(bus, t1, 3)
    publish_many(bus, t2, 2)
    assert wait_for(lambda: len(got) == 5, 10)
    assert sorted(got) == sorted([t1] * 3 + [t2] * 2)


# ---------------------------------------------------------------------------------------- asyncio


async def async_wait(cond: Any, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if await cond():
            return True
        await asyncio.sleep(0.01)
    return bool(await cond())


async def test_asyncio_group_and_dead_letters(raw: redis.Redis) -> None:
    t = new_type(raw, "pydur.aio")
    group = unique("g")
    handled: list[event_bus.Event] = []

    async def handler(e: event_bus.Event) -> None:
        await asyncio.sleep(0)
        if e.data.get("poison"):
            raise RuntimeError("poison")
        handled.append(e)

    async with aio.EventBusClient(CFG) as b:
        await b.subscribe(
            t,
            handler,
            retry_on_error=False,
            durable={"group": group, "max_deliveries": 1, "min_idle_time": 100, "claim_interval": 100},
        )
        ids = [(await b.publish(t, {"n": i}, persistent=True)).event_id for i in range(50)]
        [bad] = [(await b.publish(t, {"poison": True}, persistent=True)).event_id]

        async def all_handled() -> bool:
            return len(handled) == 50

        async def one_dead() -> bool:
            return len(await b.dead_letters(t, group)) == 1

        assert await async_wait(all_handled, 20)
        assert sorted(e.id for e in handled) == sorted(ids)
        assert all(e.delivery is not None and e.delivery.group == group for e in handled)
        assert await async_wait(one_dead, 20)
        [d] = await b.dead_letters(t, group, count=10)
        assert d["event"]["id"] == bad and d["deliveries"] == 1
        assert await b.purge_dead_letters(t, group) == 1
        assert await b.replay_dead_letters(t, group) == 0
        assert await b.dead_letters(t, group) == []
        with pytest.raises(event_bus.ValidationError):
            await b.subscribe("pydur.*", handler, durable={"group": group})
