"""A signed Join copied off a plain text connection: sent again, or with other files, it is
refused, at the tracker that saw it and at its replicas; the victim's registration stands.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import grpc
import pytest
from napshare.common import reasons
from napshare.common.identity import PEER_NAME, make_identity
from napshare.peer.folder.store import SharedFile
from napshare.peer.tracker_client import TrackerClient
from napshare.tracker.server import create_server
from napshare.tracker.store.redis_store import RedisStore
from napshare.v1 import file_info_pb2, tracker_pb2, tracker_pb2_grpc

from tests.support.capture import RecordingProxy
from tests.support.redis import shared_server, store_url
from tests.support.rpc import rpc_details

REAL = SharedFile("lecture.mp4", 5, hashlib.sha256(b"real").hexdigest(), 0)
FAKE = file_info_pb2.FileInfo(
    name="lecture.mp4", size=5, sha256=hashlib.sha256(b"evil").hexdigest()
)


def _stub(port: int) -> tuple[grpc.Channel, tracker_pb2_grpc.TrackerServiceStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return channel, tracker_pb2_grpc.TrackerServiceStub(channel)


@pytest.fixture
def trackers() -> Iterator[Callable[..., int]]:
    """start(index=None): a plain text tracker on 127.0.0.1; its port."""
    servers: list[grpc.Server] = []

    def start(index: object = None) -> int:
        server, port = create_server(index, host="127.0.0.1", port=0)  # type: ignore[arg-type]
        servers.append(server)
        return port

    yield start
    for server in servers:
        server.stop(None)


def _captured_join(port: int) -> tuple[tracker_pb2.JoinRequest, TrackerClient, object]:
    """A victim's Join, sent through a proxy that records it as anyone on the path can; the
    captured request, the victim's client (through the proxy) and its registration.
    """
    proxy = RecordingProxy(("127.0.0.1", port))
    victim = TrackerClient(proxy.address)
    registration = victim.join("127.0.0.1", 8776, [REAL], identity=make_identity(PEER_NAME))
    captured = tracker_pb2.JoinRequest.FromString(proxy.messages()[0])
    assert captured.certificate
    assert captured.files[0].name == "lecture.mp4"
    return captured, victim, registration


def _refused(stub: tracker_pb2_grpc.TrackerServiceStub, request: tracker_pb2.JoinRequest) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        stub.Join(request)
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    return rpc_details(caught.value)[0].reason


def test_a_join_copied_off_the_wire_is_refused_and_the_victims_listing_stands(
    trackers: Callable[..., int],
) -> None:
    port = trackers()
    captured, victim, registration = _captured_join(port)
    channel, stub = _stub(port)
    try:
        assert _refused(stub, captured) == reasons.JOIN_REPLAYED
        forged = tracker_pb2.JoinRequest()
        forged.CopyFrom(captured)
        del forged.files[:]
        forged.files.append(FAKE)
        assert _refused(stub, forged) == reasons.JOIN_SIGNATURE_INVALID
        victim.heartbeat(registration)  # type: ignore[arg-type] # its token still works
        found = victim.search("lecture.mp4")
        assert [(s.peer, s.sha256) for s in found] == [("127.0.0.1:8776", REAL.sha256)]
    finally:
        channel.close()
        victim.close()


def test_replicas_on_one_store_refuse_a_join_another_took(
    trackers: Callable[..., int],
) -> None:
    url = store_url(shared_server())
    first, second = RedisStore(url), RedisStore(url)
    try:
        captured, victim, _ = _captured_join(trackers(first))
        channel, stub = _stub(trackers(second))
        try:
            assert _refused(stub, captured) == reasons.JOIN_REPLAYED
        finally:
            channel.close()
            victim.close()
    finally:
        first.forget()
        first.close()
        second.close()
