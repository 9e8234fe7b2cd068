"""The relay path on loopback: a downloader whose reverse connections cannot arrive (its
listener is where the peer's dial does not go) reaches a peer the tracker cannot reach through
the tracker's relay, verified; a file larger than the relay's byte cap completes by resuming.
"""

import functools
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from napshare.common.identity import TRACKER_NAME, make_identity
from napshare.common.relay_wire import sign_ticket
from napshare.peer.downloading.engine import Downloader, DownloadOptions
from napshare.peer.folder.store import SharedFolder
from napshare.peer.node import Node
from napshare.peer.reach.paths import Path
from napshare.v1 import relay_pb2

from tests.support.reach import natted_config, start_reach_tracker
from tests.support.waiting import wait_until

relay_server = pytest.importorskip("napshare.relay.server", reason="the relay is not merged yet")
relay_caps = pytest.importorskip("napshare.relay.caps")

MIB = 1024 * 1024
DATA = os.urandom(6 * MIB + 321)
# The peer dials the address the tracker saw (127.0.0.1); a downloader listening only on
# 127.0.0.3 never gets the dial, as one behind a NAT never does.
UNDIALLABLE = "127.0.0.3"


@dataclass(frozen=True)
class Offer:
    address: str
    sign: Callable[[relay_pb2.RelayTicket], bytes]


@pytest.fixture
def relayed(tmp_path):
    """relayed(**caps): a TLS tracker with its own relay (those caps), and a peer it cannot
    reach sharing DATA; all stopped after the test.
    """
    started = []

    def start(**caps):
        identity = make_identity(TRACKER_NAME, ["127.0.0.1"])
        limits = relay_caps.RelayCaps(**caps)
        relay, port = relay_server.create_relay("127.0.0.1", 0, [identity.certificate_der], limits)
        offer = Offer(f":{port}", functools.partial(sign_ticket, identity))
        tracker = start_reach_tracker(tls=True, identity=identity, relay=offer)
        folder = tmp_path / "serving"
        folder.mkdir()
        (folder / "data.bin").write_bytes(DATA)
        node = Node(natted_config(folder, tracker.address, tracker.transport()), lambda *_: None)
        started.append((relay, tracker, node))
        node.start()
        wait_until(lambda: node.reach.listening)
        return tracker, node, port

    yield start
    for relay, tracker, node in started:
        node.stop()
        tracker.server.stop(None)
        relay.stop()


class Notes:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def begin(self, *_): ...
    def advance(self, _count): ...
    def restart(self, _have): ...
    def sources(self, *_): ...
    def end(self): ...

    def note(self, line: str) -> None:
        self.lines.append(line)


def relayed_download(tmp_path, tracker, notes):
    folder = tmp_path / "downloading"
    folder.mkdir()
    client = tracker.client()
    downloader = Downloader(SharedFolder(folder), client)
    downloader.reverse_host = UNDIALLABLE
    try:
        result = downloader.download("data.bin", DownloadOptions(give_up_after=60), notes)
    finally:
        downloader.close()
        client.close()
    return result, downloader.connections.snapshot(), folder / "data.bin"


def test_a_downloader_that_cannot_be_dialled_reaches_the_peer_through_the_relay(tmp_path, relayed):
    tracker, node, port = relayed()
    peer = node.link.peer_id
    notes = Notes()
    result, connections, path = relayed_download(tmp_path, tracker, notes)
    assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(DATA).digest()
    assert result.size == len(DATA)
    line = f"peer {peer} is behind a NAT: reached through the relay at 127.0.0.1:{port}"
    assert line in notes.lines
    assert connections[Path.RELAY.value] >= 1
    assert connections[Path.REVERSE.value] == connections[Path.DIRECT.value] == 0
    wait_until(lambda: node.dialled.snapshot()[Path.RELAY.value] >= connections["relay"])


def test_a_file_larger_than_the_relays_byte_cap_completes_by_resuming(tmp_path, relayed):
    tracker, _node, _port = relayed(session_bytes=2 * MIB)
    _, connections, path = relayed_download(tmp_path, tracker, Notes())
    assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(DATA).digest()
    # Each session carries at most 2 MiB of the file's 6 MiB: several sessions carried it.
    assert connections[Path.RELAY.value] >= 3
