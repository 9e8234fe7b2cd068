"""The tracker's calls as plain Python: Join, Search, Update, Heartbeat, Leave."""

from collections.abc import Iterable
from dataclasses import dataclass

import grpc
from napshare.common.address import format_address, parse_address
from napshare.peer.errors import tracker_error
from napshare.peer.folder.store import SharedFile
from napshare.v1 import file_info_pb2, tracker_pb2, tracker_pb2_grpc

CALL_TIMEOUT = 10.0
MAX_MESSAGE = 32 * 1024 * 1024


@dataclass(frozen=True)
class Source:
    """One peer that shares one file, as the tracker lists it."""

    peer: str
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Registration:
    """What Join returned: who we are to the tracker, and how often to say we are alive."""

    peer_id: str
    token: str
    heartbeat_interval: float


def _infos(files: Iterable[SharedFile]) -> list[file_info_pb2.FileInfo]:
    return [file_info_pb2.FileInfo(name=f.name, size=f.size, sha256=f.sha256) for f in files]


class TrackerClient:
    """A channel to one tracker; every method raises a peer.client_errors.ClientError on failure.

    Raises common.address.InvalidAddressError at construction for a malformed address.
    """

    def __init__(self, address: str, *, timeout: float = CALL_TIMEOUT) -> None:
        host, port = parse_address(address)
        self.address = format_address(host, port)
        self._timeout = timeout
        self._channel = grpc.insecure_channel(
            self.address,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.max_send_message_length", MAX_MESSAGE),
                # Come back quickly after the tracker restarts.
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 2000),
            ],
        )
        self._stub = tracker_pb2_grpc.TrackerServiceStub(self._channel)

    def join(self, host: str, port: int, files: Iterable[SharedFile]) -> Registration:
        """Register this peer's address and files (JOIN -> JOIN_OK)."""
        request = tracker_pb2.JoinRequest(host=host, port=port, files=_infos(files))
        try:
            reply = self._stub.Join(request, timeout=self._timeout)
        except grpc.RpcError as error:
            raise tracker_error(self.address, error) from None
        return Registration(reply.peer_id, reply.token, float(reply.heartbeat_interval_seconds))

    def search(self, name: str, *, asker: str = "") -> list[Source]:
        """Every peer sharing a file named exactly `name` (an empty list when none)."""
        return self._search(tracker_pb2.SearchRequest(name=name, peer_id=asker))

    def query(self, words: str, *, limit: int = 0, asker: str = "") -> list[Source]:
        """Every (peer, file) whose file name holds all the `words`, ignoring case."""
        return self._search(tracker_pb2.SearchRequest(query=words, limit=limit, peer_id=asker))

    def update(self, registration: Registration, files: Iterable[SharedFile]) -> None:
        """Add or refresh files in this peer's registration."""
        request = tracker_pb2.UpdateRequest(
            peer_id=registration.peer_id, token=registration.token, files=_infos(files)
        )
        try:
            self._stub.Update(request, timeout=self._timeout)
        except grpc.RpcError as error:
            raise tracker_error(self.address, error) from None

    def heartbeat(self, registration: Registration) -> None:
        """Renew this peer's lease."""
        request = tracker_pb2.HeartbeatRequest(
            peer_id=registration.peer_id, token=registration.token
        )
        try:
            self._stub.Heartbeat(request, timeout=self._timeout)
        except grpc.RpcError as error:
            raise tracker_error(self.address, error) from None

    def leave(self, registration: Registration) -> None:
        """Remove this peer and its files from the index."""
        request = tracker_pb2.LeaveRequest(peer_id=registration.peer_id, token=registration.token)
        try:
            self._stub.Leave(request, timeout=self._timeout)
        except grpc.RpcError as error:
            raise tracker_error(self.address, error) from None

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def _search(self, request: tracker_pb2.SearchRequest) -> list[Source]:
        try:
            reply = self._stub.Search(request, timeout=self._timeout)
        except grpc.RpcError as error:
            raise tracker_error(self.address, error) from None
        return [Source(r.peer_id, r.file.name, r.file.size, r.file.sha256) for r in reply.results]
