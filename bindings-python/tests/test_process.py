"""Process-level behaviour: Ctrl-C / SIGTERM stop run_forever() cleanly; the process exits after
disconnect (no thread keeps it alive); the fault test: own redis-server killed and restarted."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import event_bus
import event_bus.asyncio as aio
from conftest import REDIS_URL, RedisServer

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _default_sigint() -> None:
    # A suite started in the background by a non-interactive shell inherits SIGINT ignored, and
    # Python then installs no KeyboardInterrupt handler: give the child a terminal's default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, preexec_fn=_default_sigint)


RUN_FOREVER = f"""
    import event_bus
    bus = event_bus.EventBusClient(service_name="rf", redis_url={REDIS_URL!r})
    bus.connect()
    bus.subscribe("rf.*", lambda e: None)
    import threading
    # "ready" once run_forever() is surely inside its wait (its SIGTERM handler installed)
    threading.Timer(0.3, lambda: print("ready", flush=True)).start()
    bus.run_forever()
    print("stopped", bus.is_connected(), flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_run_forever_stops_on_signal(sig: signal.Signals) -> None:
    p = spawn(RUN_FOREVER)
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    p.send_signal(sig)
    out, err = p.communicate(timeout=15)
    assert p.returncode == 0, err
    assert "stopped False" in out


def test_process_exits_after_disconnect() -> None:
    p = spawn(f"""
        import asyncio, event_bus, event_bus.asyncio as aio
        bus = event_bus.EventBusClient(service_name="x", redis_url={REDIS_URL!r})
        bus.connect(); bus.subscribe("x.*", print); bus.publish("x.y", 1); bus.disconnect()
        async def main():
            b = aio.EventBusClient(service_name="x", redis_url={REDIS_URL!r})
            await b.connect(); await b.subscribe("x.*", print); await b.disconnect()
        asyncio.run(main())
        print("done")
    """)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    assert "done" in out


def test_ctrl_c_interrupts_a_blocking_wait() -> None:
    # connect() to a server that accepts TCP but never answers waits; SIGINT must interrupt it.
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    p = spawn(f"""
        import event_bus, time
        bus = event_bus.EventBusClient({{"serviceName": "x", "redis": {{"host": "127.0.0.1", "port": {port}, "connectTimeout": 60000}}}})
        print("ready", flush=True)
        try:
            bus.connect()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    """)
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=10)
    silent.close()
    assert "interrupted" in out, err


async def test_fault_async_subscriber_resubscribes(redis_server: RedisServer, uid: str) -> None:
    got: list[int] = []
    states: list[str] = []

    async def h(e: event_bus.Event) -> None:
        got.append(e.data)

    cfg = {"serviceName": "fault", "redis": {"url": redis_server.url, "reconnectDelay": 50,
                                              "reconnectDelayMax": 200}, "logLevel": "error"}
    async with aio.EventBusClient(cfg) as bus:
        bus.on_state(lambda s: states.append(s["type"]))
        await bus.subscribe(f"{uid}.*", h)
        await bus.publish(f"{uid}.a", 1)
        for _ in range(200):
            if got == [1]:
                break
            await asyncio.sleep(0.01)
        assert got == [1]
        redis_server.kill()
        await asyncio.sleep(0.5)
        assert (await bus.health_check())["status"] != "healthy"
        redis_server.start()  # same port
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            h2 = await bus.health_check()
            if h2["status"] == "healthy":
                break
            await asyncio.sleep(0.1)
        assert h2["status"] == "healthy"
        # the subscription is restored: a raw publish reaches the handler again
        import redis as redis_py

        r = redis_py.Redis.from_url(redis_server.url)
        deadline = time.monotonic() + 10
        while 2 not in got and time.monotonic() < deadline:
            await bus.publish(f"{uid}.b", 2)
            await asyncio.sleep(0.1)
        assert 2 in got
        assert "gap" in states or "reconnecting" in states
        assert r.ping()
        assert bus._native.get_stats()["reconnects"] >= 1
