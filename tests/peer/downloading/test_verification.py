"""Bytes that do not match the advertised sha256 are never kept, and one bad peer blocks nothing."""

import os
from pathlib import Path

import pytest
from napshare.peer.downloading.engine import Downloader, DownloadOptions
from napshare.peer.errors import VerificationFailedError
from napshare.peer.folder.store import SharedFile, SharedFolder

from tests.support.downloads import DATA_SIZE, Swarm, part_path
from tests.support.files import MIB, sha256_file
from tests.support.peers import run_peer

BOGUS = "0" * 64


def corrupt_in_place(path: Path) -> None:
    """Change bytes in the middle of `path`, keeping size and mtime (so caches still trust it)."""
    before = path.stat()
    with path.open("r+b") as file:
        file.seek(DATA_SIZE // 2)
        file.write(b"\xff" * 100)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_bad_bytes_ban_the_peer_and_an_honest_one_serves(swarm: Swarm) -> None:
    liar = swarm.node(swarm.share("liar"), swarm.tracker.address)
    corrupt_in_place(swarm.tmp / "liar" / "aula1.mp4")
    honest = swarm.node(swarm.share("honest"), swarm.tracker.address)
    target = swarm.folder("c")

    result = Downloader(SharedFolder(target), swarm.tracker.client).download(
        "aula1.mp4", DownloadOptions(preferred=liar.link.peer_id)
    )

    # The liar's good pieces before the bad one are kept; the honest peer sends the rest.
    assert result.sources == (liar.link.peer_id, honest.link.peer_id)
    assert (result.resumed_from, result.bytes_received) == (0, DATA_SIZE)
    assert sha256_file(target / "aula1.mp4") == swarm.sha256
    assert not part_path(target, "aula1.mp4").exists()


def test_bad_bytes_from_the_only_source_are_not_kept_but_its_good_pieces_are(
    swarm: Swarm,
) -> None:
    liar = swarm.node(swarm.share("liar"), swarm.tracker.address)
    corrupt_in_place(swarm.tmp / "liar" / "aula1.mp4")
    target = swarm.folder("c")

    with pytest.raises(VerificationFailedError, match="verification failed"):
        Downloader(SharedFolder(target), swarm.tracker.client).download("aula1.mp4")

    assert [p.name for p in target.iterdir()] == [".napshare"]
    # The pieces before the damaged one were verified and stay in the part for a later run.
    liar.stop()
    swarm.node(swarm.share("honest"), swarm.tracker.address)
    result = Downloader(SharedFolder(target), swarm.tracker.client).download("aula1.mp4")
    kept = (DATA_SIZE // 2) // MIB * MIB  # up to the piece the damage is in
    assert (result.resumed_from, result.bytes_received) == (kept, DATA_SIZE - kept)
    assert sha256_file(target / "aula1.mp4") == swarm.sha256


def test_cli_says_verification_failed(swarm: Swarm) -> None:
    swarm.node(swarm.share("liar"), swarm.tracker.address)
    corrupt_in_place(swarm.tmp / "liar" / "aula1.mp4")
    target = swarm.folder("c")

    done = run_peer(
        "download", "aula1.mp4", "--dir", str(target), "--tracker", swarm.tracker.address
    )

    assert done.returncode == 5
    assert done.stderr.strip().splitlines()[-1].startswith("napshare-peer: verification failed")
    assert not (target / "aula1.mp4").exists()


def test_a_majority_advertising_a_bogus_digest_does_not_block_the_real_file(
    swarm: Swarm,
) -> None:
    # Two peers that really have the file are registered with a made-up sha256 (a direct
    # Join, as a hostile client could do): asked for that digest, they answer
    # FAILED_PRECONDITION, and the download moves on to the version an honest peer has.
    for name in ("x", "y"):
        port = swarm.plain(swarm.share(name)).port
        swarm.tracker.client.join("127.0.0.1", port, [SharedFile("aula1.mp4", DATA_SIZE, BOGUS, 0)])
    honest = swarm.node(swarm.share("honest"), swarm.tracker.address)
    target = swarm.folder("c")

    result = Downloader(SharedFolder(target), swarm.tracker.client).download("aula1.mp4")

    assert (result.sha256, result.sources) == (swarm.sha256, (honest.link.peer_id,))
    assert sha256_file(target / "aula1.mp4") == swarm.sha256
