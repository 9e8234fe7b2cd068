"""A restarted tracker is not "not found": peers re-join at once, downloads wait for them."""

import os

import pytest
from napshare.common.exitcodes import ExitCode
from napshare.common.protocol import HEARTBEAT_INTERVAL, LEASE_INTERVALS
from napshare.peer.tracker_client import TrackerClient
from napshare.tracker.index import TrackerIndex
from napshare.tracker.server import create_server as create_tracker_server

from tests.support.downloads import Swarm
from tests.support.net import free_port
from tests.support.peers import run_peer, spawn_cli
from tests.support.trackers import InProcessTracker, start_in_process_tracker
from tests.support.waiting import wait_until

LONG_INTERVAL = 120.0  # heartbeats far apart: re-joining must not wait for the next one


def _restart(tracker: InProcessTracker, interval: float = LONG_INTERVAL) -> InProcessTracker:
    """Stop `tracker` and start a fresh, empty one on its port."""
    tracker.client.close()
    tracker.server.stop(None)
    return start_in_process_tracker(port=tracker.port, heartbeat_interval=interval)


def _stop(tracker: InProcessTracker) -> None:
    tracker.client.close()
    tracker.server.stop(None)


def test_a_serving_peer_rejoins_a_restarted_tracker_without_waiting_for_a_heartbeat(
    swarm: Swarm,
) -> None:
    first = start_in_process_tracker(port=free_port(), heartbeat_interval=LONG_INTERVAL)
    peer = swarm.spawn(swarm.share("a"), first.address)
    assert first.peers_with("aula1.mp4") == [peer.peer_id]

    second = _restart(first)
    try:
        # Far sooner than the 120 s heartbeat: the peer saw its channel come back.
        wait_until(lambda: second.peers_with("aula1.mp4") == [peer.peer_id], timeout=20)
    finally:
        _stop(second)


def test_a_download_started_before_the_peers_rejoined_waits_for_them(swarm: Swarm) -> None:
    plain = swarm.plain(swarm.folder("a"))
    folder, port = plain.folder, plain.port
    data = os.urandom(300_000)
    (folder.root / "small.bin").write_bytes(data)
    first = start_in_process_tracker(port=free_port())
    first.client.join("127.0.0.1", port, folder.scan())
    assert first.peers_with("small.bin") == [f"127.0.0.1:{port}"]

    second = _restart(first)
    target = swarm.folder("b")
    try:
        download = spawn_cli(
            "download", "--tracker", second.address, "--dir", str(target), "small.bin"
        )
        assert download.stderr is not None
        waiting = ""
        for line in download.stderr:  # napshare-peer's own notice: on stderr
            if "waiting up to 30 s for a peer that shares small.bin" in line:
                waiting = line
                break
        assert waiting, download.communicate(timeout=30)
        # Only now, with the download waiting, does the peer join the new tracker.
        rejoined = TrackerClient(second.address)
        rejoined.join("127.0.0.1", port, folder.scan())
        rejoined.close()
        out, err = download.communicate(timeout=60)
        assert download.returncode == 0, (out, err)
        assert (target / "small.bin").read_bytes() == data
    finally:
        _stop(second)


@pytest.mark.parametrize(
    ("lang", "waiting", "not_found"),
    [
        ("C.UTF-8", "waiting up to 1.5 s for a peer that shares", "no peer shares"),
        (
            "pt_BR.UTF-8",
            "esperando até 1.5 s por um peer que compartilhe",
            "nenhum peer compartilha",
        ),
    ],
)
def test_a_download_waits_a_bounded_time_then_is_not_found(
    swarm: Swarm, lang: str, waiting: str, not_found: str
) -> None:
    tracker = start_in_process_tracker()  # just started: gathering for the next 90 s
    try:
        download = spawn_cli(
            "download",
            "--tracker",
            tracker.address,
            "--dir",
            str(swarm.tmp),
            "--wait-for-peers",
            "1.5",
            "nobody.bin",
            lang=lang,
        )
        out, err = download.communicate(timeout=60)
        assert download.returncode == ExitCode.NOT_FOUND, (out, err)
        assert out == ""
        lines = err.splitlines()  # one line says it waits; no line per search
        assert len(lines) == 2, err
        assert lines[0].startswith("napshare-peer: ")
        assert lines[0].endswith(f"{waiting} nobody.bin")
        assert lines[1] == f"napshare-peer: {not_found} nobody.bin"
    finally:
        _stop(tracker)


def test_an_empty_search_says_when_the_tracker_is_gathering() -> None:
    now = [1000.0]
    index = TrackerIndex(clock=lambda: now[0])  # the test moves the tracker's clock
    server, port = create_tracker_server(index, host="127.0.0.1", port=0)
    address = f"127.0.0.1:{port}"
    try:
        early = run_peer("search", "nobody.bin", "--tracker", address)
        now[0] += LEASE_INTERVALS * HEARTBEAT_INTERVAL  # the gathering window is over
        late = run_peer("search", "nobody.bin", "--tracker", address)
    finally:
        server.stop(None)
    assert (early.returncode, late.returncode) == (ExitCode.OK, ExitCode.OK)
    assert early.stdout == late.stdout == "peers with requested file:\n"
    assert early.stderr == (
        "napshare-peer: the tracker started moments ago and its peers may still be joining\n"
    )
    assert late.stderr == ""
