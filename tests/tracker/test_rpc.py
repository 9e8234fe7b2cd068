"""TrackerService over a real channel: every RPC's happy path, isolation, re-join and tokens."""

import hashlib

import grpc
import pytest
from napshare.v1 import tracker_pb2, tracker_pb2_grpc


def join(tracker, port, *files, host="127.0.0.1"):
    return tracker.stub.Join(tracker_pb2.JoinRequest(host=host, port=port, files=list(files)))


def peers_with(tracker, name):
    answer = tracker.stub.Search(tracker_pb2.SearchRequest(name=name))
    return [result.peer_id for result in answer.results]


def test_join_returns_peer_id_token_and_interval(tracker, info):
    reply = join(tracker, 8776, info("aula1.mp4"), info("aula2.mp4"))

    assert reply.peer_id == "127.0.0.1:8776"
    assert len(reply.token) >= 32
    int(reply.token, 16)  # hex: at least 128 random bits
    assert reply.heartbeat_interval_seconds == 30
    assert [f.name for f in tracker.index.files_of("127.0.0.1:8776")] == ["aula1.mp4", "aula2.mp4"]


def test_each_join_gets_a_different_token(tracker, info):
    tokens = {join(tracker, 8000 + n, info("a.mp4")).token for n in range(20)}
    assert len(tokens) == 20


def test_join_with_empty_host_registers_the_callers_address(tracker, info):
    reply = join(tracker, 8776, info("a.mp4"), host="")
    assert reply.peer_id == "127.0.0.1:8776"


def test_join_normalises_the_host(tracker, info):
    assert join(tracker, 9000, info("a.mp4"), host="0:0::1").peer_id == "[::1]:9000"
    assert join(tracker, 9000, info("a.mp4"), host="[::FFFF:127.0.0.1]").peer_id == (
        "127.0.0.1:9000"
    )


def test_search_by_exact_name_lists_every_peer_with_the_file(tracker, info):
    join(tracker, 8777, info("aula1.mp4", 5), info("other.mp4"))
    join(tracker, 8776, info("aula1.mp4", 5))
    join(tracker, 8778, info("Aula1.mp4"))

    answer = tracker.stub.Search(tracker_pb2.SearchRequest(name="aula1.mp4"))

    assert [r.peer_id for r in answer.results] == ["127.0.0.1:8776", "127.0.0.1:8777"]
    first = answer.results[0].file
    assert (first.name, first.size, first.sha256) == (
        "aula1.mp4",
        5,
        hashlib.sha256(b"aula1.mp4").hexdigest(),
    )
    assert not answer.truncated


def test_search_for_a_missing_file_is_an_empty_list(tracker, info):
    join(tracker, 8776, info("aula1.mp4"))

    answer = tracker.stub.Search(tracker_pb2.SearchRequest(name="aula9.mp4"))

    assert list(answer.results) == []
    assert not answer.truncated
    empty = tracker.stub.Search(tracker_pb2.SearchRequest(query="nothing like this"))
    assert list(empty.results) == []


def test_keyword_search_matches_every_word_ignoring_case(tracker, info):
    join(tracker, 8776, info("Aula1-Redes.mp4"), info("aula2-SO.mp4"), info("notes.txt"))
    join(tracker, 8777, info("redes_AULA3.mkv"))

    answer = tracker.stub.Search(tracker_pb2.SearchRequest(query="  AULA  redes "))

    assert [(r.peer_id, r.file.name) for r in answer.results] == [
        ("127.0.0.1:8776", "Aula1-Redes.mp4"),
        ("127.0.0.1:8777", "redes_AULA3.mkv"),
    ]


def test_keyword_search_finds_words_inside_names_and_short_words(tracker, info):
    join(tracker, 8776, info("minhaaula.mp4"), info("ab"), info("x.7z"))

    def names(query):
        answer = tracker.stub.Search(tracker_pb2.SearchRequest(query=query))
        return [r.file.name for r in answer.results]

    assert names("aula") == ["minhaaula.mp4"]
    assert names("B") == ["ab"]
    assert names("7z .") == ["x.7z"]
    assert names("ab aula") == []


def test_search_results_are_ordered_and_limited(tracker, info):
    for port in (9003, 9001, 9002):
        join(tracker, port, info("b.mp4"), info("a.mp4"))

    answer = tracker.stub.Search(tracker_pb2.SearchRequest(query="mp4", limit=4))

    assert [(r.peer_id, r.file.name) for r in answer.results] == [
        ("127.0.0.1:9001", "a.mp4"),
        ("127.0.0.1:9001", "b.mp4"),
        ("127.0.0.1:9002", "a.mp4"),
        ("127.0.0.1:9002", "b.mp4"),
    ]
    assert answer.truncated
    everything = tracker.stub.Search(tracker_pb2.SearchRequest(query="mp4", limit=6))
    assert len(everything.results) == 6
    assert not everything.truncated


def test_search_limit_defaults_to_100_and_is_capped_at_1000(tracker, info):
    join(tracker, 8776, *[info(f"file{n:04d}.bin") for n in range(1200)])

    default = tracker.stub.Search(tracker_pb2.SearchRequest(query="file"))
    capped = tracker.stub.Search(tracker_pb2.SearchRequest(query="file", limit=5000))

    assert (len(default.results), default.truncated) == (100, True)
    assert (len(capped.results), capped.truncated) == (1000, True)
    assert capped.results[-1].file.name == "file0999.bin"


def test_update_adds_and_refreshes_files(tracker, info):
    a = join(tracker, 8776, info("aula1.mp4", 10))

    tracker.stub.Update(
        tracker_pb2.UpdateRequest(
            peer_id=a.peer_id, token=a.token, files=[info("aula1.mp4", 11), info("aula2.mp4")]
        )
    )

    files = {f.name: f.size for f in tracker.index.files_of(a.peer_id)}
    assert files == {"aula1.mp4": 11, "aula2.mp4": 1000}
    assert peers_with(tracker, "aula2.mp4") == [a.peer_id]


def test_update_removes_names_and_ignores_unknown_ones(tracker, info):
    a = join(tracker, 8776, info("aula1.mp4"), info("aula2.mp4"))
    join(tracker, 8777, info("aula1.mp4"))

    tracker.stub.Update(
        tracker_pb2.UpdateRequest(
            peer_id=a.peer_id, token=a.token, removed_names=["aula1.mp4", "never.mp4"]
        )
    )

    assert peers_with(tracker, "aula1.mp4") == ["127.0.0.1:8777"]
    assert peers_with(tracker, "aula2.mp4") == ["127.0.0.1:8776"]


def test_update_of_one_peer_leaves_the_others_untouched(tracker, info):
    a = join(tracker, 8776, info("aula1.mp4"))
    b = join(tracker, 8777, info("aula2.mp4"))
    b_before = tracker.index.files_of(b.peer_id)

    tracker.stub.Update(
        tracker_pb2.UpdateRequest(peer_id=a.peer_id, token=a.token, files=[info("aula2.mp4")])
    )

    assert tracker.index.files_of(b.peer_id) == b_before
    assert peers_with(tracker, "aula2.mp4") == [a.peer_id, b.peer_id]
    assert peers_with(tracker, "aula1.mp4") == [a.peer_id]


def test_heartbeat_succeeds_for_a_registered_peer(tracker, info):
    a = join(tracker, 8776, info("aula1.mp4"))

    reply = tracker.stub.Heartbeat(tracker_pb2.HeartbeatRequest(peer_id=a.peer_id, token=a.token))

    assert reply == tracker_pb2.HeartbeatResponse()


def test_leave_removes_the_peer_and_its_files(tracker, info):
    a = join(tracker, 8776, info("aula1.mp4"), info("only-a.mp4"))
    b = join(tracker, 8777, info("aula1.mp4"))

    tracker.stub.Leave(tracker_pb2.LeaveRequest(peer_id=a.peer_id, token=a.token))

    assert peers_with(tracker, "aula1.mp4") == [b.peer_id]
    assert peers_with(tracker, "only-a.mp4") == []
    assert tracker.index.files_of(a.peer_id) is None
    with pytest.raises(grpc.RpcError) as raised:
        tracker.stub.Heartbeat(tracker_pb2.HeartbeatRequest(peer_id=a.peer_id, token=a.token))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_rejoin_replaces_the_registration_and_the_old_token_stops_working(tracker, info):
    old = join(tracker, 8776, info("old.mp4"), info("kept.mp4"))

    new = join(tracker, 8776, info("kept.mp4"), info("new.mp4"))

    assert new.peer_id == old.peer_id
    assert new.token != old.token
    assert [f.name for f in tracker.index.files_of(new.peer_id)] == ["kept.mp4", "new.mp4"]
    assert peers_with(tracker, "old.mp4") == []
    for call, request in (
        (tracker.stub.Heartbeat, tracker_pb2.HeartbeatRequest),
        (tracker.stub.Update, tracker_pb2.UpdateRequest),
        (tracker.stub.Leave, tracker_pb2.LeaveRequest),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            call(request(peer_id=old.peer_id, token=old.token))
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    tracker.stub.Heartbeat(tracker_pb2.HeartbeatRequest(peer_id=new.peer_id, token=new.token))


@pytest.mark.parametrize(
    "forged",
    ["", "0" * 32, "not even hex", "ü" * 32],
    ids=["empty", "zeros", "text", "non-ascii"],
)
def test_a_forged_token_is_rejected(tracker, info, forged):
    a = join(tracker, 8776, info("aula1.mp4"))
    b = join(tracker, 8777, info("aula2.mp4"))
    before = tracker.index.snapshot()

    for token in (forged, b.token):  # someone else's real token is forged too
        with pytest.raises(grpc.RpcError) as raised:
            tracker.stub.Update(
                tracker_pb2.UpdateRequest(peer_id=a.peer_id, token=token, files=[info("x.mp4")])
            )
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "token" in raised.value.details()
        with pytest.raises(grpc.RpcError) as raised:
            tracker.stub.Leave(tracker_pb2.LeaveRequest(peer_id=a.peer_id, token=token))
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED

    assert tracker.index.snapshot() == before


def test_peer_ids_are_matched_in_their_normal_form(tracker, info):
    a = join(tracker, 9000, info("a.mp4"), host="::1")

    tracker.stub.Heartbeat(tracker_pb2.HeartbeatRequest(peer_id="[0:0::1]:9000", token=a.token))

    assert a.peer_id == "[::1]:9000"


def test_join_with_empty_host_over_ipv6_registers_the_bracketed_address(info):
    from napshare.common.serving import PortInUseError
    from napshare.tracker.index import TrackerIndex
    from napshare.tracker.server import create_server

    try:
        server, port = create_server(TrackerIndex(), host="::1", port=0)
    except PortInUseError:
        pytest.skip("no IPv6 loopback here")
    try:
        with grpc.insecure_channel(f"[::1]:{port}") as channel:
            stub = tracker_pb2_grpc.TrackerServiceStub(channel)
            reply = stub.Join(tracker_pb2.JoinRequest(port=8776, files=[info("a.mp4")]))
            found = stub.Search(tracker_pb2.SearchRequest(name="a.mp4"))
    finally:
        server.stop(None)
    assert reply.peer_id == "[::1]:8776"
    assert [r.peer_id for r in found.results] == ["[::1]:8776"]


@pytest.mark.parametrize("search", [{"name": "x.mp4"}, {"query": "X.MP"}], ids=["name", "query"])
def test_a_repeated_search_sees_every_change(make_tracker, info, search):
    from napshare.tracker.index import TrackerIndex

    class Clock:
        now = 1000.0

        def __call__(self):
            return self.now

    clock = Clock()
    tracker = make_tracker(TrackerIndex(heartbeat_interval=10, clock=clock))

    def answer():
        found = tracker.stub.Search(tracker_pb2.SearchRequest(**search))
        return [(r.peer_id, r.file.size) for r in found.results]

    assert answer() == []
    a = join(tracker, 8776, info("x.mp4", 1))
    assert answer() == [(a.peer_id, 1)]
    b = join(tracker, 8777, info("x.mp4", 1))
    assert answer() == [(a.peer_id, 1), (b.peer_id, 1)]
    tracker.stub.Update(
        tracker_pb2.UpdateRequest(peer_id=a.peer_id, token=a.token, files=[info("x.mp4", 2)])
    )
    assert answer() == [(a.peer_id, 2), (b.peer_id, 1)]
    tracker.stub.Leave(tracker_pb2.LeaveRequest(peer_id=b.peer_id, token=b.token))
    assert answer() == [(a.peer_id, 2)]
    clock.now += 29.9
    assert answer() == [(a.peer_id, 2)]
    clock.now += 0.1  # A's lease runs out; no heartbeat, no Update since
    assert answer() == []


def test_the_service_also_works_through_the_generated_registration(info):
    from concurrent import futures

    from napshare.tracker.index import TrackerIndex
    from napshare.tracker.servicer import TrackerServicer

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    tracker_pb2_grpc.add_TrackerServiceServicer_to_server(TrackerServicer(TrackerIndex()), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = tracker_pb2_grpc.TrackerServiceStub(channel)
            stub.Join(tracker_pb2.JoinRequest(host="127.0.0.1", port=8776, files=[info("a.mp4")]))
            found = stub.Search(tracker_pb2.SearchRequest(query="A.MP4"))
            with pytest.raises(grpc.RpcError) as raised:
                stub.Search(tracker_pb2.SearchRequest())
    finally:
        server.stop(None)
    assert [(r.peer_id, r.file.name) for r in found.results] == [("127.0.0.1:8776", "a.mp4")]
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
