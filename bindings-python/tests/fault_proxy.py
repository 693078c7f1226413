"""The fault proxy (tests/fault-proxy, binary ``fault-proxy``) and a private redis-server behind
it, for the fault tests. The binary is built with ``cargo build -p event-bus-fault-proxy`` the
first time it is missing (``CARGO_TARGET_DIR`` honoured; ``FAULT_PROXY_BIN`` points at a built
one). Its control port takes one command a line and answers one line, ``ok ...`` or
``err <reason>``: ``latency 50 20``, ``blackhole :sub``, ``reset <service>:pub 40000``,
``refuse 3000``, ``heal``, ``conns`` (see tests/fault-proxy/src/lib.rs, ``FaultProxy::command``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Optional

from conftest import ROOT, RedisServer


def proxy_binary() -> str:
    """The path of the fault-proxy binary, built once if missing."""
    given = os.environ.get("FAULT_PROXY_BIN")
    if given:
        return given
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not target.is_absolute():
        target = ROOT / target
    binary = target / "debug" / "fault-proxy"
    if not binary.exists():
        cargo = os.environ.get("CARGO", "cargo")
        r = subprocess.run([cargo, "build", "-p", "event-bus-fault-proxy"], cwd=ROOT)
        if r.returncode != 0:
            raise RuntimeError(f"cargo build -p event-bus-fault-proxy failed ({r.returncode})")
    return str(binary)


class FaultProxy:
    """The proxy process in front of 127.0.0.1:``upstream_port``; ``url`` goes through it."""

    def __init__(self, upstream_port: int) -> None:
        self.proc = subprocess.Popen(
            [proxy_binary(), "--upstream", f"127.0.0.1:{upstream_port}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fault-proxy exited ({self.proc.wait()}) before listening")
        ports = json.loads(line)
        self.port: int = ports["listen"]
        self.url = f"redis://127.0.0.1:{self.port}"
        self._ctl = socket.create_connection(("127.0.0.1", ports["control"]), timeout=10)
        self._replies = self._ctl.makefile("r", encoding="utf-8")

    def command(self, line: str) -> str:
        """Send one control command; returns its reply line."""
        self._ctl.sendall(f"{line}\n".encode())
        return self._replies.readline().strip()

    def must(self, line: str) -> str:
        """``command``, raising on an ``err`` reply."""
        r = self.command(line)
        if not r.startswith("ok"):
            raise RuntimeError(f"fault proxy: {line}: {r}")
        return r

    def conns(self) -> list[dict[str, Any]]:
        """The proxied connections now open: ``{id, name, toServer, toClient, blackholed}``."""
        out: list[dict[str, Any]] = json.loads(self.must("conns")[3:])
        return out

    def stop(self) -> None:
        self._replies.close()
        self._ctl.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()


class PrivateRedis(RedisServer):
    """A private redis-server that may be restarted on its port with other arguments."""

    def __init__(self, args: Optional[list[str]] = None) -> None:
        super().__init__()
        self.args = args or []

    def start_with(self, args: Optional[list[str]] = None) -> None:
        if args is not None:
            self.args = args
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", *self.args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.binary} exited with status {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(64):  # +PONG, or -NOAUTH with a password: up either way
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def restart(self, args: Optional[list[str]] = None) -> None:
        self.kill()
        self.start_with(args)

    def admin(self, password: Optional[str] = None) -> Any:
        """A redis-py connection to the server (close it after use)."""
        import redis

        return redis.Redis(port=self.port, password=password, decode_responses=True)
