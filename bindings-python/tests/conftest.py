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

    def start(self, tls: Optional["TlsFiles"] = None) -> None:
        """Start plain, or TLS-only with `tls`'s server certificate (clients show none)."""
        listen = ["--port", str(self.port)]
        if tls is not None:
            listen = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(tls.cert)]
            listen += ["--tls-key-file", str(tls.key), "--tls-ca-cert-file", str(tls.ca)]
            listen += ["--tls-auth-clients", "no"]
        self.proc = subprocess.Popen(
            [self.binary, *listen, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                built = " (is it built with TLS?)" if tls is not None else ""
                raise RuntimeError(f"{self.binary} exited with status {code}{built}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as c:
                    if tls is not None:
                        return  # listening; the client under test does the handshake
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


class TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1, made with the openssl CLI."""

    def __init__(self, tmp: Path, san: str = "IP:127.0.0.1, DNS:localhost", days: str = "2") -> None:
        """`san`: the server certificate's subjectAltName; `days`: its validity (-1: expired)."""
        self.ca, self.cert, self.key = tmp / "ca.crt", tmp / "server.crt", tmp / "server.key"
        ext = tmp / "server.ext"
        ext.write_text(
            "basicConstraints = critical, CA:FALSE\n"
            "keyUsage = critical, digitalSignature, keyEncipherment\n"
            "extendedKeyUsage = serverAuth\n"
            f"subjectAltName = {san}\n"
        )
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        self._openssl("req", "-x509", "-nodes", "-days", "2", "-sha256", *ec, "-keyout", tmp / "ca.key",
                      "-out", self.ca, "-subj", f"/CN=event-bus test CA {unique('ca')}",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self._openssl("req", "-new", "-nodes", "-sha256", *ec, "-keyout", self.key,
                      "-out", tmp / "server.csr", "-subj", "/CN=127.0.0.1")
        self._openssl("x509", "-req", "-days", days, "-sha256", "-in", tmp / "server.csr", "-CA", self.ca,
                      "-CAkey", tmp / "ca.key", "-CAcreateserial", "-out", self.cert, "-extfile", ext)

    @staticmethod
    def _openssl(*args: Any) -> None:
        # Not skipped when openssl is missing: the README's test command installs it.
        r = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"openssl {args[0]} failed: {r.stderr.strip()}")


@pytest.fixture
def tls_redis_server(tmp_path: Path) -> Iterator[tuple[RedisServer, TlsFiles]]:
    """A private TLS-only redis-server and the files of its throwaway CA."""
    files = TlsFiles(tmp_path)
    srv = RedisServer()
    srv.start(tls=files)
    try:
        yield srv, files
    finally:
        srv.kill()


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
