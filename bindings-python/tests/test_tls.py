"""TLS to Redis from Python: a private TLS-only redis-server with a throwaway CA (openssl)."""

from __future__ import annotations

import pytest

import event_bus
from conftest import RedisServer, TlsFiles, wait_for


def roundtrip(bus: event_bus.EventBusClient, uid: str) -> None:
    got: list[event_bus.Event] = []
    bus.subscribe(f"{uid}.*", got.append)
    assert bus.publish(f"{uid}.x", {"n": 1}).success
    assert wait_for(lambda: len(got) == 1)
    assert got[0].data == {"n": 1}


@pytest.mark.parametrize("as_bytes", [False, True], ids=["ca-text", "ca-bytes"])
def test_tls_with_a_private_ca(tls_redis_server: tuple[RedisServer, TlsFiles], uid: str, as_bytes: bool) -> None:
    srv, files = tls_redis_server
    ca = files.ca.read_bytes() if as_bytes else files.ca.read_text()
    # The keyword and the camelCase dict both take the PEM as text or as bytes (a file read in
    # binary mode, as redis-py's ssl_ca_data takes).
    with event_bus.EventBusClient(service_name="tls", redis_url=srv.url, redis_tls={"ca": ca}) as bus:
        roundtrip(bus, uid)
    cfg = {"serviceName": "tls", "redis": {"url": f"rediss://127.0.0.1:{srv.port}", "tls": {"ca": [ca]}}}
    with event_bus.EventBusClient(cfg) as bus:
        roundtrip(bus, uid)


def test_tls_refuses_an_untrusted_server_and_bad_ca_input(tls_redis_server: tuple[RedisServer, TlsFiles]) -> None:
    srv, _ = tls_redis_server
    bus = event_bus.EventBusClient(service_name="tls", redis_url=srv.url, redis_tls=True, connect_timeout=3000)
    with pytest.raises(event_bus.EventBusError, match="certificate"):
        bus.connect()
    # Bytes that are not a certificate reach the core's check; binary bytes are refused here.
    with pytest.raises(event_bus.EventBusError, match="(?i)certificate"):
        event_bus.EventBusClient(service_name="tls", redis_url=srv.url, redis_tls={"ca": b"not a cert"})
    with pytest.raises(event_bus.InvalidArgumentError, match="UTF-8") as ei:
        event_bus.EventBusClient(service_name="tls", redis_url=srv.url, redis_tls={"ca": b"\xff\xfe"})
    assert ei.value.code == "INVALID_ARGUMENT"
