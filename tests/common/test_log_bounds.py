"""A flood of bad requests is not a flood of log lines: stderr stays bounded in lines and size.

Before, a serving peer run with --log-level info logged one line for each Download it
refused, so 5,000 bad requests wrote 5,000 lines (at its default level, warning, it logs
none of them); the tracker logs nothing for bad requests at INFO, and is tested anyway.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from napshare.common.linelimit import LOG_LINES, LOG_WINDOW_SECONDS, MAX_LINE_CHARS
from napshare.v1 import peer_pb2, tracker_pb2

BAD_REQUESTS = 5000
BATCH = 500
KINDS = 3  # kinds of line the bad requests may cause (the peer has two "not serving" lines)
STARTING_LINES = 10  # what a process logs as it starts and stops


class Process:
    """A napshare command line on loopback, its stdout's first line and all of its stderr."""

    def __init__(self, *args: str, cwd: Path) -> None:
        env = {**os.environ, "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
        env.pop("LANGUAGE", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=cwd,
        )
        assert self.process.stdout is not None
        self.first = self.process.stdout.readline().strip()
        self.stderr: list[str] = []
        threading.Thread(
            target=self.stderr.extend, args=(self.process.stderr,), daemon=True
        ).start()
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        self.address = self.first.rsplit(" ", 1)[-1]
        assert self.address.startswith("127.0.0.1:"), (self.first, self.stderr)

    def stop(self) -> list[str]:
        """Stop it with SIGTERM and return every line it wrote on stderr."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        return self.stderr


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Process, Process]]:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "real.txt").write_bytes(b"real")
    tracker = Process("napshare.tracker", "--host", "127.0.0.1", "--port", "0", cwd=tmp_path)
    peer = Process(
        "napshare.peer",
        "serve",
        "--no-menu",
        "--dir",
        str(tmp_path / "shared"),
        "--tracker",
        tracker.address,
        "--host",
        "127.0.0.1",
        "--log-level",
        "info",
        cwd=tmp_path,
    )
    yield tracker, peer
    for process in (peer, tracker):
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait(timeout=30)


def assert_bounded(lines: list[str], seconds: float) -> None:
    """At most LOG_LINES of each kind per window (and one line saying how many were left out)."""
    windows = int(seconds // LOG_WINDOW_SECONDS) + 2
    bound = STARTING_LINES + KINDS * windows * (LOG_LINES + 1)
    assert len(lines) <= bound, "".join(lines[:30])
    assert all(len(line) <= MAX_LINE_CHARS + 100 for line in lines)  # + time, level, logger


def bad_tracker_requests(address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        calls = {
            "Join": b"\xff",
            "Heartbeat": tracker_pb2.HeartbeatRequest(
                peer_id="127.0.0.1:1", token="x"
            ).SerializeToString(),
            "Search": tracker_pb2.SearchRequest(name="../x" * 50).SerializeToString(),
        }
        methods = [
            (channel.unary_unary(f"/napshare.v1.TrackerService/{method}"), data)
            for method, data in calls.items()
        ]
        for start in range(0, BAD_REQUESTS, BATCH):
            futures = [
                methods[n % len(methods)][0].future(methods[n % len(methods)][1], timeout=60)
                for n in range(start, start + BATCH)
            ]
            for future in futures:
                assert future.code() != grpc.StatusCode.OK


def bad_downloads(address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        download = channel.unary_stream("/napshare.v1.PeerService/Download")
        requests = [
            peer_pb2.DownloadRequest(name="missing.bin").SerializeToString(),
            peer_pb2.DownloadRequest(name="real.txt", offset=-1).SerializeToString(),
            peer_pb2.DownloadRequest(name="x" * 200, sha256="nothex").SerializeToString(),
            b"\xff",
        ]
        for start in range(0, BAD_REQUESTS, BATCH):
            streams = [
                download(requests[n % len(requests)], timeout=60)
                for n in range(start, start + BATCH)
            ]
            for stream in streams:
                with pytest.raises(grpc.RpcError):
                    list(stream)


def test_bad_requests_leave_the_tracker_and_the_peer_logs_bounded(
    servers: tuple[Process, Process],
) -> None:
    tracker, peer = servers
    began = time.monotonic()
    bad_tracker_requests(tracker.address)
    bad_downloads(peer.address)
    seconds = time.monotonic() - began  # how many windows the lines may spread over

    assert_bounded(peer.stop(), seconds)
    assert_bounded(tracker.stop(), seconds)
