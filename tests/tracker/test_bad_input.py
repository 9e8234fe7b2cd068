"""Every bad request gets its status code and a useful message, and changes nothing."""

import grpc
import pytest
from napshare.v1 import file_info_pb2, tracker_pb2

INVALID = grpc.StatusCode.INVALID_ARGUMENT
GOOD_SHA = "a" * 64


def bad_file(name="ok.mp4", size=1, sha256=GOOD_SHA):
    return file_info_pb2.FileInfo(name=name, size=size, sha256=sha256)


BAD_FILES = {
    "empty name": bad_file(name=""),
    "slash": bad_file(name="../x.mp4"),
    "climbing": bad_file(name="a/../../x.mp4"),
    "absolute": bad_file(name="/etc/passwd"),
    "empty segment": bad_file(name="a//b.mp4"),
    "trailing slash": bad_file(name="a/"),
    "backslash": bad_file(name="a\\b.mp4"),
    "nul": bad_file(name="a\x00b"),
    "newline": bad_file(name="a\nb"),
    "dot": bad_file(name="."),
    "dot dot": bad_file(name=".."),
    "256 bytes": bad_file(name="é" * 128),
    "state folder": bad_file(name=".napshare/identity/key.pem"),
    "too deep": bad_file(name="/".join(["d"] * 33)),
    "negative size": bad_file(size=-1),
    "empty sha256": bad_file(sha256=""),
    "short sha256": bad_file(sha256="a" * 63),
    "upper-case sha256": bad_file(sha256="A" * 64),
    "non-hex sha256": bad_file(sha256="g" * 64),
}


@pytest.fixture
def populated(tracker, info):
    """A tracker with two peers; returns (tracker, registration of peer A)."""
    a = tracker.stub.Join(
        tracker_pb2.JoinRequest(host="127.0.0.1", port=8776, files=[info("aula1.mp4")])
    )
    tracker.stub.Join(
        tracker_pb2.JoinRequest(host="127.0.0.1", port=8777, files=[info("aula2.mp4")])
    )
    return tracker, a


def expect(code, call, request, *words):
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=30)
    assert raised.value.code() == code, raised.value.details()
    details = raised.value.details()
    assert details
    for word in words:
        assert word in details


def assert_still_serving(tracker, before):
    assert tracker.index.snapshot() == before
    answer = tracker.stub.Search(tracker_pb2.SearchRequest(query="aula"), timeout=10)
    assert [r.peer_id for r in answer.results] == ["127.0.0.1:8776", "127.0.0.1:8777"]


@pytest.mark.parametrize("file", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_join_with_a_bad_file(populated, info, file):
    tracker, _ = populated
    before = tracker.index.snapshot()
    request = tracker_pb2.JoinRequest(host="127.0.0.1", port=8776, files=[info("fine.mp4"), file])

    expect(INVALID, tracker.stub.Join, request, "files[1]")

    assert_still_serving(tracker, before)


@pytest.mark.parametrize("file", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_update_with_a_bad_file(populated, info, file):
    tracker, a = populated
    before = tracker.index.snapshot()
    request = tracker_pb2.UpdateRequest(
        peer_id=a.peer_id, token=a.token, files=[info("fine.mp4"), file]
    )

    expect(INVALID, tracker.stub.Update, request, "files[1]")

    assert_still_serving(tracker, before)


@pytest.mark.parametrize(
    ("host", "port", "word"),
    [
        ("127.0.0.1", 0, "port"),
        ("127.0.0.1", 65536, "port"),
        ("127.0.0.1", 4294967295, "port"),
        ("not a host", 8776, "host"),
        ("-bad-.example", 8776, "host"),
        ("a..b", 8776, "host"),
        ("127.0.0.1:80", 8776, "host"),
        ("[::1", 8776, "host"),
        ("x" * 300, 8776, "host"),
    ],
)
def test_join_with_a_bad_address(populated, info, host, port, word):
    tracker, _ = populated
    before = tracker.index.snapshot()
    request = tracker_pb2.JoinRequest(host=host, port=port, files=[info("fine.mp4")])

    expect(INVALID, tracker.stub.Join, request, word)

    assert_still_serving(tracker, before)


def test_a_name_listed_twice(populated, info):
    tracker, a = populated
    before = tracker.index.snapshot()
    twice = [info("x.mp4"), info("y.mp4"), info("x.mp4", size=5)]

    expect(
        INVALID,
        tracker.stub.Join,
        tracker_pb2.JoinRequest(host="127.0.0.1", port=8778, files=twice),
        "twice",
    )
    expect(
        INVALID,
        tracker.stub.Update,
        tracker_pb2.UpdateRequest(peer_id=a.peer_id, token=a.token, files=twice),
        "twice",
    )

    assert_still_serving(tracker, before)


@pytest.mark.parametrize("removed", [["a/../b.mp4"], [""], [".."], ["aula1.mp4"]])
def test_update_with_a_bad_removed_name(populated, info, removed):
    tracker, a = populated
    before = tracker.index.snapshot()

    expect(
        INVALID,
        tracker.stub.Update,
        tracker_pb2.UpdateRequest(
            peer_id=a.peer_id, token=a.token, files=[info("aula1.mp4")], removed_names=removed
        ),
        "removed_names" if removed != ["aula1.mp4"] else "both",
    )

    assert_still_serving(tracker, before)


@pytest.mark.parametrize(
    "request_fields",
    [
        {},
        {"name": "aula1.mp4", "query": "aula"},
        {"name": "/a/b.mp4"},
        {"name": ".."},
        {"query": " \t\n "},
    ],
    ids=["neither", "both", "bad name", "dot dot", "no words"],
)
def test_bad_searches(populated, request_fields):
    tracker, _ = populated
    before = tracker.index.snapshot()

    expect(INVALID, tracker.stub.Search, tracker_pb2.SearchRequest(**request_fields))

    assert_still_serving(tracker, before)


@pytest.mark.parametrize("peer_id", ["", "127.0.0.1", "nonsense", "127.0.0.1:0", "::1:80"])
@pytest.mark.parametrize("method", ["Update", "Heartbeat", "Leave"])
def test_malformed_peer_ids(populated, method, peer_id):
    tracker, a = populated
    before = tracker.index.snapshot()
    request = getattr(tracker_pb2, f"{method}Request")(peer_id=peer_id, token=a.token)

    expect(INVALID, getattr(tracker.stub, method), request, "peer_id")

    assert_still_serving(tracker, before)


@pytest.mark.parametrize("method", ["Update", "Heartbeat", "Leave"])
def test_unknown_peers_are_not_found(populated, method):
    tracker, a = populated
    before = tracker.index.snapshot()
    request = getattr(tracker_pb2, f"{method}Request")(peer_id="127.0.0.1:9999", token=a.token)

    expect(grpc.StatusCode.NOT_FOUND, getattr(tracker.stub, method), request, "Join")

    assert_still_serving(tracker, before)


def test_more_files_in_one_call_than_the_cap(populated, info):
    tracker, a = populated
    before = tracker.index.snapshot()
    files = [info(f"f{n}") for n in range(50_001)]

    expect(
        INVALID,
        tracker.stub.Join,
        tracker_pb2.JoinRequest(host="127.0.0.1", port=8778, files=files),
        "50000",
    )
    expect(
        INVALID,
        tracker.stub.Update,
        tracker_pb2.UpdateRequest(peer_id=a.peer_id, token=a.token, files=files),
        "50000",
    )

    assert_still_serving(tracker, before)


def test_a_registration_cannot_grow_past_the_cap(populated, info):
    tracker, _ = populated
    files = [info(f"f{n}") for n in range(50_000)]
    big = tracker.stub.Join(tracker_pb2.JoinRequest(host="127.0.0.1", port=8778, files=files))
    before = tracker.index.snapshot()

    expect(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        tracker.stub.Update,
        tracker_pb2.UpdateRequest(
            peer_id=big.peer_id, token=big.token, files=[info("f1"), info("one-more.mp4")]
        ),
        "50000",
    )

    assert_still_serving(tracker, before)
    tracker.stub.Update(  # refreshing files it already has is fine
        tracker_pb2.UpdateRequest(peer_id=big.peer_id, token=big.token, files=files[:10])
    )


def test_a_request_over_16_mib(populated):
    tracker, _ = populated
    before = tracker.index.snapshot()

    expect(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        tracker.stub.Join,
        tracker_pb2.JoinRequest(host="h" * (17 * 1024 * 1024), port=8778),
    )

    assert_still_serving(tracker, before)


@pytest.mark.parametrize("method", ["Join", "Search", "Update", "Heartbeat", "Leave"])
def test_bytes_that_are_no_protobuf_message(populated, method, rpc_details):
    tracker, _ = populated
    before = tracker.index.snapshot()
    channel = grpc.insecure_channel(tracker.address)
    call = channel.unary_unary(f"/napshare.v1.TrackerService/{method}", None, None)

    for garbage in (b"\xff\xff\xff", b"\x0a\x02\xc3\x28"):  # a bad tag; invalid UTF-8
        with pytest.raises(grpc.RpcError) as raised:
            call(garbage, timeout=30)
        assert raised.value.code() == INVALID, raised.value.details()
        assert f"not a {method}Request message" in raised.value.details()
        assert rpc_details(raised.value)[0].reason == "REQUEST_MALFORMED"
    channel.close()

    assert_still_serving(tracker, before)
