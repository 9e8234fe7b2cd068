"""A hostile tracker cannot hold a download: a hundred thousand fake peers are given up after
--give-up-after, SIGTERM stops the download at once, and endless pages end with the search's
time. The tracker is a real gRPC server answering as an attacker would
(tests.support.hostile_tracker); the downloads are `python -m napshare.peer` processes.
"""

import hashlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from napshare.common.exitcodes import ExitCode
from napshare.peer.tracker_client import MAX_PAGES
from napshare.v1 import file_info_pb2

from tests.support.files import ROOT
from tests.support.hostile_tracker import HostileTracker
from tests.support.processes import cli_env

FAKE_PEERS = 100_000
NAME = "big.bin"
BIG = file_info_pb2.FileInfo(
    name=NAME,
    size=64 << 20,
    sha256=hashlib.sha256(b"made up").hexdigest(),
    pieces_root=hashlib.sha256(b"made up root").hexdigest(),
)


@pytest.fixture
def crowd() -> Iterator[HostileTracker]:
    """A tracker listing FAKE_PEERS peers of big.bin, none of which exists."""
    tracker = HostileTracker(BIG, peers=FAKE_PEERS)
    yield tracker
    tracker.stop()


def start_download(tracker: HostileTracker, folder: Path, *extra: str) -> subprocess.Popen[str]:
    folder.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "napshare.peer", "download", "--plaintext", NAME,
         "--dir", str(folder), "--tracker", tracker.address, *extra],
        cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(process: subprocess.Popen[str], timeout: float) -> tuple[int, str]:
    """Its exit status and stderr once it ends; fails the test if it does not within
    `timeout` seconds (it is killed then).
    """
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        pytest.fail(f"still running after {timeout} s; stderr: {err[-2000:]}")
    return process.returncode, err


def test_a_hundred_thousand_fake_peers_are_given_up_after_give_up_after(crowd, tmp_path):
    download = start_download(crowd, tmp_path / "b", "--give-up-after", "3")

    # Before the fix, sorting the peers alone took quadratic time: many minutes.
    code, err = finish(download, timeout=120)

    assert code == ExitCode.NO_PEER_REACHABLE, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"napshare-peer: gave up on {NAME}:"), last
    assert "more)" in last  # the peers are counted, not all listed
    assert len(err.splitlines()) < 40, err[-3000:]  # a few failures by name, not thousands


@pytest.mark.serial  # a signal, answered within a bound that a loaded machine moves
def test_sigterm_stops_a_download_from_a_hundred_thousand_fake_peers(crowd, tmp_path):
    download = start_download(crowd, tmp_path / "b", "--give-up-after", "600")
    deadline = time.monotonic() + 60
    while crowd.pages < FAKE_PEERS // 1000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert crowd.pages == FAKE_PEERS // 1000, "the download did not fetch every page"
    time.sleep(1.0)  # busy with the fake peers now

    download.send_signal(signal.SIGTERM)
    code, err = finish(download, timeout=10)

    assert code == ExitCode.INTERRUPTED, err
    assert err.strip().splitlines()[-1] == (
        f"napshare-peer: download of {NAME} interrupted; run the same command again to resume it"
    )


def test_endless_empty_pages_end_with_the_searchs_time(tmp_path):
    endless = HostileTracker(BIG, endless=True, page_delay=0.1)
    try:
        download = start_download(endless, tmp_path / "b", "--give-up-after", "2")
        code, err = finish(download, timeout=60)
    finally:
        endless.stop()

    assert code == ExitCode.NOT_FOUND, err
    assert "before the search's time ran out" in err.strip().splitlines()[-1]
    assert endless.pages < MAX_PAGES  # stopped by the time, not by the page cap


@pytest.mark.serial  # a signal, answered within a bound that a loaded machine moves
def test_sigterm_stops_a_download_waiting_for_a_fake_peer_to_dial_back(tmp_path):
    # Every fake peer is behind a NAT, the tracker says it dials back (it never does) and
    # names a relay that never answers: each path to it is a wait of seconds.
    stalling = HostileTracker(BIG, peers=1_000, stalling=True)
    try:
        download = start_download(stalling, tmp_path / "b", "--give-up-after", "600")
        deadline = time.monotonic() + 60
        while stalling.connects < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stalling.connects >= 1, "the download asked the tracker for no path"
        time.sleep(1.0)  # waiting for the dial-back now

        download.send_signal(signal.SIGTERM)
        # Before the fix: 8 to 13 s, the rest of the dial-back's wait and the relay's.
        code, err = finish(download, timeout=4)
    finally:
        stalling.stop()

    assert code == ExitCode.INTERRUPTED, err
    assert err.strip().splitlines()[-1] == (
        f"napshare-peer: download of {NAME} interrupted; run the same command again to resume it"
    )
