"""Receiving a piece: however small the chunks a peer sends it in, it costs about one piece of
memory.

The peer is a small real PeerService on a free loopback port (tests.support.slowpeer) that
serves the true bytes in tiny chunks; the test's comment tells the defect it was written for.
"""

import tracemalloc
from pathlib import Path

import pytest
from napshare.peer.downloading.engine import Downloader, DownloadOptions
from napshare.peer.folder.store import SharedFolder

from tests.support.downloads import NAME, shared_info
from tests.support.files import MIB, sha256_file
from tests.support.slowpeer import SlowPeer, start_slow_peer
from tests.support.trackers import InProcessTracker


@pytest.mark.parametrize("chunk", [MIB, 32], ids=["1 MiB chunks", "32-byte chunks"])
def test_a_peer_sending_tiny_chunks_does_not_multiply_the_memory_of_a_piece(
    tracker: InProcessTracker, tmp_path: Path, slow_peers: list[SlowPeer], chunk: int
) -> None:
    # Each chunk of a piece is kept as its own message and memoryview until the piece is
    # whole: a peer that sends a 1 MiB piece 32 bytes at a time makes the downloader hold
    # 32768 objects (over 10 MB) for it, 1-byte chunks some 400 MB, and 32 such streams at
    # once many GB. The bytes of one piece should cost about one piece. (The download then
    # also failed with EINVAL, see test_partfile.py; the peak is measured either way.)
    size = MIB + 1
    info = shared_info(tmp_path, size)
    start_slow_peer(tracker, slow_peers, tmp_path / "data" / NAME, chunk=chunk, pause=0.0)
    target = tmp_path / "target"
    target.mkdir()

    failure: Exception | None = None
    tracemalloc.start()
    try:
        Downloader(SharedFolder(target), tracker.client).download(NAME, DownloadOptions())
    except Exception as error:  # reported after the memory check
        failure = error
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

    assert peak < 8 * MIB, f"peak {peak / MIB:.1f} MiB of Python objects for a {size}-byte file"
    assert failure is None
    assert sha256_file(target / NAME) == info.sha256
