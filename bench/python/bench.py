"""Python face vs redis-py (blocking and asyncio), side by side on the same Redis.

Every contender does the same work per event: a UUID v4 and the TS JSON envelope for publishes;
JSON decoding into Python objects and a Python handler call for receives.

    .venv/bin/python bench/python/bench.py [--n 20000] [--redis redis://127.0.0.1:6379]

Not a test: prints a Markdown table (ratios are ours / peer, higher is better except latency
and RSS).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

import redis
import redis.asyncio as aredis

import event_bus
import event_bus.asyncio as eb_aio

DATA = {"photoId": "photo-123", "userId": "user-456", "filename": "vacation.jpg", "size": 1024000}


def envelope(event_type: str) -> str:
    """What the TS package (and we) put on the wire, built the redis-py way."""
    return json.dumps({
        "id": str(uuid.uuid4()),
        "type": event_type,
        "data": DATA,
        "metadata": {
            "source": "bench",
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "traceId": str(uuid.uuid4()),
            "version": "1.0.0",
        },
    }, separators=(",", ":"))


def chan() -> str:
    return f"bench.{uuid.uuid4().hex[:10]}"


def rate(n: int, f: Callable[[], None]) -> float:
    t = time.perf_counter()
    f()
    return n / (time.perf_counter() - t)


async def arate(n: int, f: Callable[[], Any]) -> float:
    t = time.perf_counter()
    await f()
    return n / (time.perf_counter() - t)


# ---------------------------------------------------------------- publish, one at a time

def pub_single(url: str, n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    c = chan()
    with event_bus.EventBusClient(service_name="bench", redis_url=url, log_level="error") as bus:
        bus.publish(c, DATA)
        out["ours blocking"] = rate(n, lambda: [bus.publish(c, DATA) for _ in range(n)] and None)
    r = redis.Redis.from_url(url)
    r.publish(c, envelope(c))
    out["redis-py blocking"] = rate(n, lambda: [r.publish(c, envelope(c)) for _ in range(n)] and None)
    r.close()

    async def go() -> None:
        async with eb_aio.EventBusClient(service_name="bench", redis_url=url, log_level="error") as ab:
            async def loop_ours() -> None:
                for _ in range(n):
                    await ab.publish(c, DATA)
            out["ours asyncio"] = await arate(n, loop_ours)
        ar = aredis.Redis.from_url(url)

        async def loop_peer() -> None:
            for _ in range(n):
                await ar.publish(c, envelope(c))
        await ar.publish(c, envelope(c))
        out["redis-py asyncio"] = await arate(n, loop_peer)
        await ar.aclose()
    asyncio.run(go())
    return out


# ---------------------------------------------------------------- publish, batched / pipelined

def pub_batch(url: str, n: int, batch: int = 1000) -> dict[str, float]:
    out: dict[str, float] = {}
    c = chan()
    with event_bus.EventBusClient(service_name="bench", redis_url=url, log_level="error") as bus:
        def ours() -> None:
            for _ in range(n // batch):
                bus.publish_batch([(c, DATA)] * batch)
        out["ours blocking"] = rate(n, ours)
    r = redis.Redis.from_url(url)

    def peer() -> None:
        for _ in range(n // batch):
            p = r.pipeline(transaction=False)
            for _ in range(batch):
                p.publish(c, envelope(c))
            p.execute()
    out["redis-py blocking"] = rate(n, peer)
    r.close()

    async def go() -> None:
        async with eb_aio.EventBusClient(service_name="bench", redis_url=url, log_level="error") as ab:
            async def ours_gather() -> None:
                for _ in range(n // batch):
                    await asyncio.gather(*(ab.publish(c, DATA) for _ in range(batch)))

            async def ours_batch() -> None:
                for _ in range(n // batch):
                    await ab.publish_batch([(c, DATA)] * batch)
            out["ours asyncio"] = await arate(n, ours_batch)
            out["ours asyncio (gather of publish)"] = await arate(n, ours_gather)
        ar = aredis.Redis.from_url(url)

        async def peer_a() -> None:
            for _ in range(n // batch):
                p = ar.pipeline(transaction=False)
                for _ in range(batch):
                    p.publish(c, envelope(c))
                await p.execute()
        out["redis-py asyncio"] = await arate(n, peer_a)
        await ar.aclose()
    asyncio.run(go())
    return out


# ---------------------------------------------------------------- end to end into a handler

def blast(url: str, c: str, n: int) -> None:
    """Publish n TS envelopes as fast as Redis takes them (same feed for every receiver)."""
    r = redis.Redis.from_url(url)
    msgs = [envelope(c) for _ in range(1000)]
    sent = 0
    while sent < n:
        p = r.pipeline(transaction=False)
        for m in msgs[: min(1000, n - sent)]:
            p.publish(c, m)
        p.execute()
        sent += min(1000, n - sent)
    r.close()


def e2e(url: str, n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    # ours, blocking: plain handler on the dispatcher thread
    c = chan()
    count = [0]
    done = threading.Event()

    def h(ev: event_bus.Event) -> None:
        _ = ev.data
        count[0] += 1
        if count[0] == n:
            done.set()
    for conc in (1, 256):
        c = chan()
        count[0] = 0
        done.clear()
        with event_bus.EventBusClient(service_name="bench", redis_url=url, log_level="error") as bus:
            bus.subscribe(c, h, max_pending=n + 10, concurrency=conc)
            t = time.perf_counter()
            blast(url, c, n)
            done.wait(60)
            out[f"ours blocking (concurrency={conc})"] = count[0] / (time.perf_counter() - t)

    # redis-py blocking: a listener thread decoding JSON and calling the same kind of handler
    c = chan()
    got = [0]
    fin = threading.Event()
    r = redis.Redis.from_url(url)
    ps = r.pubsub(ignore_subscribe_messages=True)
    ps.subscribe(c)
    ps.get_message(timeout=1)

    def listen() -> None:
        def handler(d: dict[str, Any]) -> None:
            got[0] += 1
        while got[0] < n:
            m = ps.get_message(timeout=1)
            if m is None:
                if fin.is_set():
                    break
                continue
            handler(json.loads(m["data"]))
        fin.set()
    th = threading.Thread(target=listen)
    th.start()
    t = time.perf_counter()
    blast(url, c, n)
    th.join(60)
    out["redis-py blocking"] = got[0] / (time.perf_counter() - t)
    ps.close()
    r.close()

    async def go() -> None:
        c = chan()
        cnt = [0]
        ev_done = asyncio.Event()

        async def ah(ev: event_bus.Event) -> None:
            _ = ev.data
            cnt[0] += 1
            if cnt[0] == n:
                ev_done.set()
        for conc in (1, 256):
            c = chan()
            cnt[0] = 0
            ev_done.clear()
            async with eb_aio.EventBusClient(service_name="bench", redis_url=url, log_level="error") as ab:
                await ab.subscribe(c, ah, max_pending=n + 10, concurrency=conc)
                t = time.perf_counter()
                await asyncio.get_running_loop().run_in_executor(None, blast, url, c, n)
                try:
                    await asyncio.wait_for(ev_done.wait(), 60)
                except asyncio.TimeoutError:
                    pass
                out[f"ours asyncio, async def (concurrency={conc})"] = cnt[0] / (time.perf_counter() - t)

        c = chan()
        ar = aredis.Redis.from_url(url)
        aps = ar.pubsub(ignore_subscribe_messages=True)
        await aps.subscribe(c)
        n_got = [0]

        async def handler(d: dict[str, Any]) -> None:
            n_got[0] += 1

        async def reader() -> None:
            while n_got[0] < n:
                m = await aps.get_message(timeout=1)
                if m is not None:
                    await handler(json.loads(m["data"]))
        t = time.perf_counter()
        task = asyncio.ensure_future(reader())
        await asyncio.get_running_loop().run_in_executor(None, blast, url, c, n)
        try:
            await asyncio.wait_for(task, 60)
        except asyncio.TimeoutError:
            pass
        out["redis-py asyncio"] = n_got[0] / (time.perf_counter() - t)
        await aps.aclose()
        await ar.aclose()
    asyncio.run(go())
    return out


# ---------------------------------------------------------------- idle latency

def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round((len(xs) - 1) * p)))]


def latency(url: str, samples: int) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    c = chan()
    lat: list[float] = []
    arrived = threading.Event()
    t0 = [0.0]

    def h(ev: event_bus.Event) -> None:
        lat.append((time.perf_counter() - t0[0]) * 1e6)
        arrived.set()
    with event_bus.EventBusClient(service_name="bench", redis_url=url, log_level="error") as bus:
        bus.subscribe(c, h)
        for _ in range(samples):
            arrived.clear()
            t0[0] = time.perf_counter()
            bus.publish(c, DATA)
            arrived.wait(5)
            time.sleep(0.002)
    out["ours blocking"] = (pct(lat, 0.5), pct(lat, 0.99))

    c = chan()
    lat2: list[float] = []
    r = redis.Redis.from_url(url)
    ps = r.pubsub(ignore_subscribe_messages=True)
    ps.subscribe(c)
    ps.get_message(timeout=1)
    stop = threading.Event()
    got = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            m = ps.get_message(timeout=0.1)
            if m:
                json.loads(m["data"])
                lat2.append((time.perf_counter() - t0[0]) * 1e6)
                got.set()
    th = threading.Thread(target=listen)
    th.start()
    for _ in range(samples):
        got.clear()
        t0[0] = time.perf_counter()
        r.publish(c, envelope(c))
        got.wait(5)
        time.sleep(0.002)
    stop.set()
    th.join()
    ps.close()
    r.close()
    out["redis-py blocking"] = (pct(lat2, 0.5), pct(lat2, 0.99))

    async def go() -> None:
        c = chan()
        lat3: list[float] = []
        ev = asyncio.Event()

        async def ah(e: event_bus.Event) -> None:
            lat3.append((time.perf_counter() - t0[0]) * 1e6)
            ev.set()
        async with eb_aio.EventBusClient(service_name="bench", redis_url=url, log_level="error") as ab:
            await ab.subscribe(c, ah)
            for _ in range(samples):
                ev.clear()
                t0[0] = time.perf_counter()
                await ab.publish(c, DATA)
                await asyncio.wait_for(ev.wait(), 5)
                await asyncio.sleep(0.002)
        out["ours asyncio"] = (pct(lat3, 0.5), pct(lat3, 0.99))

        c = chan()
        lat4: list[float] = []
        ar = aredis.Redis.from_url(url)
        aps = ar.pubsub(ignore_subscribe_messages=True)
        await aps.subscribe(c)
        ev2 = asyncio.Event()
        done = [False]

        async def reader() -> None:
            while not done[0]:
                m = await aps.get_message(timeout=0.1)
                if m:
                    json.loads(m["data"])
                    lat4.append((time.perf_counter() - t0[0]) * 1e6)
                    ev2.set()
        task = asyncio.ensure_future(reader())
        pub = aredis.Redis.from_url(url)
        for _ in range(samples):
            ev2.clear()
            t0[0] = time.perf_counter()
            await pub.publish(c, envelope(c))
            await asyncio.wait_for(ev2.wait(), 5)
            await asyncio.sleep(0.002)
        done[0] = True
        await task
        await aps.aclose()
        await ar.aclose()
        await pub.aclose()
        out["redis-py asyncio"] = (pct(lat4, 0.5), pct(lat4, 0.99))
    asyncio.run(go())
    return out


# ---------------------------------------------------------------- RSS

RSS_CHILD = """
import sys, time
def rss():
    for l in open('/proc/self/status'):
        if l.startswith('VmRSS'):
            return int(l.split()[1])
kind, url = sys.argv[1], sys.argv[2]
base = rss()
if kind == 'ours':
    import event_bus
    b = event_bus.EventBusClient(service_name='bench', redis_url=url, log_level='error'); b.connect()
    b.subscribe('bench.rss', lambda e: None); b.publish('bench.rss', {'a': 1})
else:
    import redis, json, threading
    r = redis.Redis.from_url(url); r.ping(); ps = r.pubsub(); ps.subscribe('bench.rss')
    r.publish('bench.rss', json.dumps({'a': 1})); ps.get_message(timeout=0.1)
time.sleep(0.3)
print(base, rss())
"""


def rss(url: str) -> dict[str, tuple[int, int]]:
    out = {}
    for kind, label in (("ours", "ours"), ("peer", "redis-py")):
        o = subprocess.run([sys.executable, "-c", RSS_CHILD, kind, url], capture_output=True, text=True, check=True)
        base, after = map(int, o.stdout.split())
        out[label] = (base, after)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    ap.add_argument("--latency-samples", type=int, default=500)
    a = ap.parse_args()
    n, url = a.n, a.redis
    print(f"python {sys.version.split()[0]}, redis-py {redis.__version__}, event_bus {event_bus.__version__}, n={n}\n")

    def table(title: str, res: dict[str, float], unit: str = "events/s") -> None:
        print(f"### {title}\n\n| client | {unit} | vs redis-py blocking | vs redis-py asyncio |\n|---|---:|---:|---:|")
        pb, pa = res.get("redis-py blocking", 0), res.get("redis-py asyncio", 0)
        for k, v in res.items():
            print(f"| {k} | {v:,.0f} | {v / pb:.2f}x | {v / pa:.2f}x |")
        print()
    table("Publish, awaited one at a time", pub_single(url, max(2000, n // 4)))
    table("Publish, batched / pipelined (1000 per batch)", pub_batch(url, n * 5))
    table("End to end: delivered into a Python handler (feed: redis-py pipelines)", e2e(url, n * 2))
    lat = latency(url, a.latency_samples)
    print("### Idle publish-to-handler latency (µs)\n\n| client | p50 | p99 |\n|---|---:|---:|")
    for k, (p50, p99) in lat.items():
        print(f"| {k} | {p50:,.0f} | {p99:,.0f} |")
    print()
    print("### RSS (KiB): python process, before import -> after connect + subscribe + publish\n\n| client | before | after | added |\n|---|---:|---:|---:|")
    for k, (b, af) in rss(url).items():
        print(f"| {k} | {b:,} | {af:,} | {af - b:,} |")


if __name__ == "__main__":
    main()
