"""What the index keeps for reaching peers: reachability in search results, local addresses,
and the contact and token checks that Listen and Connect use.
"""

import grpc
import pytest
from napshare.common import reasons
from napshare.common.identity import PEER_NAME, make_identity
from napshare.peer.folder.store import SharedFolder
from napshare.peer.serving.server import create_server as create_peer_server
from napshare.peer.tracker_client import sign_join
from napshare.tracker.errors import InvalidRequestError, UnauthenticatedError, UnknownPeerError
from napshare.tracker.index import FileEntry, TrackerIndex
from napshare.v1 import tracker_pb2

PEER = make_identity(PEER_NAME)
ENTRY = FileEntry("a.mp4", 1, "ab" * 32)


def signed_join(port, *files, local_addresses=()):
    """A Join of PEER at 127.0.0.1:port, signed for a plain text tracker."""
    request = tracker_pb2.JoinRequest(
        host="127.0.0.1", port=port, files=list(files), local_addresses=list(local_addresses)
    )
    return sign_join(request, PEER, "")


def test_search_results_say_whether_the_tracker_reached_the_peer(tracker, info, tmp_path):
    server, port = create_peer_server(SharedFolder(tmp_path), host="127.0.0.1", port=0)
    try:
        assert tracker.stub.Join(signed_join(port, info("a.mp4"))).reachable
        results = tracker.stub.Search(tracker_pb2.SearchRequest(name="a.mp4")).results
        assert [r.reachable for r in results] == [True]
    finally:
        server.stop(None).wait()
    # Nothing answers there any more: the same peer joining again is not reachable.
    assert not tracker.stub.Join(signed_join(port, info("a.mp4"))).reachable
    results = tracker.stub.Search(tracker_pb2.SearchRequest(name="a.mp4")).results
    assert [r.reachable for r in results] == [False]
    tracker.stub.Join(tracker_pb2.JoinRequest(host="127.0.0.1", port=1, files=[info("c.mp4")]))
    anonymous = tracker.stub.Search(tracker_pb2.SearchRequest(name="c.mp4")).results
    assert [r.reachable for r in anonymous] == [False]


def test_a_join_keeps_its_local_addresses_in_normal_form(tracker, info):
    request = signed_join(
        8776, info("a.mp4"), local_addresses=["192.168.1.20:8776", "[fe80:0::1]:8776"]
    )
    reply = tracker.stub.Join(request)
    contact = tracker.index.contact(reply.peer_id)
    assert contact.local_addresses == ("192.168.1.20:8776", "[fe80::1]:8776")
    assert contact.source == "127.0.0.1"
    assert contact.identity == PEER.fingerprint
    assert contact.token == reply.token
    assert not contact.reachable


@pytest.mark.parametrize(
    ("addresses", "field"),
    [
        (["printer.local:631"], "local_addresses[0]"),
        (["192.168.1.20:8776", "192.168.1.20"], "local_addresses[1]"),
        (["192.168.1.20:0"], "local_addresses[0]"),
        (["0.0.0.0:8776"], "local_addresses[0]"),
        (["224.0.0.1:8776"], "local_addresses[0]"),
        ([f"10.0.0.{n}:8776" for n in range(9)], "local_addresses"),
    ],
)
def test_a_join_with_bad_local_addresses_is_refused(tracker, info, rpc_details, addresses, field):
    with pytest.raises(grpc.RpcError) as caught:
        tracker.stub.Join(signed_join(8776, info("a.mp4"), local_addresses=addresses))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    details = rpc_details(caught.value)[0]
    assert details.reason == reasons.ADDRESS_INVALID
    assert details.metadata["field"] == field
    assert tracker.index.stats().peers == 0


def test_verify_checks_the_token_without_renewing_the_lease():
    now = [0.0]
    index = TrackerIndex(10, clock=lambda: now[0])
    registration = index.join("10.0.0.1", 8776, [ENTRY])
    now[0] = 29.0
    index.verify(registration.peer_id, registration.token)
    with pytest.raises(UnauthenticatedError):
        index.verify(registration.peer_id, "0" * 32)
    with pytest.raises(InvalidRequestError):
        index.verify("not an address", registration.token)
    now[0] = 30.0  # three intervals after the Join: verify renewed nothing
    with pytest.raises(UnknownPeerError):
        index.verify(registration.peer_id, registration.token)
    with pytest.raises(UnknownPeerError):
        index.contact(registration.peer_id)


def test_contact_of_a_peer_that_joined_again_carries_the_new_token():
    index = TrackerIndex()
    first = index.join("10.0.0.1", 8776, [ENTRY], "198.51.100.7", local_addresses=("10.0.0.1:1",))
    second = index.join("10.0.0.1", 8776, [ENTRY], "198.51.100.7")
    contact = index.contact("10.0.0.1:8776")
    assert contact.token == second.token != first.token
    assert contact.local_addresses == ()
    assert contact.source == "198.51.100.7"
