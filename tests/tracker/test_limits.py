"""Limits per source address and for the whole index: refused with a reason, nothing changed."""

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


def test_registrations_per_address():
    index = tracker_with(peers_per_address=2)
    index.join("10.0.0.1", 1, files("a.mp4"), ONE)
    index.join("10.0.0.1", 2, files("b.mp4"), ONE)
    before = index.snapshot()

    error = refused("ADDRESS_PEER_LIMIT", index.join, "10.0.0.1", 3, files("c.mp4"), ONE)
    assert "the limit is 2 (--max-peers-per-address)" in str(error)
    assert error.metadata == {"limit": "2", "flag": "--max-peers-per-address"}
    assert index.snapshot() == before
    index.join("10.0.0.1", 1, files("a2.mp4"), ONE)  # a re-join replaces, it adds none
    index.join("10.0.0.1", 3, files("c.mp4"), TWO)  # another address has its own budget
    index.join("10.0.0.1", 4, files("d.mp4"))  # callers in this process are not counted
    assert index.stats().peers == 4


def test_files_per_address_count_every_registration_of_the_address():
    index = tracker_with(files_per_address=5)
    first = index.join("10.0.0.1", 1, files("a", "b", "c"), ONE)
    before = index.snapshot()

    error = refused("ADDRESS_FILE_LIMIT", index.join, "10.0.0.1", 2, files("d", "e", "f"), ONE)
    assert "address 10.9.0.1 would have 6 files; the limit is 5" in str(error)
    refused("ADDRESS_FILE_LIMIT", index.update, first.peer_id, first.token, files("d", "e", "f"))
    assert index.snapshot() == before
    assert [m.peer_id for m in index.search(name="a").matches] == [first.peer_id]
    assert index.search(name="d").matches == []

    index.join("10.0.0.1", 2, files("d", "e", "f"), TWO)
    index.update(first.peer_id, first.token, files("d", "e"), ["a"])  # 4 files now
    index.join("10.0.0.1", 1, files(*"vwxyz"), ONE)  # replaces its own 4 files: 5
    refused("ADDRESS_FILE_LIMIT", index.join, "10.0.0.1", 3, files("g"), ONE)


def test_bytes_of_names_per_address_are_utf8_bytes():
    index = tracker_with(name_bytes_per_address=20)
    joined = index.join("10.0.0.1", 1, files("ééééé"), ONE)  # 10 bytes, 5 characters

    refused("ADDRESS_NAME_BYTES_LIMIT", index.join, "10.0.0.1", 2, files("ååååå", "x"), ONE)
    refused(
        "ADDRESS_NAME_BYTES_LIMIT", index.update, joined.peer_id, joined.token, files("日本語xy")
    )
    index.update(joined.peer_id, joined.token, files("ååååå"))  # exactly 20
    index.join("10.0.0.1", 2, files("ååååå", "x"), TWO)
    assert index.stats().entries == 4


def test_the_whole_index_has_limits_whoever_calls():
    index = tracker_with(peers=2, files=4, name_bytes=12)
    a = index.join("10.0.0.1", 1, files("aaa", "bbb"))
    index.join("10.0.0.1", 2, files("ccc"), ONE)
    before = index.snapshot()

    refused("INDEX_PEER_LIMIT", index.join, "10.0.0.1", 3, files("d"), TWO)
    refused("INDEX_FULL", index.update, a.peer_id, a.token, files("d", "e"))
    refused("INDEX_NAME_BYTES_LIMIT", index.update, a.peer_id, a.token, files("dddd"))
    error = refused("INDEX_FULL", index.join, "10.0.0.1", 1, files(*"vwxyz"))
    assert "the tracker would have 6 files; the limit is 4 (--max-files)" in str(error)
    assert index.snapshot() == before
    index.update(a.peer_id, a.token, files("ddd"))  # 4 files, 12 bytes: at the limits


def test_leaving_gives_the_address_its_budget_back():
    clock = Clock()
    index = TrackerIndex(
        heartbeat_interval=10, clock=clock, limits=dataclasses.replace(ROOMY, files_per_address=2)
    )
    left = index.join("10.0.0.1", 1, files("a", "b"), ONE)
    index.leave(left.peer_id, left.token)
    expired = index.join("10.0.0.1", 2, files("c", "d"), ONE)
    refused("ADDRESS_FILE_LIMIT", index.join, "10.0.0.1", 3, files("e"), ONE)
    clock.now += 30
    index.join("10.0.0.1", 3, files("e", "f"), ONE)
    assert index.search(name="c").matches == []
    assert [d.peer_id for d in index.expire()] == [expired.peer_id]
    assert index.stats().entries == 2


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


def test_a_peer_that_joins_again_while_its_files_go_replaces_them():
    index = TrackerIndex()
    old = index.join("10.0.0.1", 1, [entry(f"{n}.mp4") for n in range(3000)], ONE)
    index.leave(old.peer_id, old.token)
    new = index.join("10.0.0.1", 1, files("1.mp4", "new.mp4"), ONE)

    assert [m.file.name for m in index.search(query="mp4").matches] == ["1.mp4", "new.mp4"]
    assert index.stats().entries == 2
    assert index.expire() == []  # a peer that left is not reported dead
    assert index.files_of(new.peer_id) == files("1.mp4", "new.mp4")


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


def test_the_index_counts_a_shared_name_once():
    index = tracker_with(name_bytes=6)
    index.join("10.0.0.1", 1, files("abc"), ONE)
    index.join("10.0.0.1", 2, files("abc"), TWO)  # held twice, stored once: 3 bytes

    refused("INDEX_NAME_BYTES_LIMIT", index.join, "10.0.0.1", 3, files("abcd"))
    index.join("10.0.0.1", 3, files("xyz", "abc"))


def test_joins_past_the_limits_leave_the_trackers_memory_bounded(spawn_tracker, rpc_details):
    """One address sends 20 Joins of 20,000 distinct 90-byte names; only the first fits."""
    files_per_join, joins = 20_000, 20
    tracker = spawn_tracker("--max-files-per-address", str(files_per_join))
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
