"""The tracker's domain without gRPC: search against brute force, leases, limits, memory."""

import hashlib
import random
import tracemalloc

import pytest
from napshare.tracker.errors import (
    CapacityError,
    InvalidRequestError,
    UnauthenticatedError,
    UnknownPeerError,
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


def test_keyword_search_equals_a_brute_force_scan_through_churn():
    rng = random.Random(2024)
    index = TrackerIndex()
    tokens = {}
    for step in range(600):
        port = rng.randint(1, 30)
        action = rng.random()
        if action < 0.5 or port not in tokens:
            names = {random_name(rng) for _ in range(rng.randint(0, 12))}
            tokens[port] = index.join("10.0.0.1", port, [entry(n) for n in names]).token
        elif action < 0.7:
            names = {random_name(rng) for _ in range(rng.randint(1, 5))}
            index.update(f"10.0.0.1:{port}", tokens[port], [entry(n, step) for n in names])
        elif action < 0.8:
            held = [f.name for f in index.files_of(f"10.0.0.1:{port}")]
            gone = [*rng.sample(held, min(len(held), rng.randint(0, 4))), random_name(rng)]
            index.update(f"10.0.0.1:{port}", tokens[port], [], gone)
        else:
            index.leave(f"10.0.0.1:{port}", tokens.pop(port))
        if step % 10 == 0:
            snapshot = index.snapshot()
            for _ in range(20):
                query = " ".join(random_name(rng)[: rng.randint(1, 4)] for _ in range(2))
                outcome = index.search(query=query, limit=1000)
                found = [(m.peer_id, m.file.name) for m in outcome.matches]
                assert found == brute_force(snapshot, query_words(query)), query
                assert not outcome.truncated
                assert paged(index, query, rng.randint(1, 5)) == found, query


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


def test_exact_search_is_case_sensitive_and_sorted():
    index = TrackerIndex()
    for port in (3, 1, 2):
        index.join("10.0.0.8", port, [entry("A.mp4"), entry("a.mp4")])

    found = index.search(name="a.mp4").matches

    assert [(m.peer_id, m.file.name) for m in found] == [
        ("10.0.0.8:1", "a.mp4"),
        ("10.0.0.8:2", "a.mp4"),
        ("10.0.0.8:3", "a.mp4"),
    ]


def test_a_silent_peer_expires_after_three_intervals():
    clock = Clock()
    index = TrackerIndex(heartbeat_interval=10, clock=clock)
    silent = index.join("10.0.0.1", 1, [entry("x.mp4"), entry("y.mp4")])
    beating = index.join("10.0.0.1", 2, [entry("x.mp4")])

    clock.now += 20
    index.heartbeat(beating.peer_id, beating.token)
    clock.now += 9.9
    assert index.expire() == []
    clock.now += 0.1  # 30 s since the Join

    assert index.expire() == [DeadPeer(silent.peer_id, ["x.mp4", "y.mp4"])]
    assert [m.peer_id for m in index.search(name="x.mp4").matches] == [beating.peer_id]
    with pytest.raises(UnknownPeerError):
        index.heartbeat(silent.peer_id, silent.token)
    index.update(beating.peer_id, beating.token, [])  # renews, 30 s after the Join
    clock.now += 29.9
    assert index.expire() == []
    assert index.stats().peers == 1


def test_an_expired_peer_is_gone_even_before_expire_runs():
    clock = Clock()
    index = TrackerIndex(heartbeat_interval=1, clock=clock)
    gone = index.join("10.0.0.1", 1, [entry("x.mp4")])
    clock.now += 3

    assert index.search(name="x.mp4").matches == []
    with pytest.raises(UnknownPeerError):
        index.update(gone.peer_id, gone.token, [entry("z")])
    assert index.expire() == [DeadPeer(gone.peer_id, ["x.mp4"])]  # reported once
    assert index.expire() == []


def test_a_bad_rejoin_keeps_the_old_registration():
    index = TrackerIndex()
    first = index.join("10.0.0.1", 1, [entry("x.mp4")])
    before = index.snapshot()

    with pytest.raises(InvalidRequestError):
        index.join("10.0.0.1", 1, [entry("new.mp4"), FileEntry("bad/name", 1, "a" * 64)])

    assert index.snapshot() == before
    index.heartbeat(first.peer_id, first.token)


def test_capacity_counts_new_names_only():
    index = TrackerIndex(max_files=3)
    peer = index.join("10.0.0.1", 1, [entry("a"), entry("b")])
    index.update(peer.peer_id, peer.token, [entry("a", 5), entry("c")])

    with pytest.raises(CapacityError):
        index.update(peer.peer_id, peer.token, [entry("d")])
    with pytest.raises(InvalidRequestError):
        index.join("10.0.0.1", 2, [entry(n) for n in "wxyz"])
    assert [f.size for f in index.files_of(peer.peer_id)] == [5, 1, 1]


def test_update_removes_names_of_the_callers_own_registration_only():
    index = TrackerIndex()
    a = index.join("10.0.0.1", 1, [entry("x.mp4"), entry("y.mp4"), entry("z.mp4")])
    b = index.join("10.0.0.1", 2, [entry("x.mp4")])
    generation = index.generation

    index.update(a.peer_id, a.token, [entry("w.mp4")], ["x.mp4", "z.mp4", "never.mp4"])

    assert [f.name for f in index.files_of(a.peer_id)] == ["w.mp4", "y.mp4"]
    assert [f.name for f in index.files_of(b.peer_id)] == ["x.mp4"]
    assert [m.peer_id for m in index.search(name="x.mp4").matches] == [b.peer_id]
    assert index.search(name="z.mp4").matches == []
    assert index.stats().entries == 3
    assert index.generation != generation


def test_removing_only_unknown_names_changes_nothing_but_renews_the_lease():
    clock = Clock()
    index = TrackerIndex(10, clock=clock)
    a = index.join("10.0.0.1", 1, [entry("x.mp4")])
    generation = index.generation
    clock.now += 25

    index.update(a.peer_id, a.token, [], ["nope.mp4", "nope.mp4"])
    clock.now += 25

    assert index.generation == generation
    assert index.expire() == []
    assert [f.name for f in index.files_of(a.peer_id)] == ["x.mp4"]


@pytest.mark.parametrize(
    ("files", "removed", "word"),
    [
        ([], ["a/b.mp4"], r"removed_names\[0\]"),
        ([], ["ok.mp4", ""], r"removed_names\[1\]"),
        ([entry("x.mp4")], ["x.mp4"], "both"),
        ([], ["n"] * 4, "limit"),
    ],
    ids=["slash", "empty", "in both lists", "too many"],
)
def test_bad_removed_names_change_nothing(files, removed, word):
    index = TrackerIndex(max_files=3)
    a = index.join("10.0.0.1", 1, [entry("x.mp4")])
    before = index.snapshot()

    with pytest.raises(InvalidRequestError, match=word):
        index.update(a.peer_id, a.token, files, removed)

    assert index.snapshot() == before


def test_capacity_counts_removals_first():
    index = TrackerIndex(max_files=2)
    peer = index.join("10.0.0.1", 1, [entry("a"), entry("b")])

    index.update(peer.peer_id, peer.token, [entry("c")], ["a"])

    assert [f.name for f in index.files_of(peer.peer_id)] == ["b", "c"]


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

    This counts Python's allocations (about 280 bytes an entry, 32 of them the pieces root);
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


def test_the_pieces_root_is_stored_and_listed_per_holder():
    index = TrackerIndex()
    root = hashlib.sha256(b"root").hexdigest()
    digest = hashlib.sha256(b"x").hexdigest()
    a = index.join("10.0.0.1", 1, [FileEntry("x.mp4", 5, digest, root)])
    b = index.join("10.0.0.2", 1, [FileEntry("x.mp4", 5, digest)])  # a peer without roots
    index.join("10.0.0.3", 1, [FileEntry("empty", 0, hashlib.sha256(b"").hexdigest())])

    found = {m.peer_id: m.file for m in index.search(name="x.mp4").matches}

    assert found[a.peer_id] == FileEntry("x.mp4", 5, digest, root)
    assert found[b.peer_id] == FileEntry("x.mp4", 5, digest, "")
    assert index.search(name="empty").matches[0].file.pieces_root == ""


@pytest.mark.parametrize(
    ("size", "root"), [(5, "A" * 64), (5, "a" * 63), (5, "xyz"), (0, "a" * 64)]
)
def test_a_bad_pieces_root_is_refused(size, root):
    index = TrackerIndex()
    with pytest.raises(InvalidRequestError) as caught:
        index.join("10.0.0.1", 1, [FileEntry("x.mp4", size, "b" * 64, root)])
    assert caught.value.reason == "PIECES_ROOT_INVALID"
    assert caught.value.metadata == {"field": "files[0].pieces_root"}
