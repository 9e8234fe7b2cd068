"""Helpers for the tests of reaching peers behind NATs: signed Joins, Listen streams read in a
thread.
"""

import contextlib
import queue
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from napshare.common.identity import TRACKER_NAME, Identity, make_identity
from napshare.peer.folder.store import SharedFolder
from napshare.peer.node import NodeConfig
from napshare.peer.tracker_client import TrackerClient, sign_join
from napshare.peer.transport import PLAINTEXT, Transport
from napshare.tracker.server import create_server as create_tracker
from napshare.v1 import tracker_pb2, tracker_pb2_grpc


def signed_join(
    identity: Identity,
    port: int,
    *files: object,
    host: str = "127.0.0.1",
    tracker: str = "",
    local_addresses: tuple[str, ...] = (),
) -> tracker_pb2.JoinRequest:
    """A Join of `identity` at host:port, signed for `tracker` ("" for plain text)."""
    request = tracker_pb2.JoinRequest(
        host=host, port=port, files=list(files), local_addresses=list(local_addresses)
    )
    return sign_join(request, identity, tracker)


class ListenStream:
    """A Listen call whose messages a thread puts in a queue, with its end (an RpcError or
    None for OK) as the last item.
    """

    def __init__(self, stub: tracker_pb2_grpc.TrackerServiceStub, peer_id: str, token: str):
        self.call = stub.Listen(tracker_pb2.ListenRequest(peer_id=peer_id, token=token))
        self.items: queue.Queue[tracker_pb2.ListenResponse | grpc.RpcError | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for message in self._messages():
                self.items.put(message)
        except grpc.RpcError as error:
            self.items.put(error)
            return
        self.items.put(None)

    def _messages(self) -> Iterator[tracker_pb2.ListenResponse]:
        yield from self.call

    def next(self, timeout: float = 10.0) -> tracker_pb2.ListenResponse | grpc.RpcError | None:
        """The next message, or the stream's end; queue.Empty after `timeout` seconds."""
        return self.items.get(timeout=timeout)

    def event(self, timeout: float = 10.0) -> tracker_pb2.ListenResponse:
        """The next message that is no keepalive; AssertionError if the stream ended."""
        while True:
            item = self.next(timeout)
            assert isinstance(item, tracker_pb2.ListenResponse), f"the stream ended: {item}"
            if item.WhichOneof("event") != "keepalive":
                return item

    def cancel(self) -> None:
        self.call.cancel()
        self._thread.join(5)


BEHIND_NAT_BIND = "127.0.0.2"  # where a peer "behind a NAT" really listens
# Sockets bound (not listening) to the 127.0.0.1 ports that peers "behind a NAT" announce, for
# the life of the test process: a dial there is refused, as a router refuses it, and no other
# test's server (another worker's) can take that port and answer the tracker's check with its
# own certificate (which refuses the Join: that address would be another peer's).
_ANNOUNCED: list[socket.socket] = []


def natted_config(folder: Path, tracker: str, transport: Transport, **options: Any) -> NodeConfig:
    """A peer that announces 127.0.0.1 but listens on 127.0.0.2 at the same port (the
    tracker's check of its address is refused, as behind a NAT), with no local address to be
    found at: only the tracker's paths reach it.
    """
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    _ANNOUNCED.append(held)
    settings: dict[str, Any] = {
        "local_addresses": (),
        "rescan_interval": 60.0,
        "port": held.getsockname()[1],
        **options,
    }
    return NodeConfig(
        folder=SharedFolder(folder),
        folder_label=folder.name,
        tracker=tracker,
        host="127.0.0.1",
        bind=BEHIND_NAT_BIND,
        transport=transport,
        **settings,
    )


@dataclass
class TrackerWithIdentity:
    """An in-process tracker (TLS when it has an identity) and how peers talk to it."""

    server: grpc.Server
    port: int
    identity: Identity | None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def transport(self) -> Transport:
        if self.identity is None:
            return PLAINTEXT
        return Transport(plaintext=False, tracker_cert=self.identity.certificate_pem)

    def client(self) -> TrackerClient:
        return TrackerClient(self.address, transport=self.transport())


def start_reach_tracker(
    *, tls: bool, port: int = 0, identity: Identity | None = None, **options: Any
) -> TrackerWithIdentity:
    """An in-process tracker on loopback (`port` 0: a free one), serving TLS with `identity`
    (a new one when None) if `tls`, else plain text.
    """
    if tls and identity is None:
        identity = make_identity(TRACKER_NAME, ["127.0.0.1"])
    server, bound = create_tracker(
        host="127.0.0.1", port=port, tls=identity if tls else None, **options
    )
    return TrackerWithIdentity(server, bound, identity if tls else None)


class FreezableProxy:
    """A loopback TCP proxy to `upstream` whose connections can go silent both ways without
    closing, as when a home router drops a connection's mapping: bytes sent on a frozen
    connection are read and dropped. New connections are carried as usual.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self.connections = 0
        self._frozen: list[threading.Event] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        """Every connection open now carries nothing more."""
        with self._lock:
            for flag in self._frozen:
                flag.set()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                accepted, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._upstream)
            frozen = threading.Event()
            with self._lock:
                self.connections += 1
                self._frozen.append(frozen)
            for source, sink in ((accepted, upstream), (upstream, accepted)):
                threading.Thread(
                    target=self._pump, args=(source, sink, frozen), daemon=True
                ).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, frozen: threading.Event) -> None:
        try:
            while data := source.recv(65536):
                if not frozen.is_set():
                    sink.sendall(data)
        except OSError:
            pass
        if not frozen.is_set():
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
