"""The Python face on a private Redis Cluster (3 masters + 3 replicas) and a private Sentinel
setup (master + replica + 3 sentinels), both from scripts/redis-topology.sh: classic cluster
pub/sub over all three slot ranges, sharded pub/sub (SHARDNUMSUB on the owner, patterns
refused), SENTINEL FAILOVER followed by both links, and the ConfigError of a mixed config.

Each topology is started once for this file (module fixtures) and stopped when the module is
done, when a test fails, and at interpreter exit."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Any, Callable, Iterator, Optional

import pytest

import event_bus
from conftest import ROOT, unique, wait_for

SCRIPT = ROOT / "scripts" / "redis-topology.sh"
CLI = os.environ.get("REDIS_CLI_BIN", "redis-cli")
# Generous bounded waits: the CI machine has 2 loaded cores.
WAIT = 30.0

pytestmark = pytest.mark.skipif(
    shutil.which(os.environ.get("REDIS_SERVER_BIN", "redis-server")) is None or shutil.which(CLI) is None,
    reason="redis-server / redis-cli not installed",
)


class Topology:
    """A topology started by scripts/redis-topology.sh in a temp directory."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.dir = tempfile.mkdtemp(prefix=f"event-bus-py-{kind}-")
        self.stopped = False
        atexit.register(self.stop)
        r = subprocess.run(["bash", str(SCRIPT), "start", kind, self.dir], capture_output=True, text=True)
        if r.returncode != 0:
            self.stop()
            raise RuntimeError(f"redis-topology.sh start {kind} failed: {r.stderr}")
        self.env = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)

    def addrs(self, key: str) -> list[str]:
        return self.env[key].split(",")

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        subprocess.run(["bash", str(SCRIPT), "stop", self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


def cli(addr: str, *args: Any) -> str:
    host, port = addr.split(":")
    r = subprocess.run([CLI, "-h", host, "-p", port, *map(str, args)], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        raise RuntimeError(f"redis-cli {addr} {args}: {r.stderr}")
    return r.stdout.strip()


def try_cli(addr: str, *args: Any) -> str:
    try:
        return cli(addr, *args)
    except (RuntimeError, subprocess.TimeoutExpired):
        return ""


def cluster_masters(addr: str) -> dict[str, list[tuple[int, int]]]:
    """Master address -> its slot ranges, from CLUSTER NODES on `addr`."""
    out: dict[str, list[tuple[int, int]]] = {}
    for line in cli(addr, "CLUSTER", "NODES").splitlines():
        f = line.split()
        if len(f) < 9 or "master" not in f[2] or "fail" in f[2]:
            continue
        ranges = []
        for r in f[8:]:
            if r.startswith("["):
                continue
            a, _, b = r.partition("-")
            ranges.append((int(a), int(b or a)))
        out[f[1].split("@")[0]] = ranges
    return out


def owner_of(addr: str, slot: int) -> str:
    for m, ranges in cluster_masters(addr).items():
        if any(a <= slot <= b for a, b in ranges):
            return m
    raise AssertionError(f"no master serves slot {slot}")


def channels_on_every_master(addr: str, prefix: str) -> dict[str, str]:
    """Owner -> one channel `prefix.i` of its slot range, for every master."""
    n = len(cluster_masters(addr))
    by_owner: dict[str, str] = {}
    i = 0
    while len(by_owner) < n:
        ch = f"{prefix}.{i}"
        by_owner.setdefault(owner_of(addr, int(cli(addr, "CLUSTER", "KEYSLOT", ch))), ch)
        i += 1
    return by_owner


def shard_numsub(addr: str, channel: str) -> int:
    return int(cli(addr, "PUBSUB", "SHARDNUMSUB", channel).splitlines()[1])


def numsub(addr: str, channel: str) -> int:
    lines = try_cli(addr, "PUBSUB", "NUMSUB", channel).splitlines()
    return int(lines[1]) if len(lines) == 2 else 0


def names_on(addr: str) -> list[str]:
    out = []
    for line in try_cli(addr, "CLIENT", "LIST").splitlines():
        for kv in line.split(" "):
            if kv.startswith("name=") and len(kv) > 5:
                out.append(kv[5:])
    return out


def sentinel_master(t: Topology) -> Optional[str]:
    for s in t.addrs("REDIS_SENTINELS"):
        r = try_cli(s, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", t.env["REDIS_SENTINEL_NAME"]).splitlines()
        if len(r) == 2:
            return f"{r[0]}:{r[1]}"
    return None


class Collector:
    """A handler recording (channel, data) of every event, thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.got: list[tuple[str, Any]] = []

    def __call__(self, ev: event_bus.Event) -> None:
        with self.lock:
            self.got.append((ev.channel, ev.data))

    def snapshot(self) -> list[tuple[str, Any]]:
        with self.lock:
            return list(self.got)


def settle() -> None:
    """After the waits, nothing more arrives: each event exactly once."""
    time.sleep(0.3)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Topology]:
    t = Topology("cluster")
    try:
        yield t
    finally:
        t.stop()


def cluster_config(t: Topology, service: str, **extra: Any) -> dict[str, Any]:
    seed = t.addrs("REDIS_CLUSTER_MASTERS")[0]  # one seed is enough: the rest is read from it
    redis = {"cluster": [f"redis://{seed}"], "reconnectDelay": 50, "reconnectDelayMax": 500,
             "heartbeatInterval": 1000, **extra}
    return {"serviceName": service, "logLevel": "error", "redis": redis}


def test_cluster_classic_exact_and_pattern_over_all_slot_ranges_each_event_once(cluster: Topology) -> None:
    seed = cluster.addrs("REDIS_CLUSTER_MASTERS")[0]
    prefix = unique("pclu")
    channels = list(channels_on_every_master(seed, prefix).values())
    assert len(channels) == 3
    sub_service = unique("pclu-sub")
    with event_bus.EventBusClient(cluster_config(cluster, sub_service)) as sub, \
            event_bus.EventBusClient(cluster_config(cluster, unique("pclu-pub"))) as pub:
        exact = {ch: Collector() for ch in channels}
        for ch, col in exact.items():
            sub.subscribe(ch, col)
        pattern = Collector()
        sub.subscribe(f"{prefix}.*", pattern)
        n_each = 20
        for n in range(n_each):
            for ch in channels:
                assert pub.publish(ch, {"n": n}).success
        total = n_each * len(channels)
        assert wait_for(lambda: len(pattern.snapshot()) >= total
                        and all(len(c.snapshot()) >= n_each for c in exact.values()), WAIT)
        settle()
        got = pattern.snapshot()
        assert len(got) == total, "pattern: each event once"
        assert len({(ch, d["n"]) for ch, d in got}) == total
        for ch, col in exact.items():
            assert col.snapshot() == [(ch, {"n": n}) for n in range(n_each)], f"{ch}: once each, in order"
        st = sub.get_stats()
        assert st["topology"]["mode"] == "cluster"
        assert sorted(st["topology"]["masters"]) == sorted(cluster.addrs("REDIS_CLUSTER_MASTERS"))
        node = st["topology"]["connections"]["subscriber"][0]
        assert f"{sub_service}:sub" in names_on(node)


def test_cluster_sharded_subscribes_on_the_owner_and_refuses_patterns(cluster: Topology) -> None:
    masters = cluster.addrs("REDIS_CLUSTER_MASTERS")
    prefix = unique("pshd")
    by_owner = channels_on_every_master(masters[0], prefix)
    with event_bus.EventBusClient(cluster_config(cluster, unique("pshd-sub"), shardedPubSub=True)) as sub, \
            event_bus.EventBusClient(cluster_config(cluster, unique("pshd-pub"), shardedPubSub=True)) as pub:
        with pytest.raises(event_bus.NotSupportedError, match="sharded pub/sub has no patterns") as ei:
            sub.subscribe(f"{prefix}.*", lambda e: None)
        assert ei.value.code == "NOT_SUPPORTED"
        assert sub.get_stats()["activeSubscriptions"] == 0
        cols = {ch: Collector() for ch in by_owner.values()}
        for ch, col in cols.items():
            sub.subscribe(ch, col)
        for owner, ch in by_owner.items():
            assert shard_numsub(owner, ch) == 1, f"{ch} on its owner {owner}"
            for m in masters:
                if m != owner:
                    assert shard_numsub(m, ch) == 0, f"{ch} not on {m}"
        assert sub.get_stats()["topology"]["mode"] == "cluster-sharded"
        n_each = 10
        for n in range(n_each):
            for ch in cols:
                r = pub.publish(ch, {"n": n})
                assert r.success and r.delivered_to == 1
        assert wait_for(lambda: all(len(c.snapshot()) >= n_each for c in cols.values()), WAIT)
        settle()
        for ch, col in cols.items():
            assert col.snapshot() == [(ch, {"n": n}) for n in range(n_each)], f"{ch}: once each, in order"


@pytest.mark.parametrize(
    "redis, keys",
    [
        ({"cluster": ["redis://127.0.0.1:7000"], "sentinels": [{"host": "127.0.0.1"}], "name": "m"},
         ["redis.cluster", "redis.sentinels"]),
        ({"url": "redis://127.0.0.1:7000", "cluster": ["redis://127.0.0.1:7000"]}, ["redis.url", "redis.cluster"]),
        ({"url": "redis://127.0.0.1:7000", "shardedPubSub": True}, ["redis.shardedPubSub", "redis.cluster"]),
    ],
)
def test_mixed_modes_are_a_config_error_naming_both_keys(redis: dict[str, Any], keys: list[str]) -> None:
    with pytest.raises(event_bus.ConfigError) as ei:
        event_bus.EventBusClient({"serviceName": "p", "redis": redis})
    assert ei.value.code == "CONFIG_ERROR"
    for k in keys:
        assert k in str(ei.value), str(ei.value)


@pytest.fixture(scope="module")
def sentinel() -> Iterator[Topology]:
    t = Topology("sentinel")
    try:
        yield t
    finally:
        t.stop()


def test_sentinel_failover_moves_publisher_and_subscriber(sentinel: Topology) -> None:
    t = sentinel
    redis = {
        "sentinels": [{"host": "127.0.0.1", "port": int(a.split(":")[1])} for a in t.addrs("REDIS_SENTINELS")],
        "name": t.env["REDIS_SENTINEL_NAME"], "reconnectDelay": 50, "reconnectDelayMax": 500,
        "heartbeatInterval": 1000,
    }
    pub_service, sub_service = unique("psen-pub"), unique("psen-sub")
    old, new = t.env["REDIS_MASTER"], t.env["REDIS_REPLICA"]
    chan, pat = unique("psen.chan"), unique("psen.pat")
    with event_bus.EventBusClient({"serviceName": pub_service, "logLevel": "error", "redis": redis}) as pub, \
            event_bus.EventBusClient({"serviceName": sub_service, "logLevel": "error", "redis": redis}) as sub:
        states: list[str] = []
        sub.on_state(lambda s: states.append(s["type"]))
        exact, pattern = Collector(), Collector()
        sub.subscribe(chan, exact)
        sub.subscribe(f"{pat}.*", pattern)
        wanted = [f"{pub_service}:pub", f"{pub_service}:sub", f"{sub_service}:pub", f"{sub_service}:sub"]
        names = names_on(old)
        assert all(n in names for n in wanted), names
        assert pub.publish(chan, {"phase": "before"}).delivered_to == 1
        assert wait_for(lambda: len(exact.snapshot()) == 1, WAIT)

        cli(t.addrs("REDIS_SENTINELS")[0], "SENTINEL", "FAILOVER", t.env["REDIS_SENTINEL_NAME"])
        assert wait_for(lambda: sentinel_master(t) == new, 60), f"no failover to {new}: {sentinel_master(t)}"
        on_new: Callable[[], bool] = lambda: all(n in names_on(new) for n in wanted)
        assert wait_for(on_new, 60), f"links not all on {new}: {names_on(new)}"
        assert wait_for(lambda: not any(n in names_on(old) for n in wanted), WAIT), names_on(old)
        assert wait_for(lambda: numsub(new, chan) == 1, WAIT), f"not resubscribed on {new}"

        n_after = 30
        for n in range(n_after):
            r = pub.publish(chan, {"phase": "after", "n": n})
            assert r.success and r.delivered_to == 1, f"publish {n} after the switch"
            assert pub.publish(f"{pat}.x", {"phase": "after", "n": n}).success

        def after(c: Collector) -> list[int]:
            return [d["n"] for _, d in c.snapshot() if d.get("phase") == "after"]

        assert wait_for(lambda: len(after(exact)) >= n_after and len(after(pattern)) >= n_after, WAIT)
        settle()
        assert after(exact) == list(range(n_after)), "exact: once each, in order"
        assert after(pattern) == list(range(n_after)), "pattern: once each, in order"
        assert "gap" in states, states
        st = sub.get_stats()
        assert st["topology"]["mode"] == "sentinel"
        assert st["topology"]["masters"] == [new]
        assert pub.get_stats()["topology"]["connections"]["publisher"] == [new]
