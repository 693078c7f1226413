"""The fault matrix from the Python face: a private redis-server behind the fault proxy
(fault_proxy.py), one fault per test, and what must hold through it. No test measures time
against a threshold; waits are generous upper bounds on "eventually"."""

from __future__ import annotations

import builtins
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

import event_bus
from conftest import RedisServer, TlsFiles, unique, wait_for
from fault_proxy import FaultProxy, PrivateRedis

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")


@pytest.fixture
def redis_private() -> Iterator[PrivateRedis]:
    srv = PrivateRedis()
    srv.start_with()
    try:
        yield srv
    finally:
        srv.kill()


@pytest.fixture
def proxy(redis_private: PrivateRedis) -> Iterator[FaultProxy]:
    p = FaultProxy(redis_private.port)
    try:
        yield p
    finally:
        p.stop()


class Bus:
    """A client and the state events it reported."""

    def __init__(self, url: str, **extra: Any) -> None:
        self.service = unique("pyfault")
        self.states: list[dict[str, Any]] = []
        self.bus = event_bus.EventBusClient(service_name=self.service, redis_url=url, log_level="error", **extra)
        self.bus.on_state(self.states.append)

    def count(self, kind: str, connection: Optional[str] = None) -> int:
        return sum(1 for s in self.states if s["type"] == kind and connection in (None, s.get("connection")))

    def __enter__(self) -> "Bus":
        self.bus.connect()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bus.disconnect()


def numbers(got: list[event_bus.Event]) -> list[int]:
    return [int(e.data["n"]) for e in got]


def test_latency_keeps_order_and_is_not_taken_for_a_dead_link(proxy: FaultProxy) -> None:
    opts = {"heartbeat_interval": 300, "publish_timeout": 5000}
    with Bus(proxy.url, **opts) as pub, Bus(proxy.url, **opts) as sub:
        ch = unique("lat")
        got: list[event_bus.Event] = []
        sub.bus.subscribe(ch, got.append)
        proxy.must("latency 50 20")
        # 300 publishes, 30 pipelined at once, over a few seconds of slow link.
        for wave in range(10):
            rs = pub.bus.publish_batch([(ch, {"n": wave * 30 + i}) for i in range(30)])
            for i, r in enumerate(rs):
                assert r.success and r.delivered_to == 1, (wave * 30 + i, r.error)
        assert wait_for(lambda: len(got) >= 300, timeout=30)
        assert numbers(got) == list(range(300)), "in publish order, each once"
        time.sleep(1.5)  # several more heartbeats across the slow link
        assert sub.bus.get_stats()["reconnects"] == 0, sub.states
        assert pub.bus.get_stats()["reconnects"] == 0, pub.states
        assert sub.count("disconnected") + pub.count("disconnected") == 0
        proxy.must("heal")


def test_publish_timeout_is_honoured_on_a_slow_link(proxy: FaultProxy) -> None:
    with Bus(proxy.url, publish_timeout=200, heartbeat_interval=5000) as b:
        proxy.must("latency 600")
        with pytest.raises((event_bus.TimeoutError, event_bus.OutcomeUnknownError)):
            b.bus.publish(unique("lat.t"), {"n": 1})
        proxy.must("heal")


def test_black_holed_subscriber_link_is_noticed_and_resubscribed_once(
    redis_private: PrivateRedis, proxy: FaultProxy
) -> None:
    with Bus(proxy.url, heartbeat_interval=300, reconnect_delay=50, reconnect_delay_max=200) as b:
        a, other, pattern = unique("bh.a"), unique("bh.b"), unique("bh.p") + ".*"
        got: list[event_bus.Event] = []
        b.bus.subscribe(a, got.append)
        gone = b.bus.subscribe(other, lambda e: None)
        b.bus.subscribe(pattern, lambda e: None)
        assert any(c["name"] == f"{b.service}:sub" for c in proxy.conns())
        # One subscription goes before the fault: the resubscribe must not bring it back.
        assert b.bus.unsubscribe(gone.id)
        assert proxy.must("blackhole :sub") == "ok 1"
        assert wait_for(lambda: b.count("gap") >= 1, timeout=30), b.states
        reasons = [s.get("reason", "") for s in b.states if s["type"] == "disconnected"]
        assert any("heartbeat" in r for r in reasons), reasons
        admin = redis_private.admin()
        try:
            subs = [c for c in admin.client_list() if c.get("name") == f"{b.service}:sub"]
        finally:
            admin.close()
        newest = max(subs, key=lambda c: int(c["id"]))
        assert (newest["sub"], newest["psub"]) == ("1", "1"), newest
        assert b.count("disconnected", "publisher") == 0, "the publisher link was never cut"
        assert b.bus.publish(a, {"n": 1}).delivered_to == 1
        assert wait_for(lambda: len(got) >= 1)
        time.sleep(0.3)
        assert numbers(got) == [1], "once"
        assert b.count("gap") == 1, b.states
        reconnected = [s for s in b.states if s["type"] == "connected" and s.get("connection") == "subscriber" and s.get("reconnect")]
        assert len(reconnected) == 1, b.states


def test_publisher_reset_mid_pipeline_loses_nothing_silently(
    redis_private: PrivateRedis, proxy: FaultProxy
) -> None:
    with Bus(proxy.url, reconnect_delay=50, reconnect_delay_max=200, publish_timeout=10000) as pub, \
            Bus(redis_private.url) as sub:
        ch = unique("rst")
        got: list[event_bus.Event] = []
        sub.bus.subscribe(ch, got.append, max_pending=1_000_000)
        # About 40 KB into the burst (each PUBLISH is ~300 bytes), the link is reset.
        assert proxy.must(f"reset {pub.service}:pub 40000") == "ok 1"
        # 20 pipelined batches of 100, one after the other: the reset lands inside one of them.
        outcomes = [r for b in range(20) for r in pub.bus.publish_batch([(ch, {"n": b * 100 + i}) for i in range(100)])]
        ok: set[int] = set()
        unknown = unsent = 0
        for n, r in enumerate(outcomes):
            if r.success:
                assert r.delivered_to == 1, n
                ok.add(n)
            elif isinstance(r.error, event_bus.OutcomeUnknownError):
                unknown += 1
            else:
                assert isinstance(r.error, (event_bus.ConnectionError, event_bus.ClosedError, event_bus.TimeoutError)), (n, r.error)
                unsent += 1
        assert unknown + unsent > 0, "the reset hit no publish"
        assert ok, "nothing went through before the reset"
        assert wait_for(lambda: len(got) >= len(ok), timeout=20)
        time.sleep(0.3)
        seen = numbers(got)
        assert len(set(seen)) == len(seen), "an event was delivered twice"
        assert ok <= set(seen), "a success was not delivered"
        for n in set(seen) - ok:
            assert isinstance(outcomes[n].error, event_bus.OutcomeUnknownError), (n, outcomes[n].error)
        # The publisher comes back through the proxy.
        def back() -> bool:
            try:
                return pub.bus.publish(ch, {"n": -1}).success
            except event_bus.EventBusError:
                return False
        assert wait_for(back, timeout=10)


def test_outage_with_publishes_continuing_holds_the_queue_bound(
    redis_private: PrivateRedis, proxy: FaultProxy
) -> None:
    bound = 40
    with Bus(proxy.url, offline_queue_size=bound, publish_timeout=60000, reconnect_delay=100,
             reconnect_delay_max=500) as pub, Bus(redis_private.url) as sub:
        ch = unique("out")
        got: list[event_bus.Event] = []
        sub.bus.subscribe(ch, got.append, max_pending=100_000)
        # The outage: every new connection refused, the current ones cut.
        proxy.must("refuse 600000")
        proxy.must("reset all")
        assert wait_for(lambda: pub.count("disconnected", "publisher") >= 1, timeout=10)
        # Publishes keep coming for a while (a short form of a 10 s outage: 100, 50 ms apart),
        # each from its own thread, as each blocks until its outcome is known.
        def one(n: int) -> event_bus.PublishResult:
            return pub.bus.publish_batch([(ch, {"n": n})])[0]

        with ThreadPoolExecutor(max_workers=100) as pool:
            futures = []
            for n in range(100):
                futures.append(pool.submit(one, n))
                time.sleep(0.05)
            for n, f in enumerate(futures[bound:], start=bound):
                r = f.result(timeout=20)
                assert not r.success, n
                assert isinstance(r.error, event_bus.QueueFullError), (n, r.error)
                assert r.error.code == "QUEUE_FULL"
            assert not got
            assert not any(f.done() for f in futures[:bound]), "a queued publish ended during the outage"
            proxy.must("heal")
            for n, f in enumerate(futures[:bound]):
                r = f.result(timeout=30)
                assert r.success and r.delivered_to == 1, (n, r.error)
        assert wait_for(lambda: len(got) >= bound, timeout=10)
        time.sleep(0.2)
        assert numbers(got) == list(range(bound)), "in order, each once, nothing past the bound"


def test_redis_restarted_with_a_new_password(redis_private: PrivateRedis) -> None:
    redis_private.restart(["--requirepass", "old-secret"])
    with Bus(redis_private.url, redis_password="old-secret", reconnect_delay=50, reconnect_delay_max=300) as b:
        ch = unique("pw")
        got: list[event_bus.Event] = []
        b.bus.subscribe(ch, got.append)
        redis_private.restart(["--requirepass", "new-secret"])
        # The first failed attempt may find the port closed (the restart); the cause changes to
        # the refused password once the server is up, and that change is reported.
        def auth_errors() -> list[dict[str, Any]]:
            return [s for s in b.states if s["type"] == "error"
                    and any(w in s.get("message", "").lower() for w in ("auth", "password", "wrongpass"))]
        assert wait_for(lambda: bool(auth_errors()), timeout=20), b.states
        errors = [s.get("message", "") for s in b.states if s["type"] == "error"]
        assert not any("secret" in m for m in errors), "a password in a message"
        attempts = b.count("reconnecting")
        assert wait_for(lambda: b.count("reconnecting") >= attempts + 3, timeout=20), "still retrying"
        with pytest.raises(event_bus.EventBusError):
            b.bus.publish(ch, {"n": 0})
        # The client's credentials are fixed at construction (no refresh call in this face): it
        # recovers when the server takes them again.
        redis_private.restart(["--requirepass", "old-secret"])
        assert wait_for(lambda: b.count("gap") >= 1, timeout=20), b.states

        def published() -> bool:
            try:
                return b.bus.publish(ch, {"n": 1}).success
            except event_bus.EventBusError:
                return False
        assert wait_for(published, timeout=10)
        assert wait_for(lambda: 1 in numbers(got))


def test_client_pause_publishes_wait_and_complete(redis_private: PrivateRedis, proxy: FaultProxy) -> None:
    with Bus(proxy.url, publish_timeout=20000) as pub, Bus(proxy.url) as sub:
        ch = unique("pause")
        got: list[event_bus.Event] = []
        sub.bus.subscribe(ch, got.append)
        # The subscriber link is idle for 4 s before the pause, so its heartbeat PING (due after
        # 5 s of silence, answer awaited up to 5 s) is sent while Redis is paused and answered late.
        time.sleep(4)
        admin = redis_private.admin()
        try:
            assert admin.client_pause(3000, all=True)
        finally:
            admin.close()
        rs = pub.bus.publish_batch([(ch, {"n": n}) for n in range(50)])
        for n, r in enumerate(rs):
            assert r.success and r.delivered_to == 1, (n, r.error)
        assert wait_for(lambda: len(got) >= 50, timeout=10)
        assert numbers(got) == list(range(50))
        time.sleep(2)
        assert pub.bus.get_stats()["reconnects"] == 0, pub.states
        assert sub.bus.get_stats()["reconnects"] == 0, sub.states
        assert pub.count("disconnected") + sub.count("disconnected") == 0


def test_maxclients_reached_fails_connect_clearly_then_succeeds(redis_private: PrivateRedis) -> None:
    import socket

    redis_private.restart(["--maxclients", "3"])
    holders = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", redis_private.port), timeout=10)
        s.sendall(b"PING\r\n")
        assert s.recv(64).startswith(b"+PONG")
        holders.append(s)
    b = Bus(redis_private.url, connect_timeout=3000)
    try:
        for _ in range(3):
            with pytest.raises(event_bus.ConnectionError) as e:
                b.bus.connect()
            assert isinstance(e.value, builtins.ConnectionError)
            text = str(e.value)
            assert f"127.0.0.1:{redis_private.port}" in text, text
            assert "the server refused a new client: max number of clients reached" in text, text
    finally:
        for s in holders:
            s.close()

    def slots_free() -> bool:
        try:
            admin = redis_private.admin()
            try:
                return int(admin.info("clients")["connected_clients"]) == 1
            finally:
                admin.close()
        except Exception:
            return False
    assert wait_for(slots_free, timeout=10)
    b.bus.connect()
    try:
        assert b.bus.publish(unique("maxclients"), {"n": 1}).success
    finally:
        b.bus.disconnect()


@pytest.mark.parametrize(
    ("san", "days", "why"),
    [("IP:127.0.0.1, DNS:localhost", "-1", "(it has expired)"),
     ("DNS:elsewhere.invalid", "2", "(it is not issued for this host name)")],
    ids=["expired", "wrong-host"],
)
def test_tls_expired_or_wrong_host_certificate_is_refused_with_the_reason(
    tmp_path: Path, san: str, days: str, why: str
) -> None:
    import redis

    files = TlsFiles(tmp_path, san=san, days=days)
    srv = RedisServer()
    srv.start(tls=files)
    try:
        url = f"rediss://127.0.0.1:{srv.port}"
        b = Bus(url, redis_tls={"ca": files.ca.read_text()}, connect_timeout=3000)
        with pytest.raises(event_bus.ConnectionError) as e:
            b.bus.connect()
        text = str(e.value)
        assert e.value.code == "CONNECTION_ERROR"
        assert url in text, text
        assert "the server's TLS certificate is not trusted" in text and why in text, text
        # Nothing was sent in plain text instead: the server never saw a client of ours.
        admin = redis.Redis(port=srv.port, ssl=True, ssl_cert_reqs=None, ssl_check_hostname=False, decode_responses=True)
        try:
            listed = admin.client_list()
            ours = [c for c in listed if b.service in c.get("name", "")]
        finally:
            admin.close()
        assert listed, "CLIENT LIST answered (it lists its own connection)"
        assert ours == [], "a client of ours got through"
    finally:
        srv.kill()
