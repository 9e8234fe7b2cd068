"""Listen and Connect on a real tracker: the stream's life (started, keepalives, replaced,
left, expired, the tracker stopping) and Connect's answers and errors over gRPC.
"""

import grpc
import pytest
from napshare.common import reasons
from napshare.common.identity import PEER_NAME, make_identity
from napshare.tracker.index import TrackerIndex
from napshare.tracker.server import create_server
from napshare.tracker.switchboard import Switchboard
from napshare.v1 import tracker_pb2, tracker_pb2_grpc

from tests.support.reach import ListenStream, signed_join
from tests.support.waiting import wait_until

PEER = make_identity(PEER_NAME)
REVERSE = tracker_pb2.CONNECT_PATH_REVERSE


@pytest.fixture
def reach_tracker():
    """A plain text tracker with 1 s keepalives: its index, switchboard, a stub, its address."""
    board = Switchboard()
    index = TrackerIndex(30)
    server, port = create_server(
        index, host="127.0.0.1", port=0, switchboard=board, listen_keepalive=1.0
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield index, board, tracker_pb2_grpc.TrackerServiceStub(channel), f"127.0.0.1:{port}"
    channel.close()
    server.stop(None)


def joined(stub, info, port=8776, **fields):
    return stub.Join(signed_join(PEER, port, info("a.mp4"), **fields))


def ended_with(stream, code, reason, rpc_details):
    item = stream.next()
    while isinstance(item, tracker_pb2.ListenResponse):
        item = stream.next()
    assert isinstance(item, grpc.RpcError), f"the stream ended with {item}"
    assert item.code() is code
    assert rpc_details(item)[0].reason == reason


def test_a_listen_stream_starts_then_carries_keepalives(reach_tracker, info):
    _, board, stub, _ = reach_tracker
    reply = joined(stub, info)
    stream = ListenStream(stub, reply.peer_id, reply.token)
    try:
        first = stream.next()
        assert first.WhichOneof("event") == "started"
        assert first.started.keepalive_seconds == 1
        assert stream.next().WhichOneof("event") == "keepalive"
        assert len(board) == 1
    finally:
        stream.cancel()


def test_connect_reverse_reaches_the_listening_peer_with_the_callers_address(reach_tracker, info):
    _, _, stub, _ = reach_tracker
    reply = joined(stub, info)
    stream = ListenStream(stub, reply.peer_id, reply.token)
    try:
        stream.next()  # started
        answer = stub.Connect(
            tracker_pb2.ConnectRequest(peer_id=reply.peer_id, path=REVERSE, reverse_port=4242)
        )
        dial = stream.event().reverse_dial
        assert dial.address == "127.0.0.1:4242"
        assert (dial.session, dial.secret) == (answer.session, answer.secret)
        assert answer.dialing
    finally:
        stream.cancel()


def test_a_caller_whose_own_address_is_not_the_one_seen_is_behind_a_nat_and_nobody_dials_it(
    reach_tracker, info
):
    _, _, stub, _ = reach_tracker
    reply = joined(stub, info)
    stream = ListenStream(stub, reply.peer_id, reply.token)
    try:
        stream.next()  # started
        behind = stub.Connect(
            tracker_pb2.ConnectRequest(
                peer_id=reply.peer_id, path=REVERSE, reverse_port=4242, caller_ip="192.168.1.9"
            )
        )
        assert behind.caller_behind_nat
        assert not behind.dialing
        assert not behind.session
        # The next event the peer gets is the dial of a caller whose own address is the one
        # seen: the one behind a NAT was never sent.
        direct = stub.Connect(
            tracker_pb2.ConnectRequest(
                peer_id=reply.peer_id, path=REVERSE, reverse_port=4343, caller_ip="127.0.0.1"
            )
        )
        assert direct.dialing
        assert not direct.caller_behind_nat
        assert stream.event().reverse_dial.address == "127.0.0.1:4343"
    finally:
        stream.cancel()


def test_a_caller_on_the_peers_address_gets_its_local_addresses_without_a_stream(
    reach_tracker, info
):
    _, _, stub, _ = reach_tracker
    reply = joined(stub, info, local_addresses=("192.168.1.20:8776",))
    answer = stub.Connect(
        tracker_pb2.ConnectRequest(peer_id=reply.peer_id, path=REVERSE, reverse_port=4242)
    )
    assert list(answer.local_addresses) == ["192.168.1.20:8776"]
    assert not answer.dialing


@pytest.mark.parametrize(
    ("request_fields", "expected"),
    [
        ({"path": REVERSE, "reverse_port": 1}, ("FAILED_PRECONDITION", "PEER_NOT_LISTENING")),
        ({"path": 0}, ("INVALID_ARGUMENT", "CONNECT_PATH_INVALID")),
        ({"path": REVERSE}, ("INVALID_ARGUMENT", "ADDRESS_INVALID")),
        (
            {"path": REVERSE, "reverse_port": 1, "caller_ip": "home"},
            ("INVALID_ARGUMENT", "ADDRESS_INVALID"),
        ),
        ({"path": tracker_pb2.CONNECT_PATH_RELAY}, ("UNAVAILABLE", "RELAY_UNAVAILABLE")),
        (
            {"peer_id": "127.0.0.1:1", "path": REVERSE, "reverse_port": 1},
            ("NOT_FOUND", "PEER_NOT_REGISTERED"),
        ),
        (
            {"peer_id": "x", "path": REVERSE, "reverse_port": 1},
            ("INVALID_ARGUMENT", "PEER_ID_INVALID"),
        ),
    ],
)
def test_connect_errors_carry_their_code_and_reason(
    reach_tracker, info, rpc_details, request_fields, expected
):
    code, reason = expected
    _, _, stub, _ = reach_tracker
    reply = joined(stub, info)
    request = tracker_pb2.ConnectRequest(peer_id=reply.peer_id)
    for name, value in request_fields.items():
        setattr(request, name, value)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Connect(request)
    assert caught.value.code() is getattr(grpc.StatusCode, code)
    assert rpc_details(caught.value)[0].reason == reason


def test_connect_to_an_anonymous_peer_is_refused(reach_tracker, info, rpc_details):
    _, _, stub, _ = reach_tracker
    reply = stub.Join(tracker_pb2.JoinRequest(host="127.0.0.1", port=9, files=[info("a.mp4")]))
    with pytest.raises(grpc.RpcError) as caught:
        stub.Connect(
            tracker_pb2.ConnectRequest(peer_id=reply.peer_id, path=REVERSE, reverse_port=1)
        )
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert rpc_details(caught.value)[0].reason == reasons.PEER_ANONYMOUS


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("bad token", ("UNAUTHENTICATED", reasons.TOKEN_MISMATCH)),
        ("unknown peer", ("NOT_FOUND", reasons.PEER_NOT_REGISTERED)),
        ("malformed peer id", ("INVALID_ARGUMENT", reasons.PEER_ID_INVALID)),
    ],
)
def test_listen_refuses_who_does_not_prove_its_registration(
    reach_tracker, info, rpc_details, how, expected
):
    code, reason = expected
    _, board, stub, _ = reach_tracker
    reply = joined(stub, info)
    peer_id, token = {
        "bad token": (reply.peer_id, "0" * 32),
        "unknown peer": ("127.0.0.1:1", reply.token),
        "malformed peer id": ("nowhere", reply.token),
    }[how]
    stream = ListenStream(stub, peer_id, token)
    ended_with(stream, getattr(grpc.StatusCode, code), reason, rpc_details)
    assert len(board) == 0


def test_listen_answers_bytes_that_are_no_request_as_malformed(reach_tracker, rpc_details):
    *_, address = reach_tracker
    with grpc.insecure_channel(address) as channel:
        raw = channel.unary_stream("/napshare.v1.TrackerService/Listen")
        with pytest.raises(grpc.RpcError) as caught:
            list(raw(b"\xff\xff\xff"))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_details(caught.value)[0].reason == reasons.REQUEST_MALFORMED


def test_a_newer_listen_ends_the_older_with_listen_replaced(reach_tracker, info, rpc_details):
    _, board, stub, _ = reach_tracker
    reply = joined(stub, info)
    old = ListenStream(stub, reply.peer_id, reply.token)
    old.next()
    new = ListenStream(stub, reply.peer_id, reply.token)
    try:
        new.next()
        ended_with(old, grpc.StatusCode.ABORTED, reasons.LISTEN_REPLACED, rpc_details)
        stub.Connect(
            tracker_pb2.ConnectRequest(peer_id=reply.peer_id, path=REVERSE, reverse_port=7)
        )
        assert new.event().reverse_dial.address == "127.0.0.1:7"
        assert len(board) == 1
    finally:
        new.cancel()


def test_leaving_ends_the_stream_with_not_found(reach_tracker, info, rpc_details):
    _, board, stub, _ = reach_tracker
    reply = joined(stub, info)
    stream = ListenStream(stub, reply.peer_id, reply.token)
    stream.next()
    stub.Leave(tracker_pb2.LeaveRequest(peer_id=reply.peer_id, token=reply.token))
    ended_with(stream, grpc.StatusCode.NOT_FOUND, reasons.PEER_NOT_REGISTERED, rpc_details)
    assert len(board) == 0


def test_a_stream_whose_registration_was_replaced_ends_at_its_next_keepalive(
    reach_tracker, info, rpc_details
):
    _, _, stub, _ = reach_tracker
    first = joined(stub, info)
    stream = ListenStream(stub, first.peer_id, first.token)
    stream.next()
    joined(stub, info)  # the same peer joins again: the old token stops working
    ended_with(stream, grpc.StatusCode.UNAUTHENTICATED, reasons.TOKEN_MISMATCH, rpc_details)


def test_closing_the_switchboard_ends_every_stream_at_once(reach_tracker, info):
    _, board, stub, _ = reach_tracker
    reply = joined(stub, info)
    stream = ListenStream(stub, reply.peer_id, reply.token)
    stream.next()
    board.close()
    item = stream.next()
    while isinstance(item, tracker_pb2.ListenResponse):
        item = stream.next()
    assert item is None  # an OK end: the peer opens it again, elsewhere or later


def test_a_cancelled_stream_leaves_the_switchboard(reach_tracker, info):
    _, board, stub, _ = reach_tracker
    reply = joined(stub, info)
    stream = ListenStream(stub, reply.peer_id, reply.token)
    stream.next()
    stream.cancel()
    wait_until(lambda: len(board) == 0)
