"""A peer that abuses the queue positions of the Download stream: one that is no position
(0 of 0), or one sent after the file began, makes that peer broken for the file; the download
is finished by an honest peer, and the liar is not asked again.

A real tracker, a real honest node, and a PeerService of this test's own handlers (real gRPC).
"""

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from napshare.common import merkle
from napshare.peer.downloading.engine import Downloader, DownloadOptions
from napshare.peer.folder.store import SharedFile, SharedFolder
from napshare.v1 import file_info_pb2, peer_pb2

from tests.support.downloads import Swarm
from tests.support.files import MIB, sha256_file
from tests.support.liar import peer_service

NAME = "aula.bin"
SIZE = 3 * MIB


def _queue_lies(info: SharedFile, data: bytes, lie: str) -> Callable[..., Iterator[bytes]]:
    def download(
        request: peer_pb2.DownloadRequest, _context: grpc.ServicerContext
    ) -> Iterator[peer_pb2.DownloadResponse]:
        if lie == "no position":
            yield peer_pb2.DownloadResponse(queued=peer_pb2.QueuePosition(position=0, waiting=0))
            return
        file = file_info_pb2.FileInfo(
            name=info.name, size=info.size, sha256=info.sha256, pieces_root=info.pieces_root
        )
        chunk = data[request.offset : request.offset + 65536]
        yield peer_pb2.DownloadResponse(offset=request.offset, data=chunk, file=file)
        yield peer_pb2.DownloadResponse(queued=peer_pb2.QueuePosition(position=1, waiting=1))

    return download


def _layer(info: SharedFile, data: bytes) -> Callable[..., peer_pb2.GetPieceLayerResponse]:
    tree = merkle.TreeBuilder(info.size)
    tree.update(data)
    hashes = b"".join(tree.layer)

    def layer(
        _request: peer_pb2.GetPieceLayerRequest, _context: grpc.ServicerContext
    ) -> peer_pb2.GetPieceLayerResponse:
        return peer_pb2.GetPieceLayerResponse(
            piece_size=merkle.piece_size_for(info.size), hashes=hashes
        )

    return layer


@pytest.mark.parametrize("lie", ["no position", "a position after the data"])
def test_a_peer_lying_with_queue_positions_is_not_used_again(
    swarm: Swarm, lie: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="napshare.peer.downloading.engine")
    data = os.urandom(SIZE)
    honest_folder = swarm.folder("honest")
    (honest_folder / NAME).write_bytes(data)
    info = SharedFolder(honest_folder).get(NAME)
    honest = swarm.node(honest_folder, swarm.tracker.address)
    server, port = peer_service(_queue_lies(info, data, lie), _layer(info, data))
    try:
        swarm.tracker.client.join("127.0.0.1", port, [info])
        target: Path = swarm.folder("d")

        result = Downloader(SharedFolder(target), swarm.tracker.client).download(
            NAME, DownloadOptions(preferred=f"127.0.0.1:{port}")
        )
    finally:
        server.stop(None)

    assert sha256_file(target / NAME) == info.sha256
    assert dict(result.received_from) == {honest.link.peer_id: SIZE}
    [line] = [r.getMessage() for r in caplog.records if f"127.0.0.1:{port}" in r.getMessage()]
    assert "queue position" in line
    assert line.endswith("not using it again for this file")
