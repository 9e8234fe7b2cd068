"""Real Redis servers for the tests: one per test session on a unix socket, and clusters.

`make test` installs redis-server (Debian's package) when it is missing. Without it, tests
that need one are skipped with one line saying so, except under CI, where they fail.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.net import free_port

SERVER = "redis-server"
READY_SECONDS = 20.0
MISSING = "redis-server is not installed (make test installs Debian's redis-server package)"
VALKEY = Path(__file__).resolve().parents[2] / ".tools" / "valkey" / "valkey-server"
VALKEY_MISSING = f"{VALKEY} is missing (make valkey, which make test runs, puts it there)"


def require_server() -> str:
    """The path of redis-server; skips the test (fails it under CI) when there is none."""
    path = shutil.which(SERVER)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    return path


def require_valkey() -> str:
    """The path of valkey-server (make valkey); skips the test when there is none (make valkey
    said why: another machine than x86_64 Linux, or PyPI out of reach).
    """
    if not os.access(VALKEY, os.X_OK):
        pytest.skip(VALKEY_MISSING)
    return str(VALKEY)


class RedisServer:
    """A redis-server child process without persistence: on a unix socket in `folder`, and
    on TCP `port` too when one is given (a cluster's nodes need TCP).
    """

    def __init__(self, folder: Path, port: int = 0, *extra: str, binary: str = "") -> None:
        self.folder = folder
        self.binary = binary
        self.port = port
        self.socket = folder / "redis.sock"
        folder.mkdir(parents=True, exist_ok=True)
        self._extra = extra
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        """A URL for the unix socket, without a prefix."""
        return f"unix://{self.socket}"

    @property
    def tcp_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server (again, after stop() or kill()), empty, and wait until it answers."""
        command = [
            self.binary or require_server(),
            *("--port", str(self.port), "--bind", "127.0.0.1"),
            *("--unixsocket", str(self.socket), "--unixsocketperm", "700"),
            *("--save", "", "--appendonly", "no"),
            *("--dir", str(self.folder), "--logfile", str(self.folder / "redis.log")),
            *self._extra,
        ]
        # LC_ALL=C: the store's scripts need Lua to compare strings byte by byte.
        env = {**os.environ, "LC_ALL": "C"}
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + READY_SECONDS
        while True:
            try:
                with redis.Redis(unix_socket_path=str(self.socket)) as client:
                    client.ping()
                return
            except (redis.ConnectionError, FileNotFoundError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.folder / "redis.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"redis-server did not start: {log}") from None
                time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL the server: without persistence, everything it held is lost."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket))


_shared: RedisServer | None = None


def shared_server() -> RedisServer:
    """The test session's one Redis server (started on first use, stopped at exit)."""
    global _shared  # noqa: PLW0603 - one server per session, whichever conftest asks
    if _shared is None or _shared.process is None or _shared.process.poll() is not None:
        require_server()
        folder = Path(tempfile.mkdtemp(prefix="napshare-redis-"))
        _shared = RedisServer(folder)
        atexit.register(_shared.stop)
    return _shared


def store_url(server: RedisServer, **query: str) -> str:
    """A URL of `server` with a prefix no other test uses, so that tests never meet."""
    parts = {"prefix": f"t{uuid.uuid4().hex[:12]}", **query}
    return server.url + "?" + "&".join(f"{key}={value}" for key, value in parts.items())


class RedisCluster:
    """Three redis-server nodes on free TCP ports joined into a cluster (no replicas)."""

    def __init__(self, folder: Path, nodes: int = 3) -> None:
        self.servers: list[RedisServer] = []
        for number in range(nodes):
            node = folder / f"node{number}"
            port = free_port()
            cluster_flags = [
                *("--cluster-enabled", "yes"),
                *("--cluster-config-file", str(node / "nodes.conf")),
                *("--cluster-node-timeout", "5000"),
                *("--cluster-port", str(free_port())),  # else port + 10000, maybe taken
            ]
            self.servers.append(RedisServer(node, port, *cluster_flags))
        addresses = [f"127.0.0.1:{server.port}" for server in self.servers]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self._wait_ok()

    @property
    def url(self) -> str:
        return self.servers[0].tcp_url

    def _wait_ok(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            states = []
            for server in self.servers:
                with server.client() as client:
                    states.append(client.execute_command("CLUSTER", "INFO"))
            if all(b"cluster_state:ok" in state for state in states):
                return
            time.sleep(0.1)
        raise RuntimeError("the Redis cluster did not become ok")

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def started_cluster(folder: Path) -> Iterator[RedisCluster]:
    """A three-node cluster for one test (or module), stopped afterwards."""
    require_server()
    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli is not installed (it comes with Debian's redis-server package)")
    cluster = RedisCluster(folder)
    try:
        yield cluster
    finally:
        cluster.stop()
