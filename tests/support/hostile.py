"""Hostile listings for the download tests: a TLS tracker in this process, honest TLS peers,
and an attacker's fake listings at addresses where a TLS server shows another certificate.

Everything is real: the tracker is napshare's, the peers and the impostors are napshare peer
servers (an impostor is one with an identity other than the one its listing was joined with),
all on loopback addresses (127.0.0.0/8, so different /24 blocks are at hand).
"""

import hashlib
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from napshare.common import error_details, merkle, reasons
from napshare.common.identity import PEER_NAME, TRACKER_NAME, Identity, make_identity
from napshare.common.protocol import PEER_SERVICE
from napshare.common.tls import server_credentials
from napshare.peer.folder.store import SharedFile, SharedFolder
from napshare.peer.serving.server import create_server as create_peer
from napshare.peer.tracker_client import TrackerClient
from napshare.peer.transport import Transport
from napshare.tracker.server import create_server as create_tracker
from napshare.v1 import file_info_pb2, peer_pb2


@dataclass
class TlsTracker:
    """A napshare tracker serving TLS in this process on 127.0.0.1, its certificate in a file."""

    server: grpc.Server
    port: int
    identity: Identity
    cert_file: Path
    clients: list[TrackerClient] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def transport(self) -> Transport:
        return Transport(plaintext=False, tracker_cert=self.identity.certificate_pem)

    def client(self) -> TrackerClient:
        """A TrackerClient pinned to this tracker, closed by stop()."""
        client = TrackerClient(self.address, transport=self.transport())
        self.clients.append(client)
        return client

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.server.stop(None)


def start_tls_tracker(folder: Path) -> TlsTracker:
    """A TLS tracker in this process; its certificate written into `folder`."""
    identity = make_identity(TRACKER_NAME, ["127.0.0.1"])
    server, port = create_tracker(host="127.0.0.1", port=0, tls=identity)
    cert_file = folder / f"tracker-{port}.pem"
    cert_file.write_bytes(identity.certificate_pem)
    return TlsTracker(server, port, identity, cert_file)


@dataclass
class ServingPeer:
    """A napshare peer server over TLS on `host`, with its identity; joined or not."""

    server: grpc.Server
    host: str
    port: int
    identity: Identity

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def serve(
    root: Path, host: str = "127.0.0.1", identity: Identity | None = None, port: int = 0
) -> ServingPeer:
    """A peer server over TLS sharing `root` on host:port (0: a free port)."""
    identity = identity or make_identity(PEER_NAME)
    server, port = create_peer(SharedFolder(root), host=host, port=port, tls=identity)
    return ServingPeer(server, host, port, identity)


def honest_peer(tracker: TlsTracker, root: Path, host: str = "127.0.0.1") -> ServingPeer:
    """A peer sharing `root` over TLS on `host`, joined to `tracker` with its own identity
    (so the tracker reaches it there).
    """
    peer = serve(root, host)
    files = SharedFolder(root).scan()
    registration = tracker.client().join(host, peer.port, files, identity=peer.identity)
    assert registration.reachable, "the tracker did not reach an honest peer"
    return peer


def fake_listing(
    tracker: TlsTracker, attacker: Identity, host: str, port: int, files: list[SharedFile]
) -> bool:
    """Join `files` as `attacker` at host:port (whoever answers there); whether the tracker
    reached the attacker there.
    """
    return tracker.client().join(host, port, files, identity=attacker).reachable


def fake_version(real: SharedFile, seed: str) -> SharedFile:
    """`real`'s name and size with a made-up sha256 and pieces root."""
    made_up = hashlib.sha256(seed.encode()).hexdigest()
    root = hashlib.sha256(b"root " + seed.encode()).hexdigest() if real.pieces_root else ""
    return SharedFile(real.name, real.size, made_up, real.mtime_ns, root)


class BusyPeer:
    """A PeerService over TLS with `identity` on `host` that answers every call as a peer
    whose upload slots are full (RESOURCE_EXHAUSTED, UPLOAD_SLOTS_FULL, come back in
    `retry_after` s), and health checks as serving: an attacker's server the tracker reaches,
    holding a download off for ever. `calls` counts the calls it refused.
    """

    def __init__(self, host: str, identity: Identity, retry_after: float = 60.0) -> None:
        self.host = host
        self.identity = identity
        self.calls = 0
        self._retry_after = retry_after
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), self.server)
        handlers = {
            "Download": grpc.unary_stream_rpc_method_handler(
                self._refuse_stream,
                request_deserializer=peer_pb2.DownloadRequest.FromString,
                response_serializer=peer_pb2.DownloadResponse.SerializeToString,
            ),
            "GetPieceLayer": grpc.unary_unary_rpc_method_handler(
                self._refuse,
                request_deserializer=peer_pb2.GetPieceLayerRequest.FromString,
                response_serializer=peer_pb2.GetPieceLayerResponse.SerializeToString,
            ),
        }
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(PEER_SERVICE, handlers),)
        )
        self.port = self.server.add_secure_port(f"{host}:0", server_credentials(identity))
        self.server.start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _refuse(self, _request: object, context: grpc.ServicerContext) -> None:
        self.calls += 1
        context.abort_with_status(
            error_details.status(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "all upload slots are taken",
                reasons.UPLOAD_SLOTS_FULL,
                retry_delay=self._retry_after,
            )
        )

    def _refuse_stream(self, request: object, context: grpc.ServicerContext) -> Iterator[None]:
        self._refuse(request, context)
        yield None  # never reached: abort raises


class HugeLiar:
    """A PeerService in plain text on 127.0.0.1 listing `name` at `size` bytes (any size: it
    has no file), with a made-up piece layer that matches the pieces root it lists, and
    sending bytes of its own for any range asked (so each piece fails its hash once whole).
    `asked` counts the Download and GetPieceLayer calls it got. Health checks are answered,
    so a tracker in plain text finds it reachable.

    With `real` (a file on disk), it lists that file as it is, with its true layer, and sends
    bytes of its own all the same.
    """

    CHUNK = 1024 * 1024

    def __init__(self, name: str, size: int, real: Path | None = None) -> None:
        if real is None:
            count = merkle.piece_count(size)
            self.hashes = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(count)]
            root = merkle.root_of_layer(self.hashes, size).hex()
            sha256 = hashlib.sha256(b"made up").hexdigest()
        else:
            tree = merkle.TreeBuilder(size)
            tree.update(real.read_bytes())
            root = tree.finish().hex()
            self.hashes = tree.layer
            sha256 = hashlib.sha256(real.read_bytes()).hexdigest()
        self.info = file_info_pb2.FileInfo(name=name, size=size, sha256=sha256, pieces_root=root)
        self.asked = 0
        self._junk = bytes([0x5A]) * self.CHUNK
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), self.server)
        handlers = {
            "Download": grpc.unary_stream_rpc_method_handler(
                self._download,
                request_deserializer=peer_pb2.DownloadRequest.FromString,
                response_serializer=peer_pb2.DownloadResponse.SerializeToString,
            ),
            "GetPieceLayer": grpc.unary_unary_rpc_method_handler(
                self._layer,
                request_deserializer=peer_pb2.GetPieceLayerRequest.FromString,
                response_serializer=peer_pb2.GetPieceLayerResponse.SerializeToString,
            ),
        }
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(PEER_SERVICE, handlers),)
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def listing(self) -> SharedFile:
        return SharedFile(
            self.info.name, self.info.size, self.info.sha256, 0, self.info.pieces_root
        )

    def _layer(
        self, _request: peer_pb2.GetPieceLayerRequest, _context: grpc.ServicerContext
    ) -> peer_pb2.GetPieceLayerResponse:
        self.asked += 1
        return peer_pb2.GetPieceLayerResponse(
            piece_size=merkle.piece_size_for(self.info.size), hashes=b"".join(self.hashes)
        )

    def _download(
        self, request: peer_pb2.DownloadRequest, context: grpc.ServicerContext
    ) -> Iterator[peer_pb2.DownloadResponse]:
        self.asked += 1
        end = self.info.size
        if request.limit:
            end = min(end, request.offset + request.limit)
        position = request.offset
        info: file_info_pb2.FileInfo | None = self.info
        while position < end and context.is_active():
            data = self._junk[: min(self.CHUNK, end - position)]
            yield peer_pb2.DownloadResponse(offset=position, data=data, file=info)
            info = None
            position += len(data)
