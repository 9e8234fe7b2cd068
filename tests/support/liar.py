"""A lying PeerService for the poisoning tests and benchmark: a real file, served wrong on purpose.

python -m tests.support.liar FILE --tracker ADDRESS --lie LIE --stats PATH

joins the tracker with FILE's true name, size, sha256 and pieces root, prints
`listening on 127.0.0.1:PORT`, and writes the file bytes it sent so far to PATH after every
stream; SIGTERM leaves the tracker and exits.
"""

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from napshare.common import merkle
from napshare.peer.folder.store import SharedFile, SharedFolder
from napshare.peer.tracker_client import TrackerClient
from napshare.v1 import file_info_pb2, peer_pb2

MIB = 1024 * 1024
CHUNK = MIB
# wrong bytes in the last chunk only; a corrupted first chunk of `first` bytes, then
# UNAVAILABLE; a piece layer that does not match the root (the bytes are right); wrong bytes
# in every chunk.
LIES = ("last chunk", "first chunk then drop", "layer", "every chunk")


Download = Callable[
    [peer_pb2.DownloadRequest, grpc.ServicerContext], Iterator[peer_pb2.DownloadResponse]
]
GetPieceLayer = Callable[
    [peer_pb2.GetPieceLayerRequest, grpc.ServicerContext], peer_pb2.GetPieceLayerResponse
]


def peer_service(
    download: Download, layer: GetPieceLayer, checks: health.HealthServicer | None = None
) -> tuple[grpc.Server, int]:
    """A started PeerService of these two handlers (plain text) on a free loopback port, and
    the health service `checks` beside it if given.
    """
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    if checks is not None:
        health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    handlers = {
        "Download": grpc.unary_stream_rpc_method_handler(
            download,
            request_deserializer=peer_pb2.DownloadRequest.FromString,
            response_serializer=peer_pb2.DownloadResponse.SerializeToString,
        ),
        "GetPieceLayer": grpc.unary_unary_rpc_method_handler(
            layer,
            request_deserializer=peer_pb2.GetPieceLayerRequest.FromString,
            response_serializer=peer_pb2.GetPieceLayerResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("napshare.v1.PeerService", handlers),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


class LyingPeer:
    """A PeerService on a free loopback port serving `path` as `info`, lying as `lie` says."""

    def __init__(
        self,
        path: Path,
        info: SharedFile,
        lie: str,
        first: int = CHUNK,
        stats: Path | None = None,
    ) -> None:
        if lie not in LIES:
            raise ValueError(f"unknown lie {lie!r}; one of {', '.join(LIES)}")
        self.path, self.info, self.lie, self.first = path, info, lie, first
        self.sent = 0
        self._stats = stats
        self._hashes: bytes | None = None  # the true layer, computed once
        self._lock = threading.Lock()
        self.server, self.port = peer_service(self._download, self._layer)

    def stop(self) -> None:
        """Stop serving at once."""
        self.server.stop(None)

    def _layer(
        self, _request: peer_pb2.GetPieceLayerRequest, _context: grpc.ServicerContext
    ) -> peer_pb2.GetPieceLayerResponse:
        with self._lock:
            if self._hashes is None:
                tree = merkle.TreeBuilder(self.info.size)
                with self.path.open("rb") as source:
                    while block := source.read(8 * MIB):
                        tree.update(block)
                self._hashes = b"".join(tree.layer)
            hashes = self._hashes
        if self.lie == "layer":
            hashes = bytes(32) + hashes[32:]
        piece_size = merkle.piece_size_for(self.info.size)
        return peer_pb2.GetPieceLayerResponse(piece_size=piece_size, hashes=hashes)

    def _download(
        self, request: peer_pb2.DownloadRequest, context: grpc.ServicerContext
    ) -> Iterator[peer_pb2.DownloadResponse]:
        try:
            yield from self._responses(request, context)
        finally:
            self._save_stats()

    def _responses(
        self, request: peer_pb2.DownloadRequest, context: grpc.ServicerContext
    ) -> Iterator[peer_pb2.DownloadResponse]:
        info: file_info_pb2.FileInfo | None = file_info_pb2.FileInfo(
            name=self.info.name,
            size=self.info.size,
            sha256=self.info.sha256,
            pieces_root=self.info.pieces_root,
        )
        dropping = self.lie == "first chunk then drop"
        chunk = self.first if dropping else CHUNK
        end = self.info.size
        if request.limit:
            end = min(end, request.offset + request.limit)
        with self.path.open("rb") as source:
            position = request.offset
            while position < end:
                source.seek(position)
                data = source.read(min(chunk, end - position))
                last = position + len(data) == self.info.size
                if dropping or self.lie == "every chunk" or (self.lie == "last chunk" and last):
                    data = bytes(b ^ 0xFF for b in data[:100]) + data[100:]
                with self._lock:
                    self.sent += len(data)
                yield peer_pb2.DownloadResponse(offset=position, data=data, file=info)
                info = None
                position += len(data)
                if dropping:
                    context.abort(grpc.StatusCode.UNAVAILABLE, "dropped on purpose")

    def _save_stats(self) -> None:
        if self._stats is None:
            return
        temp = self._stats.with_suffix(".tmp")
        with self._lock:
            temp.write_text(str(self.sent))
        os.replace(temp, self._stats)


def main() -> int:
    """Serve FILE with a lie, registered with the tracker, until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.liar")
    parser.add_argument("file", type=Path)
    parser.add_argument("--tracker", required=True)
    parser.add_argument("--lie", choices=LIES, required=True)
    parser.add_argument("--stats", type=Path, required=True)
    args = parser.parse_args()
    info = SharedFolder(args.file.parent).get(args.file.name)
    liar = LyingPeer(args.file, info, args.lie, stats=args.stats)
    tracker = TrackerClient(args.tracker)
    registration = tracker.join("127.0.0.1", liar.port, [info])
    done = threading.Event()

    def stop(_signal: int, _frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    print(f"listening on 127.0.0.1:{liar.port}", flush=True)
    while not done.wait(registration.heartbeat_interval / 2):
        tracker.heartbeat(registration)
    tracker.leave(registration)
    liar.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
