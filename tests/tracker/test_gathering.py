"""A tracker that started less than a lease ago says it is gathering, and stops saying so."""

from collections.abc import Iterator

import grpc
import pytest
from napshare.tracker.index import TrackerIndex
from napshare.tracker.server import create_server
from napshare.v1 import file_info_pb2, tracker_pb2, tracker_pb2_grpc

from tests.support.clock import Clock

INTERVAL = 10.0  # so the lease, and the gathering window, is 30 s of the test's clock
SHA = "ab" * 32


@pytest.fixture
def tracker() -> Iterator[tuple[Clock, tracker_pb2_grpc.TrackerServiceStub]]:
    clock = Clock()
    server, port = create_server(TrackerIndex(INTERVAL, clock=clock), host="127.0.0.1", port=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield clock, tracker_pb2_grpc.TrackerServiceStub(channel)
    channel.close()
    server.stop(None)


def test_searches_say_gathering_for_one_lease_after_the_start(
    tracker: tuple[Clock, tracker_pb2_grpc.TrackerServiceStub],
) -> None:
    clock, stub = tracker
    by_name = tracker_pb2.SearchRequest(name="aula1.mp4")
    by_words = tracker_pb2.SearchRequest(query="aula")
    assert stub.Search(by_name).gathering
    assert stub.Search(by_words).gathering

    clock.now += 29.9
    assert stub.Search(by_name).gathering  # the kept answer, still true
    clock.now += 0.1
    # The same request bytes: the kept answer must not go on saying it.
    assert not stub.Search(by_name).gathering
    assert not stub.Search(by_words).gathering
    assert not stub.Search(tracker_pb2.SearchRequest(name="other.mp4")).gathering


def test_a_kept_answer_stops_saying_gathering_while_heartbeats_renew_leases(
    tracker: tuple[Clock, tracker_pb2_grpc.TrackerServiceStub],
) -> None:
    clock, stub = tracker
    joined = stub.Join(
        tracker_pb2.JoinRequest(
            host="127.0.0.1",
            port=4000,
            files=[file_info_pb2.FileInfo(name="aula1.mp4", size=5, sha256=SHA)],
        )
    )
    request = tracker_pb2.SearchRequest(name="aula1.mp4")
    heartbeat = tracker_pb2.HeartbeatRequest(peer_id=joined.peer_id, token=joined.token)
    for _ in range(2):
        clock.now += 9
        stub.Heartbeat(heartbeat)
        answer = stub.Search(request)
        assert answer.gathering
        assert [r.peer_id for r in answer.results] == [joined.peer_id]
    clock.now += 12  # 30 s since the start; the peer's lease holds
    stub.Heartbeat(heartbeat)
    answer = stub.Search(request)
    assert not answer.gathering
    assert [r.peer_id for r in answer.results] == [joined.peer_id]
