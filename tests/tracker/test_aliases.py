"""Other spellings of a peer's address are not other peers: one address, one registration."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from napshare.common.identity import PEER_NAME, TRACKER_NAME, make_identity
from napshare.peer.errors import TrackerRejectedError
from napshare.peer.folder.store import SharedFile, SharedFolder
from napshare.peer.serving.server import create_server as create_peer
from napshare.peer.tracker_client import TrackerClient
from napshare.peer.transport import Transport
from napshare.tracker.server import create_server

BIG = SharedFile("big.bin", 1 << 20, hashlib.sha256(b"big").hexdigest(), 0)


@pytest.fixture
def tracker() -> Iterator[TrackerClient]:
    identity = make_identity(TRACKER_NAME)
    server, port = create_server(host="127.0.0.1", port=0, tls=identity)
    client = TrackerClient(
        f"127.0.0.1:{port}",
        transport=Transport(plaintext=False, tracker_cert=identity.certificate_pem),
    )
    yield client
    client.close()
    server.stop(None)


@pytest.fixture
def real_peer(tmp_path: Path) -> Iterator[tuple[int, object]]:
    """A peer serving TLS on every address of this machine (IPv4 and IPv6), its port and
    identity."""
    identity = make_identity(PEER_NAME)
    folder = tmp_path / "real"
    folder.mkdir()
    server, port = create_peer(SharedFolder(folder), host="::", tls=identity)
    yield port, identity
    server.stop(None)


@pytest.mark.parametrize("spelling", ["localhost", "0177.0.0.1", "127.1", "2130706433"])
def test_a_name_or_odd_spelling_of_an_address_is_refused(
    tracker: TrackerClient, real_peer: tuple[int, object], spelling: str
) -> None:
    port, identity = real_peer
    assert tracker.join("127.0.0.1", port, [BIG], identity=identity).reachable  # type: ignore[arg-type]
    with pytest.raises(TrackerRejectedError, match="not an IP address"):
        tracker.join(spelling, port, [BIG], identity=make_identity(PEER_NAME))
    assert [s.peer for s in tracker.search("big.bin")] == [f"127.0.0.1:{port}"]


@pytest.mark.parametrize("spelling", ["::ffff:127.0.0.1", "[::ffff:127.0.0.1]", "::1", "[::1]"])
def test_an_alias_of_a_reached_peer_is_not_another_listing(
    tracker: TrackerClient, real_peer: tuple[int, object], spelling: str
) -> None:
    port, identity = real_peer
    assert tracker.join("127.0.0.1", port, [BIG], identity=identity).reachable  # type: ignore[arg-type]
    # An IPv4-mapped spelling is the same peer id, held by the real peer; at ::1 the real
    # peer answers too, with its own certificate: either way the address is not the Join's.
    with pytest.raises(TrackerRejectedError, match=r"another identity|another certificate"):
        tracker.join(spelling, port, [BIG], identity=make_identity(PEER_NAME))
    assert [s.peer for s in tracker.search("big.bin")] == [f"127.0.0.1:{port}"]
