"""Interop with raw redis-py: every captured TS message is received intact and in order, and
what we publish has the TS wire shape (key order, channels)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import redis

import event_bus
import event_bus.asyncio as aio
from conftest import REDIS_URL, VECTORS, wait_for

LINES = [json.loads(line) for line in (VECTORS / "wire-ts-reference.jsonl").read_text().splitlines() if line.strip()]


def test_receives_every_ts_capture_intact_in_order(uid: str) -> None:
    r = redis.Redis.from_url(REDIS_URL)
    got: list[event_bus.Event] = []
    with event_bus.EventBusClient(service_name="interop", redis_url=REDIS_URL) as bus:
        bus.subscribe(f"{uid}:*", got.append)
        for line in LINES:
            assert r.publish(f"{uid}:{line['channel']}", line["message"]) == 1
        assert wait_for(lambda: len(got) == len(LINES))
        time.sleep(0.1)
        assert len(got) == len(LINES)
        for ev, line in zip(got, LINES):
            msg = json.loads(line["message"])
            assert ev.raw == line["message"]
            assert ev.channel == f"{uid}:{line['channel']}"
            assert ev.id == msg["id"] and ev.type == msg["type"]
            assert ev.data == msg["data"] and ev.metadata == msg["metadata"]
        assert bus.get_stats()["invalidMessages"] == 0


async def test_async_receives_ts_captures(uid: str) -> None:
    r = redis.Redis.from_url(REDIS_URL)
    got: list[str] = []

    async def h(ev: event_bus.Event) -> None:
        got.append(ev.raw)

    async with aio.EventBusClient(service_name="interop", redis_url=REDIS_URL) as bus:
        await bus.subscribe(f"{uid}:*", h)
        for line in LINES:
            r.publish(f"{uid}:{line['channel']}", line["message"])
        for _ in range(500):
            if len(got) == len(LINES):
                break
            await asyncio.sleep(0.01)
        assert got == [line["message"] for line in LINES]


def test_invalid_messages_are_counted_not_delivered(uid: str) -> None:
    r = redis.Redis.from_url(REDIS_URL)
    got: list[Any] = []
    with event_bus.EventBusClient(service_name="interop", redis_url=REDIS_URL, log_level="error") as bus:
        bus.subscribe(f"{uid}.x", got.append)
        for bad in ("not json", "[1,2]", '{"id":"x"}', '{"id":"a","type":"t","data":null,"metadata":{}}'):
            r.publish(f"{uid}.x", bad)
        r.publish(f"{uid}.x", LINES[0]["message"])
        assert wait_for(lambda: len(got) == 1)
        assert wait_for(lambda: bus.get_stats()["invalidMessages"] == 4)


def test_redis_py_receives_our_publishes(uid: str) -> None:
    r = redis.Redis.from_url(REDIS_URL)
    ps = r.pubsub()
    ps.psubscribe(f"{uid}*", f"room:{uid}", f"user:{uid}")
    ps.subscribe("broadcast")
    deadline = time.monotonic() + 5
    subs = 0
    while subs < 4 and time.monotonic() < deadline:
        m = ps.get_message(timeout=0.5)
        if m and m["type"] in ("subscribe", "psubscribe"):
            subs += 1
    with event_bus.EventBusClient(service_name="py-pub", redis_url=REDIS_URL) as bus:
        sent = [
            bus.publish(f"{uid}.plain", {"a": 1}, trace_id="tr", correlation_id="co", user_id="us", room=uid),
            bus.publish(f"{uid}.u", {"a": 2}, user_id=uid),
            bus.broadcast(f"{uid}.b", {"a": 3}),
            bus.publish(f"{uid}.t", {"a": 4}, metadata={"extra": True}),
        ]
    want_channels = [f"room:{uid}", f"user:{uid}", "broadcast", f"{uid}.t"]
    received: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + 5
    while len(received) < 4 and time.monotonic() < deadline:
        m = ps.get_message(timeout=0.5)
        if m and m["type"] in ("message", "pmessage"):
            body = json.loads(m["data"])
            if body["metadata"].get("source") == "py-pub" and body["type"].startswith(uid):
                received.append((m["channel"].decode(), body))
    ps.close()
    assert [c for c, _ in received] == want_channels
    for (ch, body), res in zip(received, sent):
        assert list(body) == ["id", "type", "data", "metadata"]
        assert body["id"] == res.event_id and body["metadata"]["timestamp"] == res.published_at
        assert body["metadata"]["version"] == "1.0.0"
    meta0 = received[0][1]["metadata"]
    assert list(meta0) == ["source", "timestamp", "traceId", "correlationId", "userId", "version"]
    assert meta0["traceId"] == "tr" and meta0["correlationId"] == "co" and meta0["userId"] == "us"
    assert list(received[3][1]["metadata"])[-1] == "extra"


async def test_async_publishes_reach_redis_in_call_order(uid: str) -> None:
    # A big batch, then single publishes made while it is still in flight (tasks started in
    # order): redis-py would write them in call order, and so must we.
    r = redis.Redis.from_url(REDIS_URL)
    ps = r.pubsub()
    ps.subscribe(uid)
    while (m := ps.get_message(timeout=0.5)) is None or m["type"] != "subscribe":
        pass
    async with aio.EventBusClient(service_name="py-order", redis_url=REDIS_URL) as bus:
        for _ in range(5):
            tasks = [asyncio.create_task(bus.publish_batch([(uid, {"n": n}) for n in range(2000)]))]
            tasks += [asyncio.create_task(bus.publish(uid, {"n": n})) for n in range(2000, 2010)]
            await asyncio.gather(*tasks)
            got: list[int] = []
            deadline = time.monotonic() + 5
            while len(got) < 2010 and time.monotonic() < deadline:
                m = ps.get_message(timeout=0.5)
                if m and m["type"] == "message":
                    got.append(json.loads(m["data"])["data"]["n"])
            assert got == list(range(2010))
    ps.close()
    r.close()


def test_received_data_is_what_json_loads_gives(uid: str) -> None:
    # Every JSON type, escapes, non-ASCII, 64-bit integers and key order: the event's data
    # equals json.loads of the same text, with the same Python types and dict order.
    text = (
        '{"i":[0,-1,9007199254740993,18446744073709551615,-9223372036854775808],'
        '"f":[1.5,-0.0,1e300,2.5e-10,10.0],'
        '"s":["","\u00e9\u2603","\\"\\\\/\\n\\t\\u0000","\\ud83d\\ude00"],'
        '"o":{"z":1,"a":{"y":[],"b":{}},"z2":null},"b":[true,false,null]}'
    )
    message = (
        '{"id":"x-1","type":"conv.check","data":' + text
        + ',"metadata":{"source":"raw","timestamp":"2026-11-27T00:00:00.000Z","version":"1.0.0"}}'
    )
    r = redis.Redis.from_url(REDIS_URL)
    got: list[event_bus.Event] = []
    with event_bus.EventBusClient(service_name="interop", redis_url=REDIS_URL) as bus:
        bus.subscribe(uid, got.append)
        assert r.publish(uid, message) == 1
        assert wait_for(lambda: len(got) == 1)
    want = json.loads(text)
    data = got[0].data
    assert data == want
    assert [type(x) for x in data["i"]] == [int] * 5 and [type(x) for x in data["f"]] == [float] * 5
    assert list(data["o"]) == ["z", "a", "z2"] and list(data["o"]["a"]) == ["y", "b"]
    assert data["s"][3] == "\U0001F600" and data["s"][2] == '"\\/\n\t\x00'
