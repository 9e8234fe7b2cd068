"""`napshare-peer search` by content: --sha256 and --root list every peer that has those
bytes under any name; a search by name says how many more have them under other names; a
keyword search keeps the rows of the same bytes together and says how many peers have them.

A real tracker in this process; the peers are registrations of real folders.
"""

import hashlib
from pathlib import Path

from napshare.peer.folder.store import SharedFolder

from tests.support.peers import run_peer
from tests.support.trackers import InProcessTracker

VIDEO = b"the same lesson, whatever its name" * 1000
SHA256 = hashlib.sha256(VIDEO).hexdigest()
NAMES = {8776: "aula1.mp4", 8777: "Aula 1 - Redes.mp4", 8778: "redes.mp4"}


def _share(tmp_path: Path, tracker: InProcessTracker) -> str:
    """Three peers with VIDEO under three names, one with other bytes; VIDEO's pieces root."""
    root = ""
    for port, name in [*NAMES.items(), (8779, "outro.mp4")]:
        folder = tmp_path / str(port)
        folder.mkdir()
        (folder / name).write_bytes(VIDEO if port in NAMES else b"other bytes")
        files = SharedFolder(folder).scan()
        root = root or files[0].pieces_root
        tracker.client.join("127.0.0.1", port, files)
    return root


def test_search_by_sha256_lists_every_peer_with_those_bytes_under_any_name(
    tmp_path: Path, tracker: InProcessTracker
) -> None:
    root = _share(tmp_path, tracker)

    by_sha256 = run_peer("search", "--sha256", SHA256.upper(), "--tracker", tracker.address)
    by_root = run_peer("search", "--root", root, "--tracker", tracker.address)

    rows = [f"127.0.0.1:{port}\t{len(VIDEO)}\t{name}" for port, name in NAMES.items()]
    for done in (by_sha256, by_root):
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == rows
        assert done.stderr == (
            f"napshare-peer: 3 peers have the bytes of aula1.mp4 (sha256 {SHA256}), under 3 "
            "names; a download of any of these names uses them all\n"
        )


def test_search_by_name_says_how_many_more_peers_have_the_bytes(
    tmp_path: Path, tracker: InProcessTracker
) -> None:
    _share(tmp_path, tracker)

    done = run_peer("search", "aula1.mp4", "--tracker", tracker.address)

    assert done.returncode == 0, done.stderr
    assert done.stdout == "peers with requested file: 127.0.0.1:8776\n"
    assert done.stderr == (
        f"napshare-peer: 3 peers have these bytes (sha256 {SHA256}): 2 more under other names "
        "(Aula 1 - Redes.mp4, redes.mp4); a download uses them too\n"
    )


def test_keyword_results_keep_the_same_bytes_together(
    tmp_path: Path, tracker: InProcessTracker
) -> None:
    _share(tmp_path, tracker)

    done = run_peer("search", "--query", "mp4", "--tracker", tracker.address)

    assert done.returncode == 0, done.stderr
    rows = done.stdout.splitlines()
    assert sorted(rows) == sorted(
        [f"127.0.0.1:{port}\t{len(VIDEO)}\t{name}" for port, name in NAMES.items()]
        + ["127.0.0.1:8779\t11\toutro.mp4"]
    )
    same = [n for n, row in enumerate(rows) if not row.endswith("outro.mp4")]
    assert same == list(range(same[0], same[0] + 3))  # one block
    assert f"3 peers have the bytes of aula1.mp4 (sha256 {SHA256}), under 3 names" in done.stderr


def test_a_search_by_content_takes_one_digest_and_nothing_else(
    tracker: InProcessTracker,
) -> None:
    for args in (
        ["--sha256", "abc"],
        ["aula1.mp4", "--sha256", SHA256],
        ["--sha256", SHA256, "--root", SHA256],
        ["--query", "--sha256", SHA256],
    ):
        done = run_peer("search", *args, "--tracker", tracker.address)
        assert done.returncode == 2, args
        assert done.stdout == ""
        assert "Traceback" not in done.stderr
