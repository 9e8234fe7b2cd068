"""Fixtures for the serving peer: real servers on port 0, real channels, real files."""

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from napshare.peer.folder.store import SharedFolder
from napshare.peer.serving.server import create_server
from napshare.v1 import peer_pb2, peer_pb2_grpc

GIB = 1 << 30
BIG_SIZE = 5 * GIB // 2 + 1
BIG_MARKERS = {0: b"N", 2**31 - 1: b"A", 2**31: b"P", BIG_SIZE - 1: b"!"}


@dataclass
class Peer:
    """A started peer server and a channel to it."""

    folder: SharedFolder
    server: grpc.Server
    port: int
    channel: grpc.Channel
    stub: peer_pb2_grpc.PeerServiceStub

    def download(self, name: str, **fields: Any) -> list[peer_pb2.DownloadResponse]:
        """Every response of one Download call."""
        return list(self.stub.Download(peer_pb2.DownloadRequest(name=name, **fields)))

    def error(self, name: str, **fields: Any) -> grpc.StatusCode:
        """The status code a Download call fails with; fails the test if it succeeds."""
        with pytest.raises(grpc.RpcError) as caught:
            self.download(name, **fields)
        code: grpc.StatusCode = caught.value.code()
        return code


@pytest.fixture
def start_peer() -> Iterator[Callable[..., Peer]]:
    """Start a peer server on 127.0.0.1, port 0, sharing a folder; stopped after the test."""
    peers: list[Peer] = []

    def start(root: Path, **options: Any) -> Peer:
        folder = SharedFolder(root)
        server, port = create_server(folder, host="127.0.0.1", **options)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        peer = Peer(folder, server, port, channel, peer_pb2_grpc.PeerServiceStub(channel))
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        peer.channel.close()
        peer.server.stop(None)


@pytest.fixture(scope="session")
def big_sparse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A sparse file of 2.5 GiB + 1 byte with markers around 2^31, and its sha256."""
    folder = tmp_path_factory.mktemp("big")
    path = folder / "big.bin"
    with path.open("wb") as out:
        out.truncate(BIG_SIZE)
        for position, marker in BIG_MARKERS.items():
            out.seek(position)
            out.write(marker)
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(4 << 20):
            digest.update(block)
    return path, digest.hexdigest()
