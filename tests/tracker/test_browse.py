"""Browse over gRPC: a peer's files as the index holds them, paged, with each error's reason."""

import grpc
import pytest
from napshare.v1 import tracker_pb2

TREE = [
    "curso/semana1/aula1.mp4",
    "curso/semana1/aula2.mp4",
    "curso/semana2/aula1.mp4",
    "notas.txt",
]


@pytest.fixture
def joined(tracker, info):
    """A tracker where a peer shares TREE; (tracker, its peer id)."""
    reply = tracker.stub.Join(
        tracker_pb2.JoinRequest(host="127.0.0.1", port=8776, files=[info(n) for n in TREE])
    )
    return tracker, reply.peer_id


def browse(tracker, **fields):
    return tracker.stub.Browse(tracker_pb2.BrowseRequest(**fields), timeout=10)


def test_browse_lists_the_peers_tree_page_by_page(joined, info):
    tracker, peer_id = joined
    pages, token = [], ""
    while True:
        reply = browse(tracker, peer_id=peer_id, page_size=3, page_token=token)
        pages.append([(f.name, f.size, f.sha256) for f in reply.files])
        token = reply.next_page_token
        if not token:
            break

    assert pages == [
        [(n, 1000, info(n).sha256) for n in TREE[:3]],
        [(n, 1000, info(n).sha256) for n in TREE[3:]],
    ]
    assert (reply.reachable, reply.certificate) == (False, b"")  # an anonymous Join


def test_browse_of_a_folder(joined):
    tracker, peer_id = joined

    week = browse(tracker, peer_id=peer_id, folder="curso/semana1/")
    course = browse(tracker, peer_id=peer_id, folder="curso")
    nothing = browse(tracker, peer_id=peer_id, folder="curso/semana3")

    assert [f.name for f in week.files] == TREE[:2]
    assert [f.name for f in course.files] == TREE[:3]
    assert (list(nothing.files), nothing.next_page_token) == ([], "")


INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"peer_id": "127.0.0.1:9"}, (grpc.StatusCode.NOT_FOUND, "PEER_NOT_REGISTERED", None)),
        ({"peer_id": "no port"}, (INVALID, "PEER_ID_INVALID", "peer_id")),
        ({"folder": "../"}, (INVALID, "NAME_INVALID", "folder")),
        ({"folder": "/etc"}, (INVALID, "NAME_INVALID", "folder")),
        ({"folder": "a//"}, (INVALID, "NAME_INVALID", "folder")),
        ({"page_token": "nope"}, (INVALID, "PAGE_TOKEN_INVALID", "page_token")),
    ],
)
def test_a_bad_browse_says_why(joined, rpc_details, fields, expected):
    tracker, peer_id = joined
    request = {"peer_id": peer_id, **fields}

    with pytest.raises(grpc.RpcError) as raised:
        browse(tracker, **request)

    info, _ = rpc_details(raised.value)
    assert (raised.value.code(), info.reason, info.metadata.get("field")) == expected


def test_bytes_that_are_no_browse_request_are_refused(joined, rpc_details):
    tracker, _ = joined
    call = tracker.channel.unary_unary("/napshare.v1.TrackerService/Browse")

    with pytest.raises(grpc.RpcError) as raised:
        call(b"\xff\xff\xff", timeout=10)

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_details(raised.value)[0].reason == "REQUEST_MALFORMED"


def test_a_peer_that_left_cannot_be_browsed(joined):
    tracker, peer_id = joined
    reply = tracker.stub.Join(tracker_pb2.JoinRequest(host="127.0.0.1", port=8777))
    tracker.stub.Leave(tracker_pb2.LeaveRequest(peer_id=reply.peer_id, token=reply.token))

    with pytest.raises(grpc.RpcError) as raised:
        browse(tracker, peer_id=reply.peer_id)

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert [f.name for f in browse(tracker, peer_id=peer_id).files] == TREE
