"""The limits over a real channel and from the command line, and how the memory backend drops
departed files; the limits every backend enforces are the contract suite's
(tests/tracker/store/contract.py).
"""

import dataclasses
import hashlib
import subprocess

import grpc
import pytest
from napshare.tracker import index as index_module
from napshare.tracker.errors import CapacityError
from napshare.tracker.index import FileEntry, TrackerIndex
from napshare.tracker.keywords import KeywordIndex
from napshare.tracker.limits import Limits, flag
from napshare.v1 import file_info_pb2, tracker_pb2, tracker_pb2_grpc

from tests.bench.procs import rss_bytes
from tests.support.clock import Clock

ROOMY = Limits(
    peers_per_address=100,
    files_per_address=1000,
    name_bytes_per_address=100_000,
    peers=1000,
    files=10_000,
    name_bytes=1_000_000,
)
ONE, TWO = "10.9.0.1", "10.9.0.2"  # two source addresses


def entry(name):
    return FileEntry(name, 1, hashlib.sha256(name.encode()).hexdigest())


def files(*names):
    return [entry(name) for name in names]


def refused(reason, call, *args, **kwargs):
    """The CapacityError that `call` raises, checked to have `reason`."""
    with pytest.raises(CapacityError) as caught:
        call(*args, **kwargs)
    assert caught.value.reason == reason
    return caught.value


def tracker_with(**limits):
    return TrackerIndex(limits=dataclasses.replace(ROOMY, **limits))


def test_departed_files_go_a_slice_per_hold_of_the_lock_and_searches_skip_them():
    clock = Clock()
    index = TrackerIndex(heartbeat_interval=10, clock=clock)
    for port in range(1, 4):
        index.join("10.0.0.1", port, [entry(f"p{port}-{n}.mp4") for n in range(2500)])
    holds = []
    drops = [0]
    lock, drop = index._lock, index._catalog.drop

    class CountingLock:
        def __enter__(self):
            lock.acquire()
            drops[0] = 0

        def __exit__(self, *_):
            holds.append(drops[0])
            lock.release()

    def counted_drop(holder, name_id):
        drops[0] += 1
        drop(holder, name_id)

    index._lock = CountingLock()
    index._catalog.drop = counted_drop
    clock.now += 30

    assert index.search(query="mp4").matches == []  # expired at once, files still in memory
    dead = index.expire()
    while index.stats().entries:  # expire() works for at most PURGE_SECONDS a call
        dead += index.expire()

    assert sorted(len(d.names) for d in dead) == [2500] * 3
    assert sum(holds) == 7500
    assert max(holds) <= index_module.DROP_SLICE


def test_a_bucket_rebuild_does_not_rehash_every_name_in_it():
    names: list[str | None] = []
    keywords = KeywordIndex(names, buckets=1 << 10)
    for n in range(2000):
        names.append(f"{n}-the-same-long-suffix.mp4")
        keywords.add(n, names[n])
    hashed = [0]
    buckets_of = keywords._buckets_of

    def counted(text):
        hashed[0] += 1
        return buckets_of(text)

    keywords._buckets_of = counted
    for n in range(0, 2000, 2):
        gone, names[n] = names[n], None
        keywords.remove(n, gone)

    assert hashed[0] == 1000  # one per removed name: the rebuilds hash nothing
    assert sorted(keywords.matches(["suffix"])) == list(range(1, 2000, 2))


@pytest.fixture
def limited(make_tracker, info):
    """A tracker allowing 3 files from one address, with a peer from 127.0.0.1 sharing 2."""
    tracker = make_tracker(
        TrackerIndex(limits=dataclasses.replace(ROOMY, files_per_address=3, peers_per_address=2))
    )
    joined = tracker.stub.Join(
        tracker_pb2.JoinRequest(host="127.0.0.1", port=8001, files=[info("a.mp4"), info("b.mp4")])
    )
    return tracker, joined


def test_over_a_real_channel_limits_count_the_callers_address(limited, info, rpc_details):
    tracker, joined = limited
    # A Join claiming another host is still counted against 127.0.0.1, where it comes from.
    with pytest.raises(grpc.RpcError) as too_many:
        tracker.stub.Join(
            tracker_pb2.JoinRequest(
                host="10.1.2.3", port=8002, files=[info("c.mp4"), info("d.mp4")]
            )
        )
    with pytest.raises(grpc.RpcError) as grown:
        tracker.stub.Update(
            tracker_pb2.UpdateRequest(
                peer_id=joined.peer_id, token=joined.token, files=[info("c.mp4"), info("d.mp4")]
            )
        )

    for error in (too_many.value, grown.value):
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "the limit is 3 (--max-files-per-address)" in error.details()
        reason = rpc_details(error)[0]
        assert reason.reason == "ADDRESS_FILE_LIMIT"
        assert dict(reason.metadata) == {"limit": "3", "flag": "--max-files-per-address"}
    found = tracker.stub.Search(tracker_pb2.SearchRequest(query="mp4"))
    assert [(r.peer_id, r.file.name) for r in found.results] == [
        ("127.0.0.1:8001", "a.mp4"),
        ("127.0.0.1:8001", "b.mp4"),
    ]
    tracker.stub.Join(tracker_pb2.JoinRequest(host="10.1.2.3", port=8002, files=[info("c.mp4")]))
    with pytest.raises(grpc.RpcError) as third:
        tracker.stub.Join(tracker_pb2.JoinRequest(host="10.1.2.4", port=8003))
    assert rpc_details(third.value)[0].reason == "ADDRESS_PEER_LIMIT"


def test_the_limit_flags_set_the_limits(spawn_tracker, info, rpc_details):
    tracker = spawn_tracker("--max-files-per-address", "2", "--max-peers", "1")
    with grpc.insecure_channel(tracker.address) as channel:
        stub = tracker_pb2_grpc.TrackerServiceStub(channel)
        request = tracker_pb2.JoinRequest(host="127.0.0.1", port=8001, files=[info("a")])
        stub.Join(request, timeout=10)
        three = [info("a"), info("b"), info("c")]
        for files_, port, reason in (
            (three, 8001, "ADDRESS_FILE_LIMIT"),
            ([], 8002, "INDEX_PEER_LIMIT"),
        ):
            with pytest.raises(grpc.RpcError) as caught:
                stub.Join(
                    tracker_pb2.JoinRequest(host="127.0.0.1", port=port, files=files_), timeout=10
                )
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert rpc_details(caught.value)[0].reason == reason


def test_help_shows_every_limit_with_its_default(python, tmp_path):
    done = subprocess.run(
        [python, "-m", "napshare.tracker", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=True,
        env={"LANG": "C.UTF-8", "COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    text = " ".join(done.stdout.split())
    for field in dataclasses.fields(Limits):
        described = text.split(f" {flag(field.name)} N ", 1)[1].split(" --", 1)[0]
        assert f"(default {getattr(Limits(), field.name):,})" in described


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_a_bad_limit_is_one_line_and_a_failure(python, tmp_path, value):
    done = subprocess.run(
        [python, "-m", "napshare.tracker", "--max-files", value],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "--max-files" in done.stderr
    assert "is not a number from 1 to" in done.stderr


def test_joins_past_the_limits_leave_the_trackers_memory_bounded(spawn_tracker, rpc_details):
    """One address sends 20 Joins of 20,000 distinct 90-byte names; only the first fits (the
    limit on how often large Joins come is off: the limits on their size are tested).
    """
    files_per_join, joins = 20_000, 20
    tracker = spawn_tracker(
        "--max-files-per-address", str(files_per_join), "--large-join-interval", "0"
    )
    pid = tracker.process.pid
    requests = [
        tracker_pb2.JoinRequest(
            host="127.0.0.1",
            port=9000 + number,
            files=[
                file_info_pb2.FileInfo(
                    name=f"{number:02d}-{n:05d}-" + hashlib.sha256(b"%d" % n).hexdigest()[:81],
                    size=n,
                    sha256=hashlib.sha256(b"%d" % n).hexdigest(),
                )
                for n in range(files_per_join)
            ],
        )
        for number in range(joins)
    ]
    with grpc.insecure_channel(
        tracker.address, options=[("grpc.max_send_message_length", 16 * 1024 * 1024)]
    ) as channel:
        stub = tracker_pb2_grpc.TrackerServiceStub(channel)
        stub.Search(tracker_pb2.SearchRequest(name="warm-up"), timeout=10)
        before = rss_bytes(pid)
        stub.Join(requests[0], timeout=60)
        reasons = []
        for request in requests[1:]:
            with pytest.raises(grpc.RpcError) as caught:
                stub.Join(request, timeout=60)
            reasons.append(rpc_details(caught.value)[0].reason)
        grown = rss_bytes(pid) - before

    assert set(reasons) == {"ADDRESS_FILE_LIMIT"}
    # 20,000 entries take about 15 MB; all 400,000 would take about 280 MB.
    assert grown < 100 * 1024 * 1024, grown
