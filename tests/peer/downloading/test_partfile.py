"""The part file on disk: a piece that arrives in more chunks than one pwritev takes (IOV_MAX)
is still written.

The peer is a small real PeerService on a free loopback port (tests.support.slowpeer) that
serves the true bytes in tiny chunks; the test's comment tells the defect it was written for.
"""

from pathlib import Path

from napshare.peer.downloading.engine import Downloader, DownloadOptions
from napshare.peer.folder.store import SharedFolder

from tests.support.downloads import NAME, shared_info
from tests.support.files import MIB, sha256_file
from tests.support.slowpeer import SlowPeer, start_slow_peer
from tests.support.trackers import InProcessTracker


def test_a_piece_in_more_chunks_than_iov_max_is_written(
    tracker: InProcessTracker, tmp_path: Path, slow_peers: list[SlowPeer]
) -> None:
    # A piece is written with one pwritev of all its chunks' views; Linux takes at most
    # IOV_MAX (1024) of them, so a 1 MiB piece sent in 512-byte chunks (2048 views) fails
    # with EINVAL, which the part reports as "cannot write ...: Invalid argument": a folder
    # problem that halts every stream and fails the download, blamed on no peer. Any peer can
    # do it on purpose; an honest capped one (16 KiB chunks) does it to pieces of 32 MiB.
    size = MIB + 1
    info = shared_info(tmp_path, size)
    start_slow_peer(tracker, slow_peers, tmp_path / "data" / NAME, chunk=512, pause=0.0)
    target = tmp_path / "target"
    target.mkdir()

    Downloader(SharedFolder(target), tracker.client).download(NAME, DownloadOptions())

    assert sha256_file(target / NAME) == info.sha256
