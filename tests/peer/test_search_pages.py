"""Searching through every page: all results, a --limit, a notice when cut, a hostile tracker."""

import hashlib
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from napshare.peer.defaults import MAX_RESULTS
from napshare.peer.tracker_client import MAX_PAGES, TrackerClient
from napshare.tracker import index as index_module
from napshare.tracker.index import FileEntry, TrackerIndex
from napshare.tracker.server import create_server
from napshare.v1 import file_info_pb2, tracker_pb2, tracker_pb2_grpc

from tests.support.peers import run_peer
from tests.support.trackers import InProcessTracker


def share(tracker: InProcessTracker, port: int, names: list[str]) -> None:
    files = [
        file_info_pb2.FileInfo(name=n, size=1, sha256=hashlib.sha256(n.encode()).hexdigest())
        for n in names
    ]
    with grpc.insecure_channel(tracker.address) as channel:
        stub = tracker_pb2_grpc.TrackerServiceStub(channel)
        stub.Join(tracker_pb2.JoinRequest(host="127.0.0.1", port=port, files=files), timeout=30)


@pytest.fixture
def crowded(tracker: InProcessTracker) -> InProcessTracker:
    """A tracker where two peers share f0000.mp4 … f1499.mp4 each: 3,000 (peer, file) pairs."""
    for port in (9001, 9002):
        share(tracker, port, [f"f{n:04d}.mp4" for n in range(1500)])
    return tracker


def test_query_and_search_fetch_every_page(crowded: InProcessTracker) -> None:
    everything = crowded.client.query("f mp4")
    assert len(everything) == 3000
    assert [(s.peer, s.name) for s in everything] == sorted(
        (f"127.0.0.1:{p}", f"f{n:04d}.mp4") for p in (9001, 9002) for n in range(1500)
    )
    limited = crowded.client.find(query="mp4", limit=1001)
    assert (len(limited.sources), limited.more, limited.capped) == (1001, True, False)
    exact = crowded.client.find(name="f0007.mp4", limit=2)
    assert ([s.peer for s in exact.sources], exact.more) == (
        ["127.0.0.1:9001", "127.0.0.1:9002"],
        False,
    )


def test_the_cli_limit_and_its_notice(crowded: InProcessTracker) -> None:
    address = crowded.address
    cut = run_peer("search", "f0", "--query", "--limit", "5", "--tracker", address)
    default = run_peer("search", "f0", "--query", "--tracker", address)
    whole = run_peer("search", "f0", "--query", "--limit", "0", "--tracker", address)

    assert cut.returncode == default.returncode == whole.returncode == 0
    assert len(cut.stdout.splitlines()) == 5  # the matches alone
    assert cut.stderr.splitlines() == [
        "napshare-peer: more results match; listed the first 5 (--limit 0 lists all)"
    ]
    assert len(default.stdout.splitlines()) == 1000
    assert "listed the first 1000" in default.stderr
    assert len(whole.stdout.splitlines()) == 2000
    assert whole.stderr == ""


def test_a_bad_limit_is_a_usage_error(tracker: InProcessTracker) -> None:
    done = run_peer("search", "x", "--limit", "-1", "--tracker", tracker.address)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1


class Endless(tracker_pb2_grpc.TrackerServiceServicer):
    """A hostile tracker: every page says there is another, some pages hold too much."""

    def __init__(self, per_page: int) -> None:
        self.per_page = per_page
        self.calls = 0
        self.port = 0

    def Search(  # noqa: N802 - the RPC's name
        self, request: tracker_pb2.SearchRequest, context: grpc.ServicerContext
    ) -> tracker_pb2.SearchResponse:
        self.calls += 1
        info = file_info_pb2.FileInfo(name="loop.mp4", size=1, sha256="0" * 64)
        results = [tracker_pb2.SearchResult(peer_id="127.0.0.1:1", file=info)] * self.per_page
        return tracker_pb2.SearchResponse(results=results, truncated=True, next_page_token="again")


@pytest.fixture
def hostile() -> Iterator[tuple[Endless, Endless]]:
    servers, servicers = [], []
    for per_page in (0, 5000):
        servicer = Endless(per_page)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        tracker_pb2_grpc.add_TrackerServiceServicer_to_server(servicer, server)
        servicer.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        servicers.append(servicer)
    yield servicers[0], servicers[1]
    for server in servers:
        server.stop(None)


def test_a_hostile_tracker_cannot_make_a_search_endless(hostile: tuple[Endless, Endless]) -> None:
    empty, flooding = hostile
    for servicer, results in ((empty, 0), (flooding, MAX_RESULTS)):
        client = TrackerClient(f"127.0.0.1:{servicer.port}")
        try:
            found = client.find(query="loop")
            sources = client.query("loop")
        finally:
            client.close()
        assert (len(found.sources), found.more, found.capped) == (results, True, True)
        assert len(sources) == results
    assert empty.calls == 2 * MAX_PAGES
    assert flooding.calls == 2 * MAX_RESULTS // 5000  # extra results per page are dropped


class Malformed(tracker_pb2_grpc.TrackerServiceServicer):
    """A hostile tracker that mixes malformed results among two good ones."""

    def Search(  # noqa: N802 - the RPC's name
        self, request: tracker_pb2.SearchRequest, context: grpc.ServicerContext
    ) -> tracker_pb2.SearchResponse:
        good = "a" * 64

        def result(
            peer: str, name: str, size: int = 1, sha: str = good
        ) -> tracker_pb2.SearchResult:
            info = file_info_pb2.FileInfo(name=name, size=size, sha256=sha)
            return tracker_pb2.SearchResult(peer_id=peer, file=info)

        return tracker_pb2.SearchResponse(
            results=[
                result("127.0.0.1:7", "v.mp4"),
                result("unix:/tmp/socket", "v.mp4"),  # not a host:port
                result("dns:///evil.example:1", "v.mp4"),
                result("127.0.0.1:08", "v.mp4"),  # not the form Join issues
                result("127.0.0.1:7", "../v.mp4"),
                result("127.0.0.1:7", "x" * 1_000_000),  # a megabyte of name
                result("127.0.0.1:7", "other.mp4"),  # not the name searched for
                result("127.0.0.1:7", "v.mp4", size=-1),
                result("127.0.0.1:7", "v.mp4", sha="not hex"),
                result("[::1]:9", "v.mp4"),
            ]
        )


def test_malformed_results_from_a_tracker_are_dropped() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    tracker_pb2_grpc.add_TrackerServiceServicer_to_server(Malformed(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    client = TrackerClient(f"127.0.0.1:{port}")
    try:
        sources = client.search("v.mp4")
    finally:
        client.close()
        server.stop(None)
    assert [(s.peer, s.name) for s in sources] == [("127.0.0.1:7", "v.mp4"), ("[::1]:9", "v.mp4")]


def test_a_search_the_tracker_refuses_as_busy_is_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(index_module, "MAX_CANDIDATES", 0)  # every keyword search is broad
    index = TrackerIndex(max_concurrent_searches=1)
    index.join("127.0.0.1", 9001, [FileEntry(f"f{n}.mp4", n, "0" * 64) for n in range(30)])
    server, port = create_server(index, host="127.0.0.1", port=0)
    client = TrackerClient(f"127.0.0.1:{port}")
    busy = index._broad_searches
    busy.acquire()  # another broad search holds the only place
    threading.Timer(0.3, busy.release).start()
    try:
        assert len(client.query("mp4")) == 30
    finally:
        client.close()
        server.stop(None)
