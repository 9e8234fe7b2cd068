"""Pieces larger than fetch.PIECE_BUFFER are assembled in a scratch file, not in memory, and
only copied into the part once they match their hash. Such pieces come with files over
64 GiB; here the threshold is lowered so that a 1 MiB piece takes that path, on a real
download from real peers (a tracker and peers in plain text in this process), with a liar
among them whose bad pieces must never reach the part.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from napshare.common.identity import PEER_NAME, make_identity
from napshare.peer.downloading import fetch
from napshare.peer.downloading.engine import Downloader, DownloadOptions
from napshare.peer.folder.store import SharedFolder
from napshare.peer.serving.server import create_server as create_peer
from napshare.peer.tracker_client import TrackerClient
from napshare.tracker.server import create_server as create_tracker

from tests.support.hostile import HugeLiar

MIB = 1 << 20
NAME = "big.bin"


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


def share(tracker: TrackerClient, servers: list[grpc.Server], root: Path) -> None:
    folder = SharedFolder(root)
    server, port = create_peer(folder, host="127.0.0.1")
    servers.append(server)
    joined = tracker.join("127.0.0.1", port, folder.scan(), identity=make_identity(PEER_NAME))
    assert joined.reachable


def test_large_pieces_pass_through_a_scratch_file_and_a_liars_never_reach_the_part(
    tracker, servers, tmp_path, monkeypatch
):
    monkeypatch.setattr(fetch, "PIECE_BUFFER", 64 * 1024)  # 1 MiB pieces count as large
    data = os.urandom(6 * MIB + 12345)
    source = tmp_path / "a"
    source.mkdir()
    (source / NAME).write_bytes(data)
    share(tracker, servers, source)
    liar = HugeLiar(NAME, len(data), real=source / NAME)  # the true listing, bytes of its own
    servers.append(liar.server)
    tracker.join("127.0.0.1", liar.port, [liar.listing()], identity=make_identity(PEER_NAME))
    target = tmp_path / "b"
    target.mkdir()
    downloader = Downloader(SharedFolder(target), tracker)
    try:
        result = downloader.download(NAME, DownloadOptions(stall_timeout=5, give_up_after=20))
    finally:
        downloader.close()

    assert (target / NAME).read_bytes() == data
    assert f"127.0.0.1:{liar.port}" not in dict(result.received_from)
    assert sum(dict(result.received_from).values()) == len(data)
    assert liar.asked >= 1  # it was asked, and none of its pieces was kept
