"""ACL changes mid-run on a private redis-server: what the ACL refuses fails with
PermissionDeniedError naming the channel, and giving the permission back heals the client
without a restart."""

from __future__ import annotations

from typing import Any

import pytest
import redis

import event_bus
from conftest import RedisServer, wait_for


def acl(srv: RedisServer, *rules: str) -> None:
    admin = redis.Redis(port=srv.port)
    try:
        admin.execute_command("ACL", "SETUSER", "alice", *rules)
    finally:
        admin.close()


def alice(srv: RedisServer, **extra: Any) -> event_bus.EventBusClient:
    acl(srv, "reset", "on", ">wonderland", "~*", "&*", "+@all")
    return event_bus.EventBusClient(
        service_name="acl", redis_url=f"redis://alice:wonderland@127.0.0.1:{srv.port}", **extra
    )


def test_publish_permission_taken_away_and_given_back(redis_server: RedisServer, uid: str) -> None:
    with alice(redis_server) as bus:
        got: list[event_bus.Event] = []
        bus.subscribe(f"{uid}.x", got.append)
        assert bus.publish(f"{uid}.x", {"n": 1}).delivered_to == 1

        acl(redis_server, "-publish")
        with pytest.raises(event_bus.PermissionDeniedError) as ei:
            bus.publish(f"{uid}.x", {"n": 2})
        e = ei.value
        assert isinstance(e, PermissionError) and isinstance(e, event_bus.EventBusError)
        assert e.code == "PERMISSION_DENIED"
        assert str(e).startswith(f'Redis refused PUBLISH on "{uid}.x": permission denied'), str(e)
        assert "ServerError" not in str(e)
        # The batch form reports it per item, with the same code.
        [r] = bus.publish_batch([{"type": f"{uid}.x", "data": {"n": 3}}])
        assert not r.success and isinstance(r.error, event_bus.PermissionDeniedError)

        acl(redis_server, "+publish")
        assert bus.publish(f"{uid}.x", {"n": 4}).delivered_to == 1
        assert wait_for(lambda: len(got) == 2)
        assert [g.data["n"] for g in got] == [1, 4], "refused publishes are never resent"
        assert bus.get_stats()["reconnects"] == 0


def test_refused_resubscribe_is_an_error_event_and_retried(redis_server: RedisServer, uid: str) -> None:
    with alice(redis_server, reconnect_delay=50, reconnect_delay_max=200) as bus:
        states: list[dict[str, Any]] = []
        bus.on_state(states.append)
        got: list[event_bus.Event] = []
        bus.subscribe(f"{uid}.x", got.append)
        # Redis drops a subscriber whose channel permission goes; its resubscribe is refused.
        acl(redis_server, "resetchannels", "&other.*")
        refused = lambda: [  # noqa: E731
            s for s in states if s["type"] == "error" and "permission denied" in s.get("message", "")
        ]
        assert wait_for(lambda: len(refused()) >= 2, timeout=20), states
        assert "Resubscribe failed" in refused()[0]["message"]
        assert refused()[0]["code"] == "PERMISSION_DENIED"
        acl(redis_server, "resetchannels", "&*")
        assert wait_for(lambda: any(s["type"] == "gap" for s in states), timeout=20), states
        assert bus.publish(f"{uid}.x", {"n": 1}).delivered_to == 1
        assert wait_for(lambda: len(got) == 1)
