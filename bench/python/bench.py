"""Python face vs redis-py asyncio, and the blocking client vs redis-py blocking, same Redis.

Every contender does the same work per event: a UUID v4 and the TS JSON envelope for publishes;
JSON decoding into Python objects and a Python handler call for receives. Project and peer
alternate over BENCH_ROUNDS rounds (default 3); the table shows medians.

    .venv/bin/python bench/python/bench.py [--json out.json] [--scale 1.0] [--redis URL]

Not a test: prints a Markdown table; `--json PATH` also writes the raw figures.
BENCH_SCALE (or --scale) multiplies the event counts; 1.0 keeps a full run under ~4 minutes.
BENCH_ONLY (a substring of a scenario name) runs only those scenarios, for quick checks.
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
from typing import Any, Awaitable, Callable, Iterator

import redis
import redis.asyncio as aredis

import event_bus
import event_bus.asyncio as eb_aio

PEER = "redis-py asyncio"
PEER_BLOCKING = "redis-py (blocking)"
SMALL = {"photoId": "photo-123", "userId": "user-456", "filename": "vacation.jpg", "size": 1024000}
BIG = {**SMALL, "blob": "x" * 16000}  # ~16 KB on the wire
SIZES = {"320 B": SMALL, "16 KB": BIG}


def envelope(event_type: str, data: Any) -> str:
    """What the TS package (and we) put on the wire, built the redis-py way."""
    return json.dumps({
        "id": str(uuid.uuid4()),
        "type": event_type,
        "data": data,
        "metadata": {
            "source": "bench",
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "traceId": str(uuid.uuid4()),
            "version": "1.0.0",
        },
    }, separators=(",", ":"))


def chan() -> str:
    return f"bench.{uuid.uuid4().hex[:10]}"


def ours(url: str) -> eb_aio.EventBusClient:
    return eb_aio.EventBusClient(service_name="bench", redis_url=url, log_level="error")


# ---------------------------------------------------------------- publish

# The awaited rows' p50/p99 of one publish (ms), by row name (`{}` for the statistic) and
# side, filled as they run.
AWAITED_LATENCY: dict[str, dict[str, list[tuple[float, float]]]] = {}


def note_latency(row: str, kind: str, lat: list[float]) -> None:
    """Keep the p50 and p99 (ms) of one run of an awaited row."""
    AWAITED_LATENCY.setdefault(row, {}).setdefault(kind, []).append((pct(lat, 0.5) * 1e3, pct(lat, 0.99) * 1e3))


async def pub_single(kind: str, url: str, n: int, data: Any, row: str = "") -> float:
    c = chan()
    lat: list[float] = []
    if kind == "project":
        async with ours(url) as b:
            await b.publish(c, data)
            t = time.perf_counter()
            for _ in range(n):
                a = time.perf_counter()
                await b.publish(c, data)
                lat.append(time.perf_counter() - a)
            dt = time.perf_counter() - t
    else:
        r = aredis.Redis.from_url(url)
        await r.publish(c, envelope(c, data))
        t = time.perf_counter()
        for _ in range(n):
            a = time.perf_counter()
            await r.publish(c, envelope(c, data))
            lat.append(time.perf_counter() - a)
        dt = time.perf_counter() - t
        await r.aclose()
    note_latency(row, kind, lat)
    return n / dt


async def pub_batch(kind: str, url: str, n: int, data: Any, batch: int = 1000) -> float:
    c = chan()
    n = max(batch, n // batch * batch)
    if kind == "project":
        async with ours(url) as b:
            t = time.perf_counter()
            for _ in range(n // batch):
                await b.publish_batch([(c, data)] * batch)
            return n / (time.perf_counter() - t)
    r = aredis.Redis.from_url(url)
    t = time.perf_counter()
    for _ in range(n // batch):
        p = r.pipeline(transaction=False)
        for _ in range(batch):
            p.publish(c, envelope(c, data))
        await p.execute()
    dt = time.perf_counter() - t
    await r.aclose()
    return n / dt


# ---------------------------------------------------------------- end to end

class Sink:
    """Counts handler calls; `done` fires at n."""

    def __init__(self, n: int) -> None:
        self.n, self.got, self.done = n, 0, asyncio.Event()

    async def handle(self, _data: Any) -> None:
        self.got += 1
        if self.got >= self.n:
            self.done.set()


async def peer_reader(aps: Any, sink: Sink) -> None:
    while sink.got < sink.n:
        m = await aps.get_message(ignore_subscribe_messages=True, timeout=1)
        if m is not None:
            await sink.handle(json.loads(m["data"])["data"])


async def subscribe_side(kind: str, url: str, c: str, sink: Sink) -> tuple[Callable[[], Awaitable[None]], Any]:
    """Start a receiver; returns (close, reader task or None)."""
    if kind == "project":
        b = ours(url)
        await b.connect()

        async def h(ev: event_bus.Event) -> None:
            await sink.handle(ev.data)
        await b.subscribe(c, h, max_pending=sink.n + 10)
        return b.disconnect, None
    ar = aredis.Redis.from_url(url)
    aps = ar.pubsub()
    await aps.subscribe(c)
    await aps.get_message(timeout=1)
    task = asyncio.ensure_future(peer_reader(aps, sink))

    async def close() -> None:
        task.cancel()
        try:
            await task
        except BaseException:  # noqa: BLE001 - cancelled, or the reader's own failure
            pass
        await aps.aclose()
        await ar.aclose()
    return close, task


async def wait_sink(sink: Sink, t: float) -> float:
    try:
        await asyncio.wait_for(sink.done.wait(), 30)
    except asyncio.TimeoutError:
        pass
    # 16 KB events: Redis disconnects a subscriber past client-output-buffer-limit pubsub
    # (32 MB), so the 16 KB counts stay below that.
    return sink.got / (time.perf_counter() - t)


async def e2e_one(kind: str, url: str, n: int, data: Any) -> float:
    c = chan()
    sink = Sink(n)
    close, _ = await subscribe_side(kind, url, c, sink)
    t = time.perf_counter()
    if kind == "project":
        async with ours(url) as pub:
            for s in range(0, n, 1000):
                await pub.publish_batch([(c, data)] * min(1000, n - s))
            rate = await wait_sink(sink, t)
    else:
        r = aredis.Redis.from_url(url)
        for s in range(0, n, 1000):
            p = r.pipeline(transaction=False)
            for _ in range(min(1000, n - s)):
                p.publish(c, envelope(c, data))
            await p.execute()
        rate = await wait_sink(sink, t)
        await r.aclose()
    await close()
    return rate


FEED = """
import sys, json
kind, url, c, n, big = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
sys.path.insert(0, sys.argv[6])
import bench
data = bench.BIG if big else bench.SMALL
if kind == "project":
    import event_bus
    b = event_bus.EventBusClient(service_name="bench", redis_url=url, log_level="error"); b.connect()
    print("ready", flush=True); sys.stdin.readline()
    for s in range(0, n, 1000):
        b.publish_batch([(c, data)] * min(1000, n - s))
    b.disconnect()
else:
    import redis
    r = redis.Redis.from_url(url); r.ping()
    print("ready", flush=True); sys.stdin.readline()
    for s in range(0, n, 1000):
        p = r.pipeline(transaction=False)
        for _ in range(min(1000, n - s)):
            p.publish(c, bench.envelope(c, data))
        p.execute()
"""


async def e2e_two(kind: str, url: str, n: int, data: Any) -> float:
    c = chan()
    sink = Sink(n)
    close, _ = await subscribe_side(kind, url, c, sink)
    feeder = "project" if kind == "project" else "peer"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FEED, feeder, url, c, str(n), "1" if data is BIG else "0",
        os.path.dirname(os.path.abspath(__file__)),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdin is not None
    await proc.stdout.readline()
    t = time.perf_counter()
    proc.stdin.write(b"go\n")
    await proc.stdin.drain()
    rate = await wait_sink(sink, t)
    await proc.wait()
    await close()
    return rate


# ---------------------------------------------------------------- latency

def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round((len(xs) - 1) * p)))] if xs else float("nan")


def paced(rate: float, samples: int) -> Iterator[tuple[int, float]]:
    """The load of the latency rows: about 2 s at `rate`/s (at least `samples` events) in 5 ms
    ticks, as (events to send now, the `perf_counter` time to wait for before the next tick)."""
    per_tick = max(1, int(rate * 0.005))
    start = time.perf_counter()
    for sent in range(0, max(samples, int(rate * 2)), per_tick):
        yield per_tick, start + (sent + per_tick) / rate


async def latency(kind: str, url: str, samples: int, rate: float) -> tuple[float, float, float]:
    """Publish-to-handler latency in ms: one event at a time (rate 0) or paced at `rate`/s."""
    c = chan()
    lat: list[float] = []
    arrived = asyncio.Event()

    async def on(d: Any) -> None:
        lat.append((time.perf_counter() - d["t"]) * 1e3)
        arrived.set()

    class LatSink(Sink):
        async def handle(self, d: Any) -> None:
            await on(d)
    sink = LatSink(1 << 60)
    close, _ = await subscribe_side(kind, url, c, sink)
    if kind == "project":
        pubc = ours(url)
        await pubc.connect()

        async def send(k: int) -> None:
            if k == 1:
                await pubc.publish(c, {**SMALL, "t": time.perf_counter()})
            else:
                await pubc.publish_batch([(c, {**SMALL, "t": time.perf_counter()})] * k)
        fin: Callable[[], Awaitable[None]] = pubc.disconnect
    else:
        r = aredis.Redis.from_url(url)

        async def send(k: int) -> None:
            if k == 1:
                await r.publish(c, envelope(c, {**SMALL, "t": time.perf_counter()}))
            else:
                p = r.pipeline(transaction=False)
                for _ in range(k):
                    p.publish(c, envelope(c, {**SMALL, "t": time.perf_counter()}))
                await p.execute()
        fin = r.aclose
    if rate <= 0:
        for _ in range(samples):
            arrived.clear()
            await send(1)
            try:
                await asyncio.wait_for(arrived.wait(), 5)
            except asyncio.TimeoutError:
                pass
            await asyncio.sleep(0.002)
    else:
        for k, until in paced(rate, samples):
            await send(k)
            await asyncio.sleep(max(0.0, until - time.perf_counter()))
        await asyncio.sleep(0.3)
    await fin()
    await close()
    return pct(lat, 0.5), pct(lat, 0.99), max(lat) if lat else float("nan")


# ---------------------------------------------------------------- blocking clients

# `event_bus.EventBusClient` (handlers are plain callables on its dispatcher thread) against
# redis-py's blocking `redis.Redis`, whose subscriber is a thread polling `get_message` and
# decoding each message, as a blocking worker on the old stack would.

def ours_blocking(url: str) -> event_bus.EventBusClient:
    return event_bus.EventBusClient(service_name="bench", redis_url=url, log_level="error")


def b_pub_single(kind: str, url: str, n: int, data: Any, row: str = "") -> float:
    c = chan()
    lat: list[float] = []
    if kind == "project":
        with ours_blocking(url) as b:
            b.publish(c, data)
            t = time.perf_counter()
            for _ in range(n):
                a = time.perf_counter()
                b.publish(c, data)
                lat.append(time.perf_counter() - a)
            dt = time.perf_counter() - t
    else:
        r = redis.Redis.from_url(url)
        r.publish(c, envelope(c, data))
        t = time.perf_counter()
        for _ in range(n):
            a = time.perf_counter()
            r.publish(c, envelope(c, data))
            lat.append(time.perf_counter() - a)
        dt = time.perf_counter() - t
        r.close()
    note_latency(row, kind, lat)
    return n / dt


def b_publish_all(kind: str, pub: Any, c: str, n: int, data: Any, batch: int = 1000) -> None:
    """`n` events in batches: our publish_batch, or a redis-py pipeline."""
    for s in range(0, n, batch):
        k = min(batch, n - s)
        if kind == "project":
            pub.publish_batch([(c, data)] * k)
        else:
            p = pub.pipeline(transaction=False)
            for _ in range(k):
                p.publish(c, envelope(c, data))
            p.execute()


def b_publisher(kind: str, url: str) -> Any:
    if kind == "project":
        b = ours_blocking(url)
        b.connect()
        return b
    return redis.Redis.from_url(url)


def b_close_publisher(kind: str, pub: Any) -> None:
    pub.disconnect() if kind == "project" else pub.close()


def b_pub_batch(kind: str, url: str, n: int, data: Any, batch: int = 1000) -> float:
    c = chan()
    n = max(batch, n // batch * batch)
    pub = b_publisher(kind, url)
    t = time.perf_counter()
    b_publish_all(kind, pub, c, n, data, batch)
    dt = time.perf_counter() - t
    b_close_publisher(kind, pub)
    return n / dt


def b_subscribe(kind: str, url: str, c: str, on_data: Callable[[Any], None]) -> Callable[[], None]:
    """Call `on_data(event data)` for each event on `c` (on a thread of the client's); returns close."""
    if kind == "project":
        b = ours_blocking(url)
        b.connect()
        b.subscribe(c, lambda ev: on_data(ev.data), max_pending=10_000_000)
        return b.disconnect
    r = redis.Redis.from_url(url)
    ps = r.pubsub()
    ps.subscribe(c)
    ps.get_message(timeout=1)  # the subscribe confirmation
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            m = ps.get_message(ignore_subscribe_messages=True, timeout=0.05)
            if m is not None:
                on_data(json.loads(m["data"])["data"])
    th = threading.Thread(target=reader, daemon=True)
    th.start()

    def close() -> None:
        stop.set()
        th.join()
        ps.close()
        r.close()
    return close


class BSink:
    """Counts handler calls from another thread; `done` is set at n."""

    def __init__(self, n: int) -> None:
        self.n, self.got, self.done = n, 0, threading.Event()

    def handle(self, _data: Any) -> None:
        self.got += 1
        if self.got >= self.n:
            self.done.set()

    def rate_since(self, t: float) -> float:
        self.done.wait(30)
        return self.got / (time.perf_counter() - t)


def b_e2e_one(kind: str, url: str, n: int, data: Any) -> float:
    c, sink = chan(), BSink(n)
    close = b_subscribe(kind, url, c, sink.handle)
    pub = b_publisher(kind, url)
    t = time.perf_counter()
    b_publish_all(kind, pub, c, n, data)
    rate = sink.rate_since(t)
    b_close_publisher(kind, pub)
    close()
    return rate


def b_e2e_two(kind: str, url: str, n: int, data: Any) -> float:
    c, sink = chan(), BSink(n)
    close = b_subscribe(kind, url, c, sink.handle)
    proc = subprocess.Popen(
        [sys.executable, "-c", FEED, kind, url, c, str(n), "1" if data is BIG else "0",
         os.path.dirname(os.path.abspath(__file__))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdin is not None
    proc.stdout.readline()
    t = time.perf_counter()
    proc.stdin.write(b"go\n")
    proc.stdin.flush()
    rate = sink.rate_since(t)
    proc.wait()
    close()
    return rate


def b_latency(kind: str, url: str, samples: int, rate: float) -> tuple[float, float, float]:
    """Publish-to-handler latency in ms: one event at a time, 2 ms apart (rate 0), or paced at
    `rate`/s (as `latency` does for asyncio)."""
    c, lat, arrived = chan(), [], threading.Event()

    def on(d: Any) -> None:
        lat.append((time.perf_counter() - d["t"]) * 1e3)
        arrived.set()
    close = b_subscribe(kind, url, c, on)
    pub = b_publisher(kind, url)

    def send(k: int) -> None:
        if kind == "project" and k == 1:
            pub.publish(c, {**SMALL, "t": time.perf_counter()})
        elif kind == "project":
            pub.publish_batch([(c, {**SMALL, "t": time.perf_counter()}) for _ in range(k)])
        elif k == 1:
            pub.publish(c, envelope(c, {**SMALL, "t": time.perf_counter()}))
        else:
            p = pub.pipeline(transaction=False)
            for _ in range(k):
                p.publish(c, envelope(c, {**SMALL, "t": time.perf_counter()}))
            p.execute()
    if rate <= 0:
        for _ in range(samples):
            arrived.clear()
            send(1)
            arrived.wait(5)
            time.sleep(0.002)
    else:
        for k, until in paced(rate, samples):
            send(k)
            time.sleep(max(0.0, until - time.perf_counter()))
        time.sleep(0.3)
    b_close_publisher(kind, pub)
    close()
    return pct(lat, 0.5), pct(lat, 0.99), max(lat) if lat else float("nan")


# ---------------------------------------------------------------- RSS

RSS_PRELUDE = """
import sys, asyncio, json, time, gc
def rss():
    # (all resident KiB, anonymous resident KiB: heap and stacks, without mapped code)
    st = {l.split(':')[0]: int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(('VmRSS', 'RssAnon'))}
    return st['VmRSS'], st['RssAnon']
kind, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, sys.argv[4])
import bench
# Baseline after the imports (both libraries, as bench/node takes its baseline after require):
# what the clients and their events add, not what loading the libraries costs.
base = rss()
"""

RSS_CHILD = RSS_PRELUDE + """
async def go():
    sink = bench.Sink(n)
    c = bench.chan()
    close, _ = await bench.subscribe_side(kind, url, c, sink)
    t = __import__('time').perf_counter()
    if kind == 'project':
        async with bench.ours(url) as pub:
            for s in range(0, n, 1000):
                await pub.publish_batch([(c, bench.SMALL)] * min(1000, n - s))
            await bench.wait_sink(sink, t)
    else:
        r = bench.aredis.Redis.from_url(url)
        for s in range(0, n, 1000):
            p = r.pipeline(transaction=False)
            for _ in range(min(1000, n - s)):
                p.publish(c, bench.envelope(c, bench.SMALL))
            await p.execute()
        await bench.wait_sink(sink, t)
        await r.aclose()
    # Settle for a second (both sides), as bench/node does: steady state, not mid-burst.
    await asyncio.sleep(1.0)
    __import__('gc').collect()
    after = rss()
    await close()
    return after
after = asyncio.run(go())
print(after[0] - base[0], after[1] - base[1])
"""


# The same with the blocking clients.
RSS_CHILD_BLOCKING = RSS_PRELUDE + """
sink = bench.BSink(n)
c = bench.chan()
close = bench.b_subscribe(kind, url, c, sink.handle)
pub = bench.b_publisher(kind, url)
bench.b_publish_all(kind, pub, c, n, bench.SMALL)
sink.rate_since(time.perf_counter())
time.sleep(1.0)
gc.collect()
after = rss()
bench.b_close_publisher(kind, pub)
close()
print(after[0] - base[0], after[1] - base[1])
"""


def rss(kind: str, url: str, n: int, blocking: bool = False) -> tuple[float, float]:
    """KiB added by the clients and 100,000 events: (all resident, anonymous only)."""
    child = RSS_CHILD_BLOCKING if blocking else RSS_CHILD
    o = subprocess.run([sys.executable, "-c", child, kind, url, str(n), os.path.dirname(os.path.abspath(__file__))],
                       capture_output=True, text=True, check=True)
    total, anon = o.stdout.split()[-2:]
    return float(total), float(anon)


# ---------------------------------------------------------------- driver

async def now(value: float) -> float:
    """A blocking scenario's figure (already measured) as the awaitable the driver expects."""
    return value


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    ap.add_argument("--json", dest="json_path", default=None, help="also write the raw figures here")
    ap.add_argument("--scale", type=float, default=float(os.environ.get("BENCH_SCALE", "1")))
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")))
    a = ap.parse_args()
    url, s = a.redis, a.scale

    def sc(x: int) -> int:
        return max(100, int(x * s))
    print(f"python {sys.version.split()[0]}, redis-py {redis.__version__}, event_bus {event_bus.__version__}, "
          f"rounds={a.rounds}, scale={s}", file=sys.stderr)

    # (scenario, unit, higher_is_better, runner(kind) -> float)
    specs: list[tuple[str, str, bool, Callable[[str], Awaitable[float]]]] = []
    for label, data in SIZES.items():
        big = data is BIG
        specs += [
            (f"publish awaited one at a time ({label})", "events/s", True,
             lambda k, d=data, b=big, lb=label: pub_single(k, url, sc(1500 if b else 3000), d, f"publish awaited one at a time {{}} ({lb})")),
            (f"publish batched/pipelined, 1000 per batch ({label})", "events/s", True,
             lambda k, d=data, b=big: pub_batch(k, url, sc(10000 if b else 40000), d)),
            (f"end-to-end into a handler, one process ({label})", "events/s", True,
             lambda k, d=data, b=big: e2e_one(k, url, sc(1500 if b else 40000), d)),
            (f"end-to-end into a handler, two processes ({label})", "events/s", True,
             lambda k, d=data, b=big: e2e_two(k, url, sc(1500 if b else 40000), d)),
            (f"blocking: publish one at a time ({label})", "events/s", True,
             lambda k, d=data, b=big, lb=label: now(b_pub_single(k, url, sc(1500 if b else 3000), d,
                                                                  f"blocking: publish one at a time {{}} ({lb})"))),
            (f"blocking: publish batched/pipelined, 1000 per batch ({label})", "events/s", True,
             lambda k, d=data, b=big: now(b_pub_batch(k, url, sc(10000 if b else 40000), d))),
            (f"blocking: end-to-end into a handler, one process ({label})", "events/s", True,
             lambda k, d=data, b=big: now(b_e2e_one(k, url, sc(1500 if b else 40000), d))),
            (f"blocking: end-to-end into a handler, two processes ({label})", "events/s", True,
             lambda k, d=data, b=big: now(b_e2e_two(k, url, sc(1500 if b else 40000), d))),
        ]
    # BENCH_ONLY=substring: only the scenarios whose name contains it (quick checks).
    only = os.environ.get("BENCH_ONLY", "")
    specs = [sp for sp in specs if only in sp[0]]
    raw: dict[str, dict[str, list[float]]] = {}

    async def round_() -> None:
        for name, _u, _h, run in specs:
            for kind in ("project", "peer") if len(raw.get(name, {}).get("project", [])) % 2 == 0 else ("peer", "project"):
                v = await run(kind)
                print(f"  {name} [{kind}]: {v:,.0f}", file=sys.stderr, flush=True)
                raw.setdefault(name, {}).setdefault(kind, []).append(v)
        # latency: idle, then at 50% of the peer's max (the peer's one-process e2e rate, small event)
        if only not in "latency":
            return
        e2e = raw.get("end-to-end into a handler, one process (320 B)")
        loads = [("idle", 0.0)] + ([("at 50% of peer max", statistics.median(e2e["peer"]) / 2)] if e2e else [])
        for label, r in loads:
            for kind in ("project", "peer"):
                p50, p99, mx = await latency(kind, url, sc(300), r)
                for stat, v in (("p50", p50), ("p99", p99), ("max", mx)):
                    raw.setdefault(f"latency {stat} {label} (320 B)", {}).setdefault(kind, []).append(v)
        b_e2e = raw.get("blocking: end-to-end into a handler, one process (320 B)")
        b_loads = [("idle", 0.0)] + ([("at 50% of peer max", statistics.median(b_e2e["peer"]) / 2)] if b_e2e else [])
        for label, r in b_loads:
            for kind in ("project", "peer"):
                p50, p99, mx = b_latency(kind, url, sc(300), r)
                for stat, v in (("p50", p50), ("p99", p99), ("max", mx)):
                    raw.setdefault(f"blocking: latency {stat} {label} (320 B)", {}).setdefault(kind, []).append(v)

    t0 = time.perf_counter()
    for i in range(a.rounds):
        asyncio.run(round_())
        print(f"round {i + 1}/{a.rounds} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    for _ in range(a.rounds if only in "RSS per client" else 0):
        for kind in ("project", "peer"):
            total, anon = rss(kind, url, 100_000 if s >= 1 else sc(100_000))
            raw.setdefault("RSS per client after 100,000 events (added KiB)", {}).setdefault(kind, []).append(total)
            raw.setdefault("RSS per client after 100,000 events, anonymous only: heap and stacks, no mapped code (added KiB)",
                           {}).setdefault(kind, []).append(anon)
            total, anon = rss(kind, url, 100_000 if s >= 1 else sc(100_000), blocking=True)
            raw.setdefault("blocking: RSS per client after 100,000 events (added KiB)", {}).setdefault(kind, []).append(total)
            raw.setdefault("blocking: RSS per client after 100,000 events, anonymous only (added KiB)",
                           {}).setdefault(kind, []).append(anon)

    for row, by_kind in AWAITED_LATENCY.items():
        for i, stat in enumerate(("p50", "p99")):
            name = row.format(stat)
            for kind, runs in by_kind.items():
                raw.setdefault(name, {})[kind] = [r[i] for r in runs]
    rows = []
    for name, by in raw.items():
        bare = name.removeprefix("blocking: ")
        unit = "ms" if bare.startswith("latency") or " one at a time p" in name else "KiB" if bare.startswith("RSS") else "events/s"
        rows.append({
            "scenario": name, "unit": unit, "higher_is_better": unit == "events/s",
            "project": statistics.median(by["project"]), "peer": statistics.median(by["peer"]),
            "peer_name": PEER_BLOCKING if name.startswith("blocking: ") else PEER,
        })
    print("| scenario | unit | project | peer | peer is | project/peer |\n|---|---|---:|---:|---|---:|")
    for r in rows:
        fmt = "{:,.2f}" if r["unit"] == "ms" else "{:,.0f}"
        ratio = r["project"] / r["peer"] if r["peer"] else float("nan")
        better = "" if r["higher_is_better"] else " (lower is better)"
        print(f"| {r['scenario']} | {r['unit']}{better} | {fmt.format(r['project'])} | {fmt.format(r['peer'])} "
              f"| {r['peer_name']} | {ratio:.2f}x |")
    print(f"\n{a.rounds} rounds, medians; {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if a.json_path:
        with open(a.json_path, "w", encoding="utf-8") as f:
            json.dump({"face": "python", "peer": PEER, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
