"""A download chooses a path to each peer and says so: direct, local (behind the same NAT),
reverse (the peer dials back); one that no path reaches fails at once, exit 4; a dead one is
said at once and given up on when the tracker drops it. Real trackers, real peers, loopback.
"""

import hashlib
import os
import subprocess
import sys

import grpc
import pytest
from napshare.common.identity import PEER_NAME, make_identity
from napshare.peer.downloading.engine import Downloader, DownloadOptions
from napshare.peer.downloading.reporting import SilentReporter
from napshare.peer.errors import NoPeerReachableError
from napshare.peer.folder.store import SharedFile, SharedFolder
from napshare.peer.node import Node
from napshare.peer.reach.paths import Path
from napshare.v1 import file_info_pb2, tracker_pb2_grpc

from tests.support.net import free_port
from tests.support.reach import (
    ListenStream,
    natted_config,
    signed_join,
    start_reach_tracker,
)
from tests.support.waiting import wait_until

MIB = 1024 * 1024
DATA = os.urandom(6 * MIB + 123)
SHA = hashlib.sha256(DATA).hexdigest()


class Notes(SilentReporter):
    """A reporter that keeps the lines and the paths of the sources it was told."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.paths: list[dict[str, int]] = []

    def note(self, line: str) -> None:
        self.lines.append(line)

    def sources(self, count, paths=None) -> None:
        if paths:
            self.paths.append(dict(paths))


@pytest.fixture(params=["tls", "plaintext"])
def tracker(request):
    started = start_reach_tracker(tls=request.param == "tls")
    yield started
    started.server.stop(None)


def serving(tmp_path, tracker, **options) -> Node:
    folder = tmp_path / "serving"
    folder.mkdir()
    (folder / "data.bin").write_bytes(DATA)
    node = Node(
        natted_config(folder, tracker.address, tracker.transport(), **options), lambda *_: None
    )
    node.start()
    wait_until(lambda: node.link.peer_id)
    return node


def download(tmp_path, tracker, reporter, **options):
    folder = tmp_path / "downloading"
    folder.mkdir(exist_ok=True)
    client = tracker.client()
    downloader = Downloader(SharedFolder(folder), client)
    try:
        result = downloader.download("data.bin", DownloadOptions(**options), reporter)
    finally:
        downloader.close()
        client.close()
    return result, downloader.connections.snapshot(), folder / "data.bin"


def test_a_peer_behind_a_nat_is_reached_by_a_reverse_connection(tmp_path, tracker):
    node = serving(tmp_path, tracker)
    try:
        wait_until(lambda: node.reach.listening)
        peer = node.link.peer_id
        notes = Notes()
        result, connections, path = download(tmp_path, tracker, notes)
    finally:
        node.stop()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA == result.sha256
    assert f"peer {peer} is behind a NAT: reached through a reverse connection" in notes.lines
    assert connections[Path.REVERSE.value] >= 1
    assert connections[Path.DIRECT.value] == connections[Path.RELAY.value] == 0
    assert {"reverse": 1} in notes.paths
    assert node.dialled.snapshot()[Path.REVERSE.value] == connections[Path.REVERSE.value]


def test_peers_behind_one_nat_reach_each_other_at_their_local_addresses(tmp_path, tracker):
    node = serving(tmp_path, tracker, local_addresses=None)  # found: its bound address
    try:
        peer = node.link.peer_id
        notes = Notes()
        _, connections, path = download(tmp_path, tracker, notes)
    finally:
        node.stop()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA
    local = f"127.0.0.2:{node.port}"
    assert f"peer {peer} is on this network: reached at its local address {local}" in notes.lines
    assert connections[Path.LOCAL.value] >= 1
    assert connections[Path.REVERSE.value] == 0
    # Connect asked the listening peer to dial as well; that dial, if it came, was not used.
    assert node.dialled.snapshot()[Path.REVERSE.value] <= 1


def test_a_peer_no_path_reaches_fails_the_download_at_once(tmp_path):
    """A peer that listens at the tracker but never dials out (as behind a firewall that lets
    nothing out to the downloader) and a tracker with no relay: no path; exit 4, at once.
    """
    tracker = start_reach_tracker(tls=False)
    channel = grpc.insecure_channel(tracker.address)
    stub = tracker_pb2_grpc.TrackerServiceStub(channel)
    try:
        info = file_info_pb2.FileInfo(name="data.bin", size=len(DATA), sha256=SHA)
        reply = stub.Join(signed_join(make_identity(PEER_NAME), free_port(), info))
        stream = ListenStream(stub, reply.peer_id, reply.token)
        stream.next()  # started: it listens, and ignores every request
        done = subprocess.run(
            [sys.executable, "-m", "napshare.peer", "download", "--plaintext", "data.bin",
             "--dir", str(tmp_path), "--tracker", tracker.address, "--give-up-after", "600"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        stream.cancel()
    finally:
        channel.close()
        tracker.server.stop(None)
    # Within the subprocess's timeout, long before --give-up-after: at once.
    assert done.returncode == 4, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"napshare-peer: nobody could be reached for data.bin: {reply.peer_id}")
    # Its listed address is not dialled: the tracker could not reach it there, and the
    # tracker had a way to it (its stream), so that address is no last resort.
    assert "direct: " not in last
    for tried in ("reverse: no connection within 5 s", "relay: "):
        assert tried in last
    assert done.stderr.count("nobody could be reached") == 1


def test_a_dead_source_is_said_at_once_and_given_up_on_when_the_tracker_drops_it(tmp_path):
    tracker = start_reach_tracker(tls=False, heartbeat_interval=1.0)
    dead = free_port()
    try:
        client = tracker.client()
        client.join("127.0.0.1", dead, [SharedFile("data.bin", len(DATA), SHA, 0)])
        client.close()
        notes = Notes()
        with pytest.raises(NoPeerReachableError) as caught:
            download(tmp_path, tracker, notes, give_up_after=600)
    finally:
        tracker.server.stop(None)
    peer = f"127.0.0.1:{dead}"
    said = [line for line in notes.lines if line.startswith("no peer with data.bin can be reached")]
    assert len(said) == 1
    assert peer in said[0]
    assert "trying again until" in said[0]
    assert str(caught.value).startswith(
        "nobody could be reached for data.bin: the tracker no longer lists any peer that has it"
    )
    assert peer in str(caught.value)
