"""A search costs bounded work, concurrent broad searches are shed, and health keeps answering.

Before, a keyword search gathered, filtered and sorted every (peer, file) entry whose name
matched, under the index lock: `mp4` over 100,000 names took hundreds of milliseconds each,
and a burst of them held every worker thread, so health checks waited behind the burst.
"""

import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from napshare.common import error_details, reasons
from napshare.tracker import index as index_module
from napshare.tracker.checks import MAX_QUERY_CHARS
from napshare.tracker.errors import BusyError, InvalidRequestError
from napshare.tracker.index import FileEntry, TrackerIndex
from napshare.tracker.server import create_server
from napshare.tracker.store.base import SEARCH_BUDGET, SearchOutcome
from napshare.v1 import tracker_pb2

from tests.support.trackers import digest

PEERS = 20
FILES_PER_PEER = 5_000
SEARCH = "/napshare.v1.TrackerService/Search"


@pytest.fixture(scope="module")
def big() -> TrackerIndex:
    """20 peers sharing 5,000 distinct `clip-<n>.mp4` each: 100,000 names, all matching mp4."""
    index = TrackerIndex(3600)
    for peer in range(PEERS):
        files = [
            FileEntry(f"clip-{peer * FILES_PER_PEER + n}.mp4", n, "0" * 64)
            for n in range(FILES_PER_PEER)
        ]
        index.join("127.0.0.1", 10_000 + peer, files)
    return index


def every_page(index: TrackerIndex, query: str, limit: int) -> Iterator[SearchOutcome]:
    """Each page of a search, following the tokens to the end."""
    token = ""
    while True:
        outcome = index.search(query=query, limit=limit, page_token=token)
        yield outcome
        token = outcome.next_page_token
        if not token:
            return


def expected(index: TrackerIndex, words: list[str]) -> list[tuple[str, str]]:
    """Every (peer id, name) whose name holds every word, in result order, by brute force."""
    return sorted(
        (peer_id, entry.name)
        for peer_id, files in index.snapshot().items()
        for entry in files
        if all(word in entry.name.lower() for word in words)
    )


def test_a_search_matching_every_name_looks_at_a_bounded_number_of_entries(
    big: TrackerIndex,
) -> None:
    outcome = big.search(query="mp4", limit=100)

    assert len(outcome.matches) == 100
    assert outcome.truncated
    assert outcome.examined <= SEARCH_BUDGET
    assert [m.peer_id for m in outcome.matches] == ["127.0.0.1:10000"] * 100
    names = [m.file.name for m in outcome.matches]
    assert names == sorted(names)


def test_a_broad_search_with_few_matches_ends_its_page_early_and_paging_finds_them_all(
    big: TrackerIndex,
) -> None:
    # "p-7" is in 11,111 names of one peer (clip-7, clip-70 ... clip-79999 are all peer 14's
    # and 15's), so the walk crosses peers that have none before it finds them.
    pages = list(every_page(big, "CLIP-7 mp4", limit=1000))

    assert all(page.examined <= SEARCH_BUDGET for page in pages)
    assert any(page.truncated and len(page.matches) < 1000 for page in pages)
    found = [(m.peer_id, m.file.name) for page in pages for m in page.matches]
    assert found == expected(big, ["clip-7", "mp4"])
    assert len(found) == 11_111


def test_a_query_of_one_short_word_is_bounded_too(big: TrackerIndex) -> None:
    # Words shorter than a trigram have no bucket: before, every name was a candidate.
    outcome = big.search(query="9.", limit=10)

    assert outcome.examined <= SEARCH_BUDGET
    assert [m.file.name for m in outcome.matches][:2] == ["clip-1009.mp4", "clip-1019.mp4"]


@pytest.mark.parametrize("budget", [1, 3, 7, 50])
def test_pages_cut_by_the_budget_list_every_match_once_in_order(
    budget: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_module, "MAX_CANDIDATES", 0)  # every keyword search walks
    index = TrackerIndex(3600, search_budget=budget)
    shared = [FileEntry(f"Shared {n}.MP4", n, digest(str(n))) for n in range(4)]
    for peer in range(6):
        own = [
            FileEntry(f"own {peer}-{n}.{'mp4' if n % 3 else 'txt'}", n, "0" * 64) for n in range(9)
        ]
        index.join("127.0.0.1", 7000 - peer, [*own, *shared[: peer % 5]])
    index.join("127.0.0.1", 6000, [])  # a peer without files

    for limit in (1, 2, 5, 1000):
        pages = list(every_page(index, "mp4", limit))
        assert all(len(page.matches) <= limit for page in pages)
        assert all(page.examined <= budget for page in pages)
        found = [(m.peer_id, m.file.name) for page in pages for m in page.matches]
        assert found == expected(index, ["mp4"])


def test_pages_stay_correct_while_peers_join_and_leave(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "MAX_CANDIDATES", 0)
    index = TrackerIndex(3600, search_budget=4)
    tokens = {}
    for port in (5001, 5003, 5005):
        files = [FileEntry(f"song {port} {n}.ogg", n, "0" * 64) for n in range(5)]
        tokens[port] = index.join("127.0.0.1", port, files).token
    first = index.search(query="song", limit=3)
    index.leave("127.0.0.1:5003", tokens[5003])  # behind and ahead of the cursor
    index.join("127.0.0.1", 5004, [FileEntry("song late.ogg", 1, "0" * 64)])

    found = [(m.peer_id, m.file.name) for m in first.matches]
    token = first.next_page_token
    while token:
        page = index.search(query="song", limit=3, page_token=token)
        found += [(m.peer_id, m.file.name) for m in page.matches]
        token = page.next_page_token

    assert found == [
        *[("127.0.0.1:5001", f"song 5001 {n}.ogg") for n in range(5)],
        ("127.0.0.1:5004", "song late.ogg"),
        *[("127.0.0.1:5005", f"song 5005 {n}.ogg") for n in range(5)],
    ]


def test_a_query_longer_than_the_limit_is_invalid() -> None:
    with pytest.raises(InvalidRequestError) as raised:
        TrackerIndex().search(query="a" * (MAX_QUERY_CHARS + 1))
    assert raised.value.reason == reasons.QUERY_TOO_LONG


def test_broad_searches_past_the_bound_are_refused_at_once() -> None:
    index = TrackerIndex(3600, max_concurrent_searches=1)
    index.join("127.0.0.1", 9000, [FileEntry(f"clip-{n}.mp4", n, "0" * 64) for n in range(12_000)])
    answers: dict[str, int] = {}

    def search(what: str, **request: str) -> None:
        answers[what] = len(index.search(**request).matches)

    first = threading.Thread(target=search, args=("first broad",), kwargs={"query": "mp4"})
    others = [
        threading.Thread(target=search, args=("exact",), kwargs={"name": "clip-1.mp4"}),
        threading.Thread(target=search, args=("narrow",), kwargs={"query": "clip-11999"}),
    ]
    with index._lock:  # the index is busy: the first broad search waits for it
        first.start()
        while index._broad_searches._value:  # until it holds its place
            time.sleep(0.01)
        with pytest.raises(BusyError) as raised:
            index.search(query="clip mp4")
        for thread in others:  # these wait for the lock like any search, but are not refused
            thread.start()
    for thread in [first, *others]:
        thread.join()
    assert raised.value.retry_delay is not None
    assert raised.value.retry_delay > 0
    assert answers == {"first broad": 100, "exact": 1, "narrow": 1}
    assert index.search(query="clip mp4").matches  # its place is free again


def test_health_answers_and_searches_are_answered_or_shed_while_200_broad_searches_run(
    big: TrackerIndex,
) -> None:
    server, port = create_server(big, host="127.0.0.1", port=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        health = health_pb2_grpc.HealthStub(channel)
        search = channel.unary_unary(SEARCH)
        requests = [  # a page size each, so that no answer comes from the answer cache
            tracker_pb2.SearchRequest(query="clip mp4", page_size=n + 1).SerializeToString()
            for n in range(200)
        ]
        calls = [search.future(request, timeout=300) for request in requests]
        checks = 0
        while not all(call.done() for call in calls) or checks < 3:
            # Before, these waited behind the whole burst (about a minute here) and timed out.
            answer = health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            checks += 1
        codes: dict[str, int] = {}
        for call in calls:
            code = call.code()
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                found = error_details.read(call)  # type: ignore[arg-type]
                assert found is not None
                assert found.reason == reasons.SEARCHES_BUSY
                assert found.retry_delay is not None
                assert found.retry_delay > 0
            codes[code.name] = codes.get(code.name, 0) + 1
        assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}, codes
        assert codes.get("OK", 0) >= 1, codes
    finally:
        channel.close()
        server.stop(None)
