"""The memory backend's own parts without gRPC: keyword and name tables, purges, memory.

What every backend must do is the contract suite's (tests/tracker/store/contract.py).
"""

import hashlib
import random
import tracemalloc

import pytest
from napshare.tracker.errors import (
    UnauthenticatedError,
)
from napshare.tracker.index import DeadPeer, FileEntry, TrackerIndex
from napshare.tracker.keywords import KeywordIndex, query_words
from napshare.tracker.nametable import NameTable

from tests.support.clock import Clock


def entry(name, size=1):
    return FileEntry(name, size, hashlib.sha256(name.encode()).hexdigest())


def brute_force(snapshot, words):
    """What a keyword search must return: a scan of every (peer, file)."""
    return sorted(
        (peer_id, file.name)
        for peer_id, files in snapshot.items()
        for file in files
        if all(word in file.name.lower() for word in words)
    )


def paged(index, query, page_size):
    """Every match of `query`, fetched `page_size` at a time."""
    found, token = [], ""
    while True:
        outcome = index.search(query=query, limit=page_size, page_token=token)
        assert len(outcome.matches) <= page_size
        found += [(m.peer_id, m.file.name) for m in outcome.matches]
        if not (token := outcome.next_page_token):
            return found


ALPHABET = "abcAB.-_1é日本İ"


def random_name(rng):
    while (name := "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 7)))) in (".", ".."):
        pass
    return name


@pytest.mark.parametrize("buckets", [1, 8, 1 << 18])
def test_keyword_index_with_collisions_equals_brute_force(buckets):
    rng = random.Random(buckets)
    names: list[str | None] = []
    keywords = KeywordIndex(names, buckets)
    live = {}
    for _ in range(3000):
        if live and rng.random() < 0.4:
            name_id = rng.choice(sorted(live))
            name = live.pop(name_id)
            names[name_id] = None
            keywords.remove(name_id, name)
        else:
            name = random_name(rng) + random_name(rng)
            free = [i for i, n in enumerate(names) if n is None]
            name_id = free[0] if free else len(names)
            if not free:
                names.append(None)
            names[name_id] = name
            live[name_id] = name
            keywords.add(name_id, name)
        words = query_words(random_name(rng)[:4])
        expected = sorted(i for i, n in live.items() if all(w in n.lower() for w in words))
        found = list(keywords.matches(words))
        assert sorted(found) == expected
        assert len(found) == len(set(found))
    assert sum(keywords.bucket_sizes()) <= 2 * sum(len(n) for n in live.values()) + buckets


def test_stale_ids_are_purged_so_buckets_stay_small():
    index = TrackerIndex()
    for round_number in range(30):
        files = [entry(f"round{round_number}-file{n}.mp4") for n in range(200)]
        index.join("10.0.0.1", 8776, files)  # replaces the last round's files
    live = sum(len(f"round29-file{n}.mp4") - 2 for n in range(200))
    assert sum(index._catalog.keywords.bucket_sizes()) <= 2 * live + 200


def test_name_table_agrees_with_a_dict():
    rng = random.Random(5)
    names: list[str | None] = []
    table = NameTable(names)
    expected: dict[str, int] = {}
    for _ in range(20000):
        name = f"n{rng.randrange(3000)}"
        if name in expected:
            name_id = expected.pop(name)
            table.remove(name)
            names[name_id] = None
        else:
            names.append(name)
            expected[name] = len(names) - 1
            table.add(name, len(names) - 1)
        probe = f"n{rng.randrange(3000)}"
        assert table.get(probe) == expected.get(probe)
    assert len(table) == len(expected)
    assert all(table.get(name) == name_id for name, name_id in expected.items())


def test_tokens_are_checked_in_constant_time_and_per_peer():
    index = TrackerIndex()
    a = index.join("10.0.0.1", 1, [])
    b = index.join("10.0.0.1", 2, [])

    with pytest.raises(UnauthenticatedError):
        index.leave(a.peer_id, b.token)
    with pytest.raises(UnauthenticatedError):
        index.leave(a.peer_id, "é")
    index.leave(a.peer_id, a.token)
    assert index.snapshot() == {b.peer_id: []}


def test_shared_files_are_stored_once():
    index = TrackerIndex()
    for port in range(1, 200):
        index.join("10.0.0.1", port, [entry(f"shared-{n}.mp4") for n in range(50)])
    catalog = index._catalog
    name_id = catalog.id_of("shared-7.mp4")
    holders = [peer_id for peer_id, _, _ in catalog.holdings([name_id])]
    records = {id(catalog.record(peer_id, name_id)) for peer_id in holders}

    assert index.stats().names == 50
    assert len(holders) == 199
    assert len(records) == 1  # equal records are one object
    assert sum(catalog.keywords.bucket_sizes()) < 50 * 20


def test_a_million_entries_would_fit_in_300_bytes_each():
    """Distinct 24-character names, the worst case: every (peer, file) entry has its own name.

    This counts Python's allocations (about 290 bytes an entry, 32 of them the pieces root
    and about 10 the content index);
    RSS adds the allocator's overhead, which `make bench` measures against the 300-byte target.
    """
    index = TrackerIndex()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for peer in range(200):
            announced = [entry(f"peer{peer:05d}-lecture{n:03d}.mp4", n) for n in range(100)]
            index.join(f"10.0.{peer // 250}.{peer % 250 + 1}", 6699, announced)
        del announced
        per_entry = (tracemalloc.get_traced_memory()[0] - before) / 20_000
    finally:
        tracemalloc.stop()

    assert index.stats().entries == 20_000
    assert per_entry < 295, per_entry


def test_the_generation_changes_with_every_change_that_searches_can_see():
    clock = Clock()
    index = TrackerIndex(heartbeat_interval=10, clock=clock)
    start = index.generation
    a = index.join("10.0.0.1", 1, [entry("x")])
    after_join = index.generation

    index.heartbeat(a.peer_id, a.token)
    index.update(a.peer_id, a.token, [])
    index.search(name="x")
    assert index.generation == after_join != start
    assert index.unchanged_since(after_join)
    clock.now += 30
    assert not index.unchanged_since(after_join)  # a lease ran out: searches will differ
    assert index.expire() == [DeadPeer(a.peer_id, ["x"])]
    assert index.generation != after_join
