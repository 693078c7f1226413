"""Shared fixtures: the shared Redis (REDIS_URL or 127.0.0.1:6379, never flushed or stopped),
unique names per test, and a private redis-server for fault tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "fixtures" / "vectors"


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def uid() -> str:
    return unique("py")


@pytest.fixture(params=["redis", "memory"])
def config(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A client config for each transport (the memory broker is unique per test)."""
    url = REDIS_URL if request.param == "redis" else f"memory://{unique('mem')}"
    return {"serviceName": "pytest", "redis": {"url": url}, "logLevel": "warn"}


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


class RedisServer:
    """A private redis-server on a free port (binary: $REDIS_SERVER or redis-server)."""

    def __init__(self) -> None:
        self.binary = os.environ.get("REDIS_SERVER", "redis-server")
        self.port = free_port()
        self.proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if shutil.which(os.environ.get("REDIS_SERVER", "redis-server")) is None:
        pytest.skip("redis-server not installed")
    srv = RedisServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.kill()
