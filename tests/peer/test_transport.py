"""A peer's identity lives only in a `.napshare/` folder of its own, never through a symlink;
the tracker it trusts on first use has one pin, however its address is spelled.
"""

import json
from pathlib import Path

import pytest
from napshare.common.identity import PEER_NAME, TRACKER_NAME, make_identity
from napshare.peer.errors import IdentityFilesError, TrackerIdentityError
from napshare.peer.folder.layout import IDENTITY_DIR, KNOWN_TRACKERS_FILE, STATE_DIR
from napshare.peer.tracker_client import TrackerClient
from napshare.peer.transport import (
    Transport,
    peer_identity,
    pinned_fingerprint,
    tracker_certificate,
)
from napshare.tracker.server import create_server as create_tracker

fingerprint_of = pinned_fingerprint


def _planted(tmp_path: Path) -> Path:
    """A folder elsewhere holding an identity someone else made (and holds the key of)."""
    elsewhere = tmp_path / "elsewhere"
    identity = elsewhere / IDENTITY_DIR
    identity.mkdir(parents=True)
    planted = make_identity(PEER_NAME)
    (identity / "key.pem").write_bytes(planted.key_pem)
    (identity / "cert.pem").write_bytes(planted.certificate_pem)
    return elsewhere


def test_a_symlinked_state_folder_is_refused_and_nothing_is_written_through_it(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    empty = tmp_path / "empty"
    empty.mkdir()
    (shared / STATE_DIR).symlink_to(empty)

    with pytest.raises(IdentityFilesError, match="symlink"):
        peer_identity(shared)

    assert list(empty.iterdir()) == []


def test_an_identity_planted_behind_a_symlinked_state_folder_is_not_adopted(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / STATE_DIR).symlink_to(_planted(tmp_path))

    with pytest.raises(IdentityFilesError, match="symlink"):
        peer_identity(shared)


def test_a_symlinked_identity_folder_is_refused(tmp_path):
    shared = tmp_path / "shared"
    (shared / STATE_DIR).mkdir(parents=True)
    (shared / STATE_DIR / IDENTITY_DIR).symlink_to(_planted(tmp_path) / IDENTITY_DIR)

    with pytest.raises(IdentityFilesError, match="symlink"):
        peer_identity(shared)


def test_the_identity_is_made_once_and_kept(tmp_path):
    first = peer_identity(tmp_path)
    again = peer_identity(tmp_path)

    assert first.fingerprint == again.fingerprint
    assert (tmp_path / STATE_DIR / IDENTITY_DIR / "cert.pem").read_bytes() == first.certificate_pem


# -- trust on first use: one tracker, one pin ---------------------------------------------


@pytest.fixture
def tls_servers():
    """start(host, port=0): a TLS tracker with an identity of its own; its port and identity."""
    servers = []

    def start(host: str, port: int = 0):
        identity = make_identity(TRACKER_NAME)
        server, bound = create_tracker(host=host, port=port, tls=identity)
        servers.append(server)
        return bound, identity

    yield start
    for server in servers:
        server.stop(None)


def _trusting(tmp_path: Path) -> Transport:
    return Transport(plaintext=False, known_trackers=tmp_path / KNOWN_TRACKERS_FILE)


def test_another_spelling_of_a_pinned_trackers_address_finds_its_pin(tmp_path, tls_servers):
    port, real = tls_servers("127.0.0.1")
    _, impostor = tls_servers("::1", port)  # the same port, on this machine's other loopback
    transport = _trusting(tmp_path)
    assert fingerprint_of(tracker_certificate(transport, f"127.0.0.1:{port}")) == real.fingerprint
    with pytest.raises(TrackerIdentityError, match="TRACKER CERTIFICATE CHANGED"):
        tracker_certificate(transport, f"[::1]:{port}")
    assert impostor.fingerprint not in (tmp_path / KNOWN_TRACKERS_FILE).read_text()
    known = json.loads((tmp_path / KNOWN_TRACKERS_FILE).read_text())
    assert known == {f"localhost:{port}": real.fingerprint}


def test_replicas_named_together_share_the_pin_of_the_first_that_answers(tmp_path, tls_servers):
    a, real = tls_servers("127.0.0.1")
    b, impostor = tls_servers("127.0.0.1")  # not the same identity: not a replica of a
    transport = _trusting(tmp_path)
    together = TrackerClient(f"127.0.0.1:{a},127.0.0.1:{b}", transport=transport)
    alone = TrackerClient(f"127.0.0.1:{b}", transport=transport)
    try:
        assert together.find(name="x.mp4").sources == []  # pins a's, for b as well
        assert together.tracker_identity == real.fingerprint
        with pytest.raises(TrackerIdentityError, match="TRACKER CERTIFICATE CHANGED"):
            alone.find(name="x.mp4")  # b alone, later: the pin holds it to a's identity
    finally:
        together.close()
        alone.close()
    assert impostor.fingerprint not in (tmp_path / KNOWN_TRACKERS_FILE).read_text()


def test_a_pin_kept_under_the_address_as_typed_still_holds(tmp_path, tls_servers):
    port, real = tls_servers("127.0.0.1")
    tls_servers("::1", port)
    known = tmp_path / KNOWN_TRACKERS_FILE
    known.write_text(json.dumps({f"127.0.0.1:{port}": real.fingerprint}))  # an older napshare's
    transport = _trusting(tmp_path)
    with pytest.raises(TrackerIdentityError, match="TRACKER CERTIFICATE CHANGED"):
        tracker_certificate(transport, f"[::1]:{port}")
    assert fingerprint_of(tracker_certificate(transport, f"127.0.0.1:{port}")) == (real.fingerprint)
