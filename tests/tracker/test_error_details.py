"""Every tracker error carries a google.rpc.Status with an ErrorInfo of its documented reason."""

import grpc
import pytest
from napshare.tracker.index import TrackerIndex
from napshare.v1 import file_info_pb2, tracker_pb2

MAX_FILES = 3


def fails(call, request):
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=30)
    return raised.value


@pytest.fixture
def error_info(rpc_details):
    return lambda error: rpc_details(error)[0]


@pytest.fixture
def small(make_tracker, info):
    """A tracker allowing MAX_FILES files a peer, and a registration that has them all."""
    tracker = make_tracker(TrackerIndex(max_files=MAX_FILES))
    files = [info(f"f{n}.mp4") for n in range(MAX_FILES)]
    joined = tracker.stub.Join(tracker_pb2.JoinRequest(host="127.0.0.1", port=8776, files=files))
    return tracker, joined


BAD_SHA = file_info_pb2.FileInfo(name="x.mp4", size=1, sha256="A" * 64)


def test_bad_file_names_and_digests_say_which_field(small, info, error_info):
    tracker, _ = small
    bad_name = fails(
        tracker.stub.Join,
        tracker_pb2.JoinRequest(host="127.0.0.1", port=8777, files=[info("ok"), info("../x")]),
    )
    bad_sha = fails(
        tracker.stub.Join, tracker_pb2.JoinRequest(host="127.0.0.1", port=8777, files=[BAD_SHA])
    )
    bad_search = fails(tracker.stub.Search, tracker_pb2.SearchRequest(name="a/../b"))

    assert bad_name.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(bad_name).reason == "NAME_INVALID"
    assert error_info(bad_name).metadata["field"] == "files[1].name"
    assert error_info(bad_sha).reason == "SHA256_INVALID"
    assert error_info(bad_sha).metadata["field"] == "files[0].sha256"
    assert error_info(bad_search).reason == "NAME_INVALID"
    assert error_info(bad_search).metadata["field"] == "name"


def test_a_wrong_token_is_token_mismatch(small, error_info):
    tracker, joined = small
    error = fails(
        tracker.stub.Heartbeat,
        tracker_pb2.HeartbeatRequest(peer_id=joined.peer_id, token="0" * 32),
    )

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_info(error).reason == "TOKEN_MISMATCH"


@pytest.mark.parametrize("method", ["Update", "Heartbeat", "Leave"])
def test_an_unknown_peer_is_peer_not_registered(small, method, error_info):
    tracker, joined = small
    request = getattr(tracker_pb2, f"{method}Request")(peer_id="127.0.0.1:9", token=joined.token)
    error = fails(getattr(tracker.stub, method), request)

    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(error).reason == "PEER_NOT_REGISTERED"


def test_a_malformed_peer_id_is_peer_id_invalid(small, error_info):
    tracker, joined = small
    error = fails(
        tracker.stub.Heartbeat, tracker_pb2.HeartbeatRequest(peer_id="nope", token=joined.token)
    )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).reason == "PEER_ID_INVALID"
    assert error_info(error).metadata["field"] == "peer_id"


def test_too_big_registrations(small, info, error_info):
    tracker, joined = small
    too_many = fails(
        tracker.stub.Join,
        tracker_pb2.JoinRequest(
            host="127.0.0.1", port=8777, files=[info(f"g{n}") for n in range(MAX_FILES + 1)]
        ),
    )
    grown = fails(
        tracker.stub.Update,
        tracker_pb2.UpdateRequest(
            peer_id=joined.peer_id, token=joined.token, files=[info("one-more.mp4")]
        ),
    )

    assert too_many.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(too_many).reason == "TOO_MANY_FILES"
    assert error_info(too_many).metadata["limit"] == str(MAX_FILES)
    assert grown.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_info(grown).reason == "FILE_LIMIT_REACHED"
    assert error_info(grown).metadata["limit"] == str(MAX_FILES)


SEARCHES = {
    "neither": (tracker_pb2.SearchRequest(), "NAME_OR_QUERY_REQUIRED"),
    "both": (tracker_pb2.SearchRequest(name="a", query="a"), "NAME_OR_QUERY_REQUIRED"),
    "no word": (tracker_pb2.SearchRequest(query=" \t\n "), "QUERY_EMPTY"),
    "bad token": (tracker_pb2.SearchRequest(query="f0", page_token="%%%"), "PAGE_TOKEN_INVALID"),
}


@pytest.mark.parametrize(("request_", "reason"), SEARCHES.values(), ids=SEARCHES.keys())
def test_bad_searches(small, request_, reason, error_info):
    tracker, _ = small
    error = fails(tracker.stub.Search, request_)

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).reason == reason


def test_a_page_token_of_another_search_is_page_token_mismatch(small, error_info):
    tracker, _ = small
    first = tracker.stub.Search(tracker_pb2.SearchRequest(query="f", page_size=1), timeout=30)
    assert first.next_page_token
    error = fails(
        tracker.stub.Search,
        tracker_pb2.SearchRequest(query="mp4", page_token=first.next_page_token),
    )

    assert error_info(error).reason == "PAGE_TOKEN_MISMATCH"
    assert error_info(error).metadata["field"] == "page_token"


def test_search_bytes_that_do_not_decode_are_request_malformed(small, error_info):
    tracker, _ = small
    with grpc.insecure_channel(tracker.address) as channel:
        call = channel.unary_unary("/napshare.v1.TrackerService/Search", None, None)
        error = fails(call, b"\xff\xff\xff")

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).reason == "REQUEST_MALFORMED"


def test_a_huge_bad_name_still_gets_its_reason(small, info, error_info):
    tracker, joined = small
    huge = "/" + "a" * 20_000  # the message must not carry it: it would overflow the metadata
    for call, request in (
        (tracker.stub.Search, tracker_pb2.SearchRequest(name=huge)),
        (
            tracker.stub.Update,
            tracker_pb2.UpdateRequest(
                peer_id=joined.peer_id, token=joined.token, removed_names=[huge]
            ),
        ),
        (
            tracker.stub.Join,
            tracker_pb2.JoinRequest(host="127.0.0.1", port=8778, files=[info(huge)]),
        ),
    ):
        error = fails(call, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(error).reason == "NAME_INVALID"
        assert len(error.details()) < 400
