"""A serving peer with 1,024 open files and an attacker holding 1,100 silent connections from
one address: the peer closes them past its cap per address, and a download from elsewhere
still gets the file.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from napshare.common.identity import TRACKER_NAME, make_identity
from napshare.tracker.server import create_server

from tests.support.flood import HalfOpenFlood
from tests.support.peers import I_AM, ROOT, run_peer
from tests.support.processes import cli_env
from tests.support.waiting import wait_until


def _few_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


@pytest.mark.serial  # a flood of connections
def test_a_download_gets_the_file_while_one_address_holds_1100_silent_connections(
    tmp_path: Path,
) -> None:
    identity = make_identity(TRACKER_NAME)
    server, port = create_server(host="127.0.0.1", port=0, tls=identity)
    cert = tmp_path / "tracker.pem"
    cert.write_bytes(identity.certificate_pem)
    shared = tmp_path / "shared"
    shared.mkdir()
    data = bytes(range(256)) * 4096  # 1 MiB
    (shared / "lecture.bin").write_bytes(data)
    tracker = ("--tracker", f"127.0.0.1:{port}", "--tracker-cert", str(cert))
    peer = subprocess.Popen(
        [
            sys.executable,
            *("-m", "napshare.peer", "serve", "--no-menu", "--dir", str(shared)),
            *tracker,
            *("--host", "127.0.0.1"),
        ],
        cwd=ROOT,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_few_open_files,  # noqa: PLW1509 - a limit of the child only
    )
    stderr: list[str] = []
    assert peer.stderr is not None
    threading.Thread(target=stderr.extend, args=(peer.stderr,), daemon=True).start()
    try:
        assert peer.stdout is not None
        for line in peer.stdout:
            found = I_AM.search(line)
            if found:
                break
        else:
            pytest.fail(f"the peer never joined: {stderr}")
        peer_port = int(found.group(1).rpartition(":")[2])
        target = tmp_path / "target"
        target.mkdir()
        with HalfOpenFlood(("127.0.0.1", peer_port), "127.0.0.2", 1100) as flood:
            deadline = time.monotonic() + 20
            while flood.opened < 1100 and time.monotonic() < deadline:
                time.sleep(0.1)  # what the peer took of them, before it closed the rest
            done = run_peer(
                "download", "lecture.bin", "--dir", str(target), *tracker, tls=True, timeout=120
            )
            assert done.returncode == 0, done.stderr
            assert (target / "lecture.bin").read_bytes() == data
            # The cap per address, once it has looked (every 0.25 s) and the flood has seen
            # what it closed: a liveness bound, not a timing target.
            wait_until(lambda: len(flood.held) <= 16 + 8, timeout=30)
        assert peer.poll() is None, stderr
    finally:
        peer.terminate()
        try:
            peer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            peer.kill()
            peer.wait()
        server.stop(None)
