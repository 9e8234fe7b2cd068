"""An unfinished download is resumed in the version it holds pieces of, even when another
version of the name ranks higher now: trying that one first would start the part over (it
holds one file's pieces at a time), so a stranger listing a new version could wipe it.
A tracker and peers in plain text in this process, real files, real downloads.
"""

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from napshare.common.identity import PEER_NAME, make_identity
from napshare.peer.downloading.engine import Downloader, DownloadOptions
from napshare.peer.downloading.reporting import SilentReporter
from napshare.peer.errors import CancelledError
from napshare.peer.folder.store import SharedFolder
from napshare.peer.serving.server import create_server as create_peer
from napshare.peer.tracker_client import TrackerClient
from napshare.tracker.server import create_server as create_tracker

MIB = 1 << 20
NAME = "lecture.mp4"


class CancelAfter(SilentReporter):
    """Sets `cancel` once `count` bytes were kept."""

    def __init__(self, cancel: threading.Event, count: int) -> None:
        self.cancel, self.left = cancel, count

    def advance(self, count: int) -> None:
        self.left -= count
        if self.left <= 0:
            self.cancel.set()


@pytest.fixture
def servers() -> Iterator[list[grpc.Server]]:
    started: list[grpc.Server] = []
    yield started
    for server in started:
        server.stop(None)


@pytest.fixture
def tracker(servers: list[grpc.Server]) -> Iterator[TrackerClient]:
    server, port = create_tracker(host="127.0.0.1", port=0)
    servers.append(server)
    client = TrackerClient(f"127.0.0.1:{port}")
    yield client
    client.close()


def share(
    tracker: TrackerClient, servers: list[grpc.Server], root: Path, host: str, **options: float
) -> None:
    folder = SharedFolder(root)
    server, port = create_peer(folder, host=host, **options)  # type: ignore[arg-type]
    servers.append(server)
    assert tracker.join(host, port, folder.scan(), identity=make_identity(PEER_NAME)).reachable


def folder_with(tmp_path: Path, label: str, data: bytes) -> Path:
    folder = tmp_path / label
    folder.mkdir()
    (folder / NAME).write_bytes(data)
    return folder


def test_an_unfinished_download_resumes_its_version_before_a_better_ranked_one(
    tracker, servers, tmp_path
):
    real = os.urandom(8 * MIB + 3)
    share(tracker, servers, folder_with(tmp_path, "real", real), "127.0.1.1",
          max_upload_rate=2 * MIB)  # fmt: skip
    target = tmp_path / "b"
    target.mkdir()
    options = DownloadOptions(stall_timeout=5, give_up_after=20)
    cancel = threading.Event()
    downloader = Downloader(SharedFolder(target), tracker)
    try:
        with pytest.raises(CancelledError):
            downloader.download(NAME, options, CancelAfter(cancel, 2 * MIB), cancel)
        # Now another version is shared from two blocks, really (its bytes verify).
        evil = folder_with(tmp_path, "evil", os.urandom(len(real)))
        for host in ("127.0.3.1", "127.0.4.1"):
            share(tracker, servers, evil, host)

        result = downloader.download(NAME, options)
    finally:
        downloader.close()

    assert (target / NAME).read_bytes() == real
    assert result.resumed_from >= 2 * MIB
