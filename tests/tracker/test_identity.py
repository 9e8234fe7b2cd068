"""Join's proof of identity and the rules of who may hold an address, on a real tracker."""

import socket
import threading
import time

import grpc
import pytest
from napshare.common import reasons
from napshare.common.identity import PEER_NAME, TRACKER_NAME, make_identity
from napshare.common.tls import pinned_channel
from napshare.peer.tracker_client import sign_join
from napshare.tracker.errors import ChecksBusyError
from napshare.tracker.index import TrackerIndex
from napshare.tracker.reachability import AddressCheck
from napshare.tracker.server import create_server
from napshare.v1 import tracker_pb2, tracker_pb2_grpc

PEER = make_identity(PEER_NAME)
OTHER = make_identity(PEER_NAME)


@pytest.fixture
def tls_tracker():
    identity = make_identity(TRACKER_NAME)
    server, port = create_server(host="127.0.0.1", port=0, tls=identity)
    channel = pinned_channel(f"127.0.0.1:{port}", identity.certificate_pem)
    yield identity, tracker_pb2_grpc.TrackerServiceStub(channel)
    channel.close()
    server.stop(None)


def signed(tracker_id, identity, port=8776, *, signed_at=None, host="127.0.0.1", **fields):
    request = sign_join(
        tracker_pb2.JoinRequest(host=host, port=port), identity, tracker_id, signed_at=signed_at
    )
    for name, value in fields.items():
        setattr(request, name, value)
    return request


def test_a_signed_join_owns_its_address_and_the_same_identity_replaces_it(tls_tracker):
    tracker, stub = tls_tracker
    first = stub.Join(signed(tracker.fingerprint, PEER))
    assert first.reachable is False  # nothing answers on 127.0.0.1:8776
    again = stub.Join(signed(tracker.fingerprint, PEER))
    assert again.token != first.token
    with pytest.raises(grpc.RpcError) as caught:
        stub.Heartbeat(tracker_pb2.HeartbeatRequest(peer_id=first.peer_id, token=first.token))
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("intruder", ["other identity", "anonymous"])
def test_another_identity_is_refused_and_the_registration_stays(tls_tracker, rpc_details, intruder):
    tracker, stub = tls_tracker
    owner = stub.Join(signed(tracker.fingerprint, PEER))
    request = (
        signed(tracker.fingerprint, OTHER)
        if intruder == "other identity"
        else tracker_pb2.JoinRequest(host="127.0.0.1", port=8776)
    )
    with pytest.raises(grpc.RpcError) as caught:
        stub.Join(request)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert rpc_details(caught.value)[0].reason == reasons.ADDRESS_TAKEN
    stub.Heartbeat(tracker_pb2.HeartbeatRequest(peer_id=owner.peer_id, token=owner.token))


def test_an_anonymous_registration_is_not_taken_by_an_identity_either(tls_tracker):
    tracker, stub = tls_tracker
    stub.Join(tracker_pb2.JoinRequest(host="127.0.0.1", port=8776))
    with pytest.raises(grpc.RpcError) as caught:
        stub.Join(signed(tracker.fingerprint, PEER))
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("how", "code", "reason"),
    [
        ("for another tracker", "UNAUTHENTICATED", reasons.JOIN_SIGNATURE_INVALID),
        ("stale", "UNAUTHENTICATED", reasons.JOIN_SIGNATURE_INVALID),
        ("another port", "UNAUTHENTICATED", reasons.JOIN_SIGNATURE_INVALID),
        ("another key's signature", "UNAUTHENTICATED", reasons.JOIN_SIGNATURE_INVALID),
        ("no certificate bytes", "INVALID_ARGUMENT", reasons.CERTIFICATE_INVALID),
        ("a huge certificate", "INVALID_ARGUMENT", reasons.CERTIFICATE_INVALID),
    ],
)
def test_a_join_that_does_not_prove_its_identity_is_refused(
    tls_tracker, rpc_details, how, code, reason
):
    tracker, stub = tls_tracker
    request = {
        "for another tracker": lambda: signed("ab" * 32, PEER),
        "stale": lambda: signed(tracker.fingerprint, PEER, signed_at=int(time.time()) - 3600),
        "another port": lambda: signed(tracker.fingerprint, PEER, port=9998, host="127.0.0.1"),
        "another key's signature": lambda: signed(
            tracker.fingerprint, PEER, signature=OTHER.sign(b"x")
        ),
        "no certificate bytes": lambda: signed(tracker.fingerprint, PEER, certificate=b"junk"),
        "a huge certificate": lambda: signed(
            tracker.fingerprint, PEER, certificate=b"\x30" * 2_100
        ),
    }[how]()
    if how == "another port":
        request.port = 9999  # signed for 9998
    with pytest.raises(grpc.RpcError) as caught:
        stub.Join(request)
    assert caught.value.code() is getattr(grpc.StatusCode, code)
    assert rpc_details(caught.value)[0].reason == reason


def test_a_plain_text_tracker_takes_joins_signed_for_no_tracker():
    server, port = create_server(TrackerIndex(), host="127.0.0.1", port=0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = tracker_pb2_grpc.TrackerServiceStub(channel)
            assert stub.Join(signed("", PEER)).peer_id == "127.0.0.1:8776"
    finally:
        server.stop(None)


def test_connect_back_checks_are_bounded_in_number():
    check = AddressCheck(tls=True, timeout=0.2, max_checks=1)
    assert check._slots.acquire(timeout=1)  # one check running, say towards a slow address
    try:
        with pytest.raises(ChecksBusyError):
            check.reachable("127.0.0.1:9", PEER.certificate_der)
    finally:
        check._slots.release()
    assert check.reachable("127.0.0.1:9", PEER.certificate_der) is False  # nothing there


def test_one_source_gets_only_its_share_of_the_connect_back_checks():
    # A port that accepts and never answers: a check of it runs until its deadline.
    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    check = AddressCheck(tls=True, timeout=1.0, max_checks=8, max_per_source=1)
    running = threading.Thread(
        target=check.reachable, args=(f"127.0.0.1:{port}", PEER.certificate_der, "192.0.2.1")
    )
    running.start()
    try:
        while "192.0.2.0/24" not in check._by_source:
            time.sleep(0.01)
        with pytest.raises(ChecksBusyError, match=r"from 192\.0\.2\.0/24"):
            check.reachable("127.0.0.1:9", PEER.certificate_der, "192.0.2.7")
        # Another network still gets a slot: nothing answers there, so not reachable.
        assert check.reachable("127.0.0.1:9", PEER.certificate_der, "198.51.100.2") is False
    finally:
        running.join()
        silent.close()
    assert check._by_source == {}
