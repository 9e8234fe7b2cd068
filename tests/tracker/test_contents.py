"""The content index (tracker/contents.py): every name whose holders announce a digest is
among its candidates, through splits and purges, and the buckets grow with what they hold.
"""

import hashlib
import random

from napshare.tracker.contents import LOAD, MIN_LEVEL, SET_AFTER, ContentIndex


def digest(n: int) -> bytes:
    return hashlib.sha256(str(n).encode()).digest()


def test_every_announced_digest_finds_its_names_through_churn() -> None:
    rng = random.Random(7)
    announced: dict[int, set[bytes]] = {}  # name id: the digests its holders announce now
    index = ContentIndex(lambda name_id: announced.get(name_id, ()))
    for step in range(20_000):
        name_id = rng.randrange(3000)
        held = announced.setdefault(name_id, set())
        if held and rng.random() < 0.4:
            gone = rng.choice(sorted(held))
            held.discard(gone)
            index.forget(gone)
        else:
            new = digest(rng.randrange(5000))
            held.add(new)
            index.add(name_id, new)
        if step % 2000 == 0:
            for name_id, digests in announced.items():
                for d in digests:
                    assert name_id in index.candidates(d)

    sizes = index.bucket_sizes()
    live = sum(len(d) for d in announced.values())
    assert len(sizes) > 1 << MIN_LEVEL  # it grew
    assert sum(sizes) <= LOAD * len(sizes)
    assert sum(sizes) < 2 * live  # stale ids do not pile up
    for ids in (index.candidates(d) for d in map(digest, range(5000))):
        assert len(set(ids)) == len(ids)  # each once


def test_a_small_index_costs_a_few_buckets() -> None:
    index = ContentIndex(lambda _name_id: ())
    index.add(1, digest(1))
    assert len(index.bucket_sizes()) == 1 << MIN_LEVEL


def test_many_names_of_one_digest_are_each_a_candidate_once_through_splits_and_purges() -> None:
    """Every empty file has one sha256, and anyone can list thousands of names with one made-up
    digest: one bucket then holds them all, kept once each (past SET_AFTER, in a set too).
    """
    empty = hashlib.sha256(b"").digest()
    announced: dict[int, set[bytes]] = {}
    index = ContentIndex(lambda name_id: announced.get(name_id, ()))
    for name_id in range(20 * SET_AFTER):
        announced[name_id] = {empty, digest(name_id)}
        index.add(name_id, empty)
        index.add(name_id, empty)  # a second holder of the same name: no second entry
        index.add(name_id, digest(name_id))
    assert sorted(index.candidates(empty)) == list(range(20 * SET_AFTER))
    for name_id in range(20 * SET_AFTER):  # two thirds drop it: the bucket is rebuilt
        if name_id % 3:
            announced[name_id].discard(empty)
            index.forget(empty)
    index.add(3, empty)  # still there: not added twice
    kept = list(index.candidates(empty))
    assert set(kept) >= set(range(0, 20 * SET_AFTER, 3))
    assert len(kept) == len(set(kept)) < 20 * SET_AFTER  # no id twice, stale ones purged
