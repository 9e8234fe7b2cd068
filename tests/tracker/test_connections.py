"""A tracker with 1,024 open files and an attacker holding 1,100 silent connections from one
address: it closes them past its cap per address, keeps that address out, and answers
everyone else's health checks.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from napshare.common.tls import pinned_channel

from tests.support.flood import HalfOpenFlood

LISTENING = re.compile(r"napshare tracker listening on 127\.0\.0\.1:(\d+)")


def _few_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


@pytest.mark.serial  # a flood of connections
def test_health_answers_while_one_address_holds_1100_silent_connections(tmp_path: Path) -> None:
    env = {**os.environ, "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
    tracker = subprocess.Popen(
        [
            sys.executable,
            *("-m", "napshare.tracker", "--host", "127.0.0.1", "--port", "0"),
            *("--state-dir", str(tmp_path / "state"), "--no-relay"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_few_open_files,  # noqa: PLW1509 - a limit of the child only
    )
    try:
        assert tracker.stdout is not None
        match = LISTENING.match(tracker.stdout.readline())
        assert match, tracker.stderr.read() if tracker.stderr else ""
        port = int(match.group(1))
        cert = (tmp_path / "state" / "identity" / "cert.pem").read_bytes()
        with HalfOpenFlood(("127.0.0.1", port), "127.0.0.2", 1100) as flood:
            deadline = time.monotonic() + 20
            while flood.opened < 1100 and time.monotonic() < deadline:
                time.sleep(0.1)  # what the tracker took of them, before it closed the rest
            for _ in range(5):
                with pinned_channel(f"127.0.0.1:{port}", cert) as channel:
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=15, wait_for_ready=True
                    )
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
                time.sleep(1)
            assert len(flood.held) <= 128 + 16  # the cap per address, give or take a look
        assert tracker.poll() is None
    finally:
        tracker.terminate()
        try:
            tracker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            tracker.kill()
            tracker.wait()
