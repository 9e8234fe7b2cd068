"""A peer's identity lives only in a `.napshare/` folder of its own, never through a symlink."""

from pathlib import Path

import pytest
from napshare.common.identity import PEER_NAME, make_identity
from napshare.peer.errors import IdentityFilesError
from napshare.peer.folder.layout import IDENTITY_DIR, STATE_DIR
from napshare.peer.transport import peer_identity


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
