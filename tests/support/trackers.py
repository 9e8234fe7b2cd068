"""Trackers for the tests: in this process (InProcessTracker) or as a child process
(TrackerProcess, `python -m napshare.tracker`), and the FileInfos they are told about.
"""

import hashlib
import queue
import re
import signal
import subprocess
import threading
import time
from functools import cached_property
from pathlib import Path
from typing import IO

import grpc
import pytest
from napshare.peer.tracker_client import Source, TrackerClient
from napshare.tracker.index import TrackerIndex
from napshare.tracker.server import create_server
from napshare.v1 import file_info_pb2, tracker_pb2_grpc

from tests.support.processes import cli_env

LISTENING = re.compile(
    r"(?:napshare tracker listening on|tracker napshare escutando em) 127\.0\.0\.1:(\d+)"
)


def digest(name: str) -> str:
    """A stable, valid sha256 for a test file name."""
    return hashlib.sha256(name.encode()).hexdigest()


def file_info(name: str, size: int = 1000) -> file_info_pb2.FileInfo:
    """A FileInfo with a valid digest: the sha256 of its name."""
    return file_info_pb2.FileInfo(name=name, size=size, sha256=digest(name))


class InProcessTracker:
    """A tracker server in the test's process on 127.0.0.1, its index, and two clients made on
    first use: `client`, napshare's own TrackerClient, and `stub`, the generated stub.
    """

    def __init__(self, server: grpc.Server, port: int, index: TrackerIndex) -> None:
        self.server = server
        self.port = port
        self.index = index

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @cached_property
    def client(self) -> TrackerClient:
        return TrackerClient(self.address)

    @cached_property
    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address)

    @cached_property
    def stub(self) -> tracker_pb2_grpc.TrackerServiceStub:
        return tracker_pb2_grpc.TrackerServiceStub(self.channel)

    def peers_with(self, name: str) -> list[str]:
        return [s.peer for s in self.client.search(name)]

    def search(self, name: str) -> list[Source]:
        return self.client.search(name)

    def stop(self) -> None:
        """Close the clients made so far, then stop the server at once."""
        if "client" in self.__dict__:
            self.client.close()
        if "channel" in self.__dict__:
            self.channel.close()
        self.server.stop(None)


def start_in_process_tracker(
    index: TrackerIndex | None = None, *, port: int = 0, heartbeat_interval: float = 30.0
) -> InProcessTracker:
    """Start a tracker in this process on 127.0.0.1:`port` (0: a free one) around `index`, or
    around a new index with `heartbeat_interval`.
    """
    if index is None:
        index = TrackerIndex(heartbeat_interval)
    server, bound = create_server(index, host="127.0.0.1", port=port)
    return InProcessTracker(server, bound, index)


class TrackerProcess:
    """`python -m napshare.tracker` on a free loopback port, with its output lines collected."""

    def __init__(
        self, python: str, cwd: Path, *args: str, lang: str = "C.UTF-8", tls: bool = False
    ) -> None:
        """A plain text tracker, unless `tls`: then TLS with its own state folder in `cwd`."""
        security = ["--state-dir", str(cwd / "tracker-state")] if tls else ["--plaintext"]
        self.process = subprocess.Popen(
            [
                python,
                "-m",
                "napshare.tracker",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                *security,
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=cli_env(lang),
            cwd=cwd,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        threading.Thread(target=self._pump, args=(self.process.stdout,), daemon=True).start()
        threading.Thread(
            target=self.stderr.extend, args=(self.process.stderr,), daemon=True
        ).start()
        first = self.next_line(timeout=30)
        self.banner = first
        match = LISTENING.fullmatch(first)
        assert match, f"unexpected first line {first!r}; stderr: {self.stderr}"
        self.port = int(match.group(1))
        self.address = f"127.0.0.1:{self.port}"

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def next_line(self, timeout: float = 10.0) -> str:
        """The next line on stdout; fails the test if none comes in time."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no output line within {timeout} s; stderr: {self.stderr}")
        if line is None:
            pytest.fail(f"the tracker closed stdout; stderr: {self.stderr}")
        return line

    def wait_for(self, expected: str, timeout: float = 10.0) -> list[str]:
        """Read lines until `expected` appears; return the lines read before it."""
        deadline = time.monotonic() + timeout
        before: list[str] = []
        while (line := self.next_line(max(0.01, deadline - time.monotonic()))) != expected:
            before.append(line)
        return before

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send `sig` and return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """Kill the process if it still runs, and reap it."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
