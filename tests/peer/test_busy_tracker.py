"""`serve` and a busy tracker ("come back in N s"): it waits, says so once, and joins."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from napshare.common.identity import PEER_NAME, TRACKER_NAME, make_identity
from napshare.peer.errors import ClientError, TrackerBusyError
from napshare.peer.tracker_client import TrackerClient
from napshare.peer.transport import Transport
from napshare.tracker.server import create_server

ROOT = Path(__file__).resolve().parents[2]


def _lines(stream: object, into: queue.Queue[str], kept: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        kept.append(line)
        into.put(line)


@pytest.mark.serial  # a flood of Joins keeps the checks busy while serve starts
def test_serve_waits_out_busy_address_checks_and_joins(tmp_path: Path) -> None:
    identity = make_identity(TRACKER_NAME)
    server, port = create_server(host="127.0.0.1", port=0, tls=identity)
    cert = tmp_path / "tracker.pem"
    cert.write_bytes(identity.certificate_pem)
    tarpit = socket.create_server(("127.0.0.1", 0), backlog=512)  # accepts, never answers
    stop = threading.Event()
    busy = threading.Event()

    def flood() -> None:
        # Joins from this machine (127.0.0.1, as serve's) that claim the tarpit keep the
        # checks of its network busy.
        client = TrackerClient(
            f"127.0.0.1:{port}",
            transport=Transport(plaintext=False, tracker_cert=identity.certificate_pem),
        )
        try:
            while not stop.is_set():
                try:
                    client.join(
                        "127.0.0.1", tarpit.getsockname()[1], [], identity=make_identity(PEER_NAME)
                    )
                except TrackerBusyError:
                    busy.set()
                    stop.wait(0.005)
                except ClientError:
                    pass  # taken by an earlier identity of the flood
        finally:
            client.close()

    floods = [threading.Thread(target=flood) for _ in range(4)]
    for thread in floods:
        thread.start()
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    process = None
    try:
        assert busy.wait(30), "the flood never kept the checks busy"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
        env.update(LANG="C.UTF-8", PYTHONUNBUFFERED="1")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "napshare.peer",
                "serve",
                "--no-menu",
                *("--dir", str(folder)),
                *("--tracker", f"127.0.0.1:{port}", "--tracker-cert", str(cert)),
                *("--host", "127.0.0.1"),
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out: queue.Queue[str] = queue.Queue()
        err: queue.Queue[str] = queue.Queue()
        stdout: list[str] = []
        stderr: list[str] = []
        threading.Thread(target=_lines, args=(process.stdout, out, stdout), daemon=True).start()
        threading.Thread(target=_lines, args=(process.stderr, err, stderr), daemon=True).start()
        deadline = time.monotonic() + 30
        while not any("is busy" in line for line in stderr):
            assert process.poll() is None, f"serve gave up: {stderr}"
            assert time.monotonic() < deadline, f"serve never said the tracker is busy: {stderr}"
            time.sleep(0.05)
        time.sleep(4)  # it keeps waiting, quietly, while the checks stay busy
        assert process.poll() is None, f"serve gave up: {stderr}"
        stop.set()
        deadline = time.monotonic() + 60
        while not any("I am peer" in line for line in stdout):
            assert process.poll() is None, f"serve gave up: {stderr}"
            assert time.monotonic() < deadline, f"serve never joined: {stdout} {stderr}"
            time.sleep(0.05)
        busy_lines = [line for line in stderr if "is busy" in line]
        assert len(busy_lines) == 1, busy_lines
        assert "joining again in 3 s" in busy_lines[0]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        stop.set()
        for thread in floods:
            thread.join()
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        tarpit.close()
        server.stop(None)
