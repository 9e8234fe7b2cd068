"""A PeerService that serves the true bytes of a file, only slowly, in tiny chunks, or not at
all (busy): a small real gRPC server on a free loopback port (liar.peer_service).
"""

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
from napshare.common import error_details, merkle, reasons
from napshare.peer.folder.store import SharedFile, SharedFolder
from napshare.v1 import file_info_pb2, peer_pb2

from tests.support.liar import peer_service
from tests.support.trackers import InProcessTracker


class SlowPeer:
    """A PeerService serving the true bytes of `path` in `chunk`-byte messages, `pause` s apart."""

    def __init__(
        self, path: Path, info: SharedFile, chunk: int, pause: float, *, busy: bool = False
    ) -> None:
        self.path, self.info, self.chunk, self.pause = path, info, chunk, pause
        self.busy = busy  # every Download: RESOURCE_EXHAUSTED, "ask again in 0 s"
        self.asked = 0
        self.done = threading.Event()
        self.server, self.port = peer_service(self._download, self._layer)

    def stop(self) -> None:
        self.done.set()
        self.server.stop(None)

    def _layer(
        self, _request: peer_pb2.GetPieceLayerRequest, _context: grpc.ServicerContext
    ) -> peer_pb2.GetPieceLayerResponse:
        tree = merkle.TreeBuilder(self.info.size)
        tree.update(self.path.read_bytes())
        hashes = b"".join(tree.layer) if len(tree.layer) > 1 else b""
        return peer_pb2.GetPieceLayerResponse(
            piece_size=merkle.piece_size_for(self.info.size), hashes=hashes
        )

    def _download(
        self, request: peer_pb2.DownloadRequest, context: grpc.ServicerContext
    ) -> Iterator[peer_pb2.DownloadResponse]:
        self.asked += 1
        if self.busy:
            context.abort_with_status(
                error_details.status(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    "every upload slot is taken",
                    reasons.UPLOAD_SLOTS_FULL,
                    retry_delay=0.0,
                )
            )
        info: file_info_pb2.FileInfo | None = file_info_pb2.FileInfo(
            name=self.info.name,
            size=self.info.size,
            sha256=self.info.sha256,
            pieces_root=self.info.pieces_root,
        )
        data = self.path.read_bytes()
        end = self.info.size
        if request.limit:
            end = min(end, request.offset + request.limit)
        position = request.offset
        while position < end and context.is_active() and not self.done.is_set():
            piece = data[position : min(end, position + self.chunk)]
            yield peer_pb2.DownloadResponse(offset=position, data=piece, file=info)
            info = None
            position += len(piece)
            if self.pause:
                time.sleep(self.pause)


def start_slow_peer(
    tracker: InProcessTracker,
    started: list[SlowPeer],
    path: Path,
    chunk: int,
    pause: float,
    *,
    busy: bool = False,
) -> tuple[SlowPeer, str]:
    """Start a SlowPeer serving `path`, add it to `started` (which the test stops), and join
    it to `tracker`; the peer and its peer id.
    """
    info = SharedFolder(path.parent).get(path.name)
    peer = SlowPeer(path, info, chunk, pause, busy=busy)
    started.append(peer)
    return peer, tracker.client.join("127.0.0.1", peer.port, [info]).peer_id
