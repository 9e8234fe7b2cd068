"""Fixtures for the tracker's tests: in-process servers on port 0, tracker processes, files."""

import hashlib
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import grpc
import pytest
from napshare.tracker.index import TrackerIndex
from napshare.tracker.server import create_server
from napshare.v1 import file_info_pb2, tracker_pb2_grpc

LISTENING = re.compile(
    r"(?:napshare tracker listening on|tracker napshare escutando em) 127\.0\.0\.1:(\d+)"
)


def digest(name: str) -> str:
    """A stable, valid sha256 for a test file name."""
    return hashlib.sha256(name.encode()).hexdigest()


def info(name: str, size: int = 1000) -> file_info_pb2.FileInfo:
    """A FileInfo with a valid digest."""
    return file_info_pb2.FileInfo(name=name, size=size, sha256=digest(name))


@pytest.fixture(name="info")
def info_fixture() -> Callable[..., file_info_pb2.FileInfo]:
    """info(name, size=1000): a FileInfo whose sha256 is the digest of its name."""
    return info


@dataclass
class Tracker:
    """An in-process tracker on a free loopback port, with a client stub and its index."""

    index: TrackerIndex
    port: int
    stub: tracker_pb2_grpc.TrackerServiceStub
    address: str


@pytest.fixture
def make_tracker() -> Iterator[Callable[..., Tracker]]:
    """Start trackers around given indexes; all are stopped at the end of the test."""
    servers: list[grpc.Server] = []
    channels: list[grpc.Channel] = []

    def start(index: TrackerIndex | None = None) -> Tracker:
        index = index or TrackerIndex()
        server, port = create_server(index, host="127.0.0.1", port=0)
        servers.append(server)
        address = f"127.0.0.1:{port}"
        channel = grpc.insecure_channel(address)
        channels.append(channel)
        return Tracker(index, port, tracker_pb2_grpc.TrackerServiceStub(channel), address)

    yield start
    for channel in channels:
        channel.close()
    for server in servers:
        server.stop(None)


@pytest.fixture
def tracker(make_tracker: Callable[..., Tracker]) -> Tracker:
    """A tracker with the default 30 s heartbeat interval."""
    return make_tracker()


def console_env(lang: str) -> dict[str, str]:
    """The environment with only LANG choosing the language of console lines."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")
    }
    env["LANG"] = lang
    env["PYTHONUNBUFFERED"] = "1"
    return env


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
            env=console_env(lang),
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


@pytest.fixture
def start_tracker(python: str, tmp_path: Path) -> Iterator[Callable[..., TrackerProcess]]:
    """Start tracker processes; any still running at the end of the test is killed."""
    started: list[TrackerProcess] = []

    def start(*args: str, lang: str = "C.UTF-8", tls: bool = False) -> TrackerProcess:
        process = TrackerProcess(python, tmp_path, *args, lang=lang, tls=tls)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait(timeout=10)
