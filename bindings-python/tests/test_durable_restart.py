"""Durable delivery on a private redis-server with AOF (``appendfsync always``): Redis SIGKILLed
and restarted while persistent publishes go on loses none that was acknowledged; trimming by
``durable.maxLen`` and by ``ttl`` works, and entries trimmed before the group read them are
counted (``eventsTrimmedUnread``) and reported (an ``error`` state event, code EVENTS_TRIMMED)."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from typing import Any, Iterator

import pytest

import event_bus
from conftest import unique, wait_for
from fault_proxy import PrivateRedis

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")


@pytest.fixture
def aof_redis() -> Iterator[PrivateRedis]:
    d = tempfile.mkdtemp(prefix="eb-py-aof-")
    srv = PrivateRedis(["--appendonly", "yes", "--appendfsync", "always", "--dir", d])
    srv.start_with()
    try:
        yield srv
    finally:
        srv.kill()
        shutil.rmtree(d, ignore_errors=True)


def client(srv: PrivateRedis, name: str, **extra: Any) -> event_bus.EventBusClient:
    cfg: dict[str, Any] = {
        "serviceName": name,
        "logLevel": "error",
        "redis": {"url": srv.url, "reconnectDelay": 50, "reconnectDelayMax": 200},
        **extra,
    }
    bus = event_bus.EventBusClient(cfg)
    bus.connect()
    return bus


def test_redis_killed_and_restarted_with_aof_loses_no_acknowledged_publish(aof_redis: PrivateRedis) -> None:
    t, group = unique("pydur.aof"), unique("g")
    pub = client(aof_redis, "aof-pub")
    first = client(aof_redis, "aof-member")
    back = None
    try:
        # The member joins (the group is created), then goes away until after the restart.
        sub = first.subscribe(t, lambda e: None, durable={"group": group, "consumer": "m1"})
        first.unsubscribe(sub.id)
        acked: set[str] = set()
        outcomes: dict[str, int] = {}
        stop = threading.Event()

        def loop() -> None:
            n = 0
            while not stop.is_set():
                try:
                    r = pub.publish(t, {"n": n}, persistent=True)
                    acked.add(r.event_id)
                    outcomes["ok"] = outcomes.get("ok", 0) + 1
                except event_bus.EventBusError as e:
                    outcomes[e.code] = outcomes.get(e.code, 0) + 1
                    time.sleep(0.02)
                n += 1

        th = threading.Thread(target=loop)
        th.start()
        try:
            assert wait_for(lambda: len(acked) >= 100, timeout=20), outcomes
            aof_redis.restart()
            assert wait_for(lambda: len(acked) >= 200, timeout=30), outcomes
        finally:
            stop.set()
            th.join()

        back = client(aof_redis, "aof-member")
        got: dict[str, int] = {}
        lock = threading.Lock()

        def on_event(e: event_bus.Event) -> None:
            with lock:
                got[e.id] = got.get(e.id, 0) + 1

        back.subscribe(t, on_event, durable={"group": group, "consumer": "m1", "block": 200})
        assert wait_for(lambda: acked <= set(got), timeout=30), (len(acked - set(got)), outcomes)
    finally:
        for b in (pub, first, back):
            if b is not None:
                b.disconnect()


def test_max_len_and_ttl_trim_and_unread_trimmed_entries_are_counted(aof_redis: PrivateRedis) -> None:
    t = unique("pydur.trim")
    pub = client(aof_redis, "trim-pub", durable={"maxLen": 10})
    reader = client(aof_redis, "trim-reader")
    admin = aof_redis.admin()
    try:
        states: list[dict[str, Any]] = []
        reader.on_state(states.append)
        got: list[int] = []
        durable = {"group": "T", "consumer": "t1", "block": 200, "claim_interval": 100}
        sub = reader.subscribe(t, lambda e: got.append(e.data["n"]), durable=durable)
        for i in range(5):
            pub.publish(t, {"n": i}, persistent=True)
        assert wait_for(lambda: len(got) == 5, timeout=10)
        reader.unsubscribe(sub.id)

        # 200 more while nobody reads: MAXLEN ~ 10 keeps about 10 of them.
        for i in range(5, 205):
            pub.publish(t, {"n": i}, persistent=True)
        length = int(admin.xlen(f"events:{{{t}}}"))
        assert length < 50, f"MAXLEN ~ 10 trims (len {length})"

        reader.subscribe(t, lambda e: got.append(e.data["n"]), durable=durable)
        assert wait_for(lambda: len(got) == 5 + length, timeout=10), (len(got), length)
        assert wait_for(lambda: reader.get_stats()["eventsTrimmedUnread"] == 200 - length, timeout=10), (
            reader.get_stats()["eventsTrimmedUnread"],
            length,
        )
        assert wait_for(
            lambda: any(s["type"] == "error" and s.get("code") == "EVENTS_TRIMMED" for s in states), timeout=10
        ), states

        # ttl: entries older than it go with the next persistent publish that has a ttl.
        t2 = unique("pydur.ttl")
        for i in range(40):
            pub.publish(t2, {"n": i}, persistent=True)
        time.sleep(0.3)
        pub.publish(t2, {"n": 40}, persistent=True, ttl=100)
        len2 = int(admin.xlen(f"events:{{{t2}}}"))
        assert len2 < 40, f"MINID ~ trims entries older than the ttl (len {len2})"
        with pytest.raises(event_bus.ValidationError):
            pub.publish(t2, {"n": 41}, persistent=True, ttl=-1)
    finally:
        admin.close()
        reader.disconnect()
        pub.disconnect()
