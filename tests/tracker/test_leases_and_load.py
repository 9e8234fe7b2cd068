"""Leases on a live server, and many threads joining, searching and updating at once."""

import random
import threading
import time
from concurrent import futures

import grpc
import pytest
from napshare.common.console import PEER_DEAD, render
from napshare.tracker.index import TrackerIndex
from napshare.v1 import tracker_pb2

from tests.support.waiting import wait_until

INTERVAL = 0.2  # the lease is three intervals: 0.6 s


@pytest.mark.serial  # heartbeats every 0.1 s against a 0.6 s lease
def test_a_silent_peer_is_dropped_and_a_heartbeating_one_is_not(make_tracker, info, capsys):
    tracker = make_tracker(TrackerIndex(heartbeat_interval=INTERVAL))
    silent = tracker.stub.Join(
        tracker_pb2.JoinRequest(host="127.0.0.1", port=8777, files=[info("a.mp4"), info("b.mp4")])
    )
    alive = tracker.stub.Join(
        tracker_pb2.JoinRequest(host="127.0.0.1", port=8776, files=[info("a.mp4")])
    )
    stop = threading.Event()

    def heartbeat():
        while not stop.wait(INTERVAL / 2):
            tracker.stub.Heartbeat(
                tracker_pb2.HeartbeatRequest(peer_id=alive.peer_id, token=alive.token)
            )

    beating = threading.Thread(target=heartbeat)
    beating.start()
    try:
        dead = render(PEER_DEAD, {"peer": "127.0.0.1:8777", "files": ["a.mp4", "b.mp4"]})
        wait_until(lambda: dead in capsys.readouterr().out.splitlines(), timeout=10.0, step=0.02)
        # Several leases later the heartbeating peer is still there.
        time.sleep(2 * INTERVAL * 3)
        answer = tracker.stub.Search(tracker_pb2.SearchRequest(name="a.mp4"))
        assert [r.peer_id for r in answer.results] == [alive.peer_id]
    finally:
        stop.set()
        beating.join()
    assert tracker.index.files_of(silent.peer_id) is None
    with pytest.raises(grpc.RpcError) as raised:
        tracker.stub.Heartbeat(
            tracker_pb2.HeartbeatRequest(peer_id=silent.peer_id, token=silent.token)
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.serial  # updates every 0.1 s against a 0.6 s lease
def test_update_renews_the_lease(make_tracker, info):
    tracker = make_tracker(TrackerIndex(heartbeat_interval=INTERVAL))
    a = tracker.stub.Join(tracker_pb2.JoinRequest(host="127.0.0.1", port=8776))
    deadline = time.monotonic() + 2 * INTERVAL * 3
    n = 0
    while time.monotonic() < deadline:
        tracker.stub.Update(
            tracker_pb2.UpdateRequest(peer_id=a.peer_id, token=a.token, files=[info(f"{n}.bin")])
        )
        n += 1
        time.sleep(INTERVAL / 2)
    assert len(tracker.index.files_of(a.peer_id)) == n


def test_many_threads_at_once_leave_a_consistent_index(tracker, info):
    threads, rounds = 8, 25
    common = [info(f"common-{n}.mp4", 7) for n in range(5)]

    def work(worker):
        rng = random.Random(worker)
        port = 9000 + worker
        reply = tracker.stub.Join(
            tracker_pb2.JoinRequest(host="127.0.0.1", port=port, files=common[: worker % 5 + 1])
        )
        mine = set()
        for step in range(rounds):
            name = f"w{worker}-f{step}.mp4"
            tracker.stub.Update(
                tracker_pb2.UpdateRequest(
                    peer_id=reply.peer_id, token=reply.token, files=[info(name, step)]
                )
            )
            mine.add(name)
            found = tracker.stub.Search(tracker_pb2.SearchRequest(name=name))
            assert [r.peer_id for r in found.results] == [reply.peer_id]
            tracker.stub.Search(tracker_pb2.SearchRequest(query=f"common {rng.randrange(5)}"))
            if step == rounds // 2 and worker % 2:
                reply = tracker.stub.Join(  # restart: everything announced so far is gone
                    tracker_pb2.JoinRequest(host="127.0.0.1", port=port, files=common[:1])
                )
                mine = set()
        return reply.peer_id, {f.name for f in common[: 1 if worker % 2 else worker % 5 + 1]} | mine

    with futures.ThreadPoolExecutor(threads) as pool:
        expected = dict(pool.map(work, range(threads)))

    snapshot = tracker.index.snapshot()
    assert {peer: {f.name for f in files} for peer, files in snapshot.items()} == expected
    stats = tracker.index.stats()
    assert stats.peers == threads
    assert stats.entries == sum(len(names) for names in expected.values())
    for n, file in enumerate(common):
        holders = sorted(peer for peer, names in expected.items() if file.name in names)
        answer = tracker.stub.Search(tracker_pb2.SearchRequest(query=f"COMMON-{n}"))
        assert [r.peer_id for r in answer.results] == holders
        assert all(r.file == file for r in answer.results)
    for files in snapshot.values():
        for entry in files:
            if entry.name.startswith("w"):  # w{worker}-f{step}.mp4 was announced with size step
                assert entry.size == int(entry.name.split("-f")[1].removesuffix(".mp4"))


def test_thousands_of_concurrent_keyword_searches_all_answer(tracker):
    """gRPC core dropped some of a burst with CANCELLED before the server saw them."""
    channels = [grpc.insecure_channel(tracker.address) for _ in range(4)]
    searches = [channel.unary_unary("/napshare.v1.TrackerService/Search") for channel in channels]
    try:
        for burst in range(4):  # the drop was random: a burst lost 1-2% about half the time
            requests = [
                tracker_pb2.SearchRequest(query=f"word{burst}x{n} other{n}").SerializeToString()
                for n in range(2000)
            ]
            calls = [
                searches[n % len(searches)].future(request, timeout=60)
                for n, request in enumerate(requests)
            ]
            codes = {grpc.StatusCode.OK: 0}
            for call in calls:
                code = call.code()
                codes[code] = codes.get(code, 0) + 1
            assert codes == {grpc.StatusCode.OK: 2000}, f"burst {burst}: {codes}"
    finally:
        for channel in channels:
            channel.close()
