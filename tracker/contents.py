"""Search by content: which names some peer holds with a given sha256 or pieces root.

Each digest hashes (Python's keyed hash of bytes, so nobody can aim many digests at one
bucket) into a bucket, and each bucket keeps, as a compact array, the ids of the names that
some holder announced with a digest there: about 4 bytes per (name, digest). A lookup checks
each id of the digest's bucket against its holders' records, so a collision or a stale id
only costs a look, never a wrong answer.

The buckets grow with the index by linear hashing: once they hold LOAD ids each on average,
one more bucket is made by splitting the next one in turn, so no call pays for more than one
bucket's ids, and a small index costs a few buckets, not a fixed table. As in the keyword
index (tracker/keywords.py), a digest that no holder of a name has any more leaves that
name's id in its bucket; a bucket is rebuilt, from what the holders announce now, when it
splits or once about half of it, and at least MIN_PURGE ids, may be stale.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable

MIN_LEVEL = 4  # the index starts with 2**MIN_LEVEL buckets
LOAD = 16  # ids per bucket, on average, before one more bucket is split off
MIN_PURGE = 8  # stale ids a bucket may keep before a rebuild, whatever its size
# A bucket with more ids than this also keeps them in a set, so that adding one is not a scan:
# many names can share one digest (every empty file has the same sha256, and anyone can list
# thousands of names with one made-up digest), and each add would scan them all.
SET_AFTER = 32

# The digests (sha256 and pieces root, raw) that the holders of a name id announce now.
DigestsOf = Callable[[int], Iterable[bytes]]


class ContentIndex:
    """Buckets of name ids, by the digests their holders announced (linear hashing)."""

    def __init__(self, digests_of: DigestsOf) -> None:
        self._digests_of = digests_of
        self._level = MIN_LEVEL  # buckets below `_split` are addressed with one bit more
        self._split = 0  # the next bucket to split
        self._buckets: list[array[int] | None] = [None] * (1 << MIN_LEVEL)
        self._stale = array("I", bytes(4 << MIN_LEVEL))
        self._members: dict[int, set[int]] = {}  # the ids of each bucket over SET_AFTER
        self._held = 0  # ids in every bucket, stale ones included

    def add(self, name_id: int, digest: bytes) -> None:
        """Note that a holder of `name_id` announced `digest` (a sha256 or a pieces root)."""
        if self._put(name_id, self._address(hash(digest))):
            self._held += 1
            if self._held > LOAD * len(self._buckets):
                self._split_next()

    def forget(self, digest: bytes) -> None:
        """Note that one holder no longer announces `digest` for some name: its bucket may
        hold one stale id more.
        """
        bucket = self._address(hash(digest))
        ids = self._buckets[bucket]
        if ids is None:
            return
        stale = self._stale[bucket] + 1
        if stale * 2 > len(ids) and stale >= MIN_PURGE:
            self._rebuild(bucket)
        else:
            self._stale[bucket] = stale

    def candidates(self, digest: bytes) -> Iterable[int]:
        """A superset of the ids of the names some holder announced with `digest`, each once."""
        ids = self._buckets[self._address(hash(digest))]
        return () if ids is None else ids

    def bucket_sizes(self) -> list[int]:
        """The length of every bucket, stale ids included: for tests and statistics."""
        return [0 if ids is None else len(ids) for ids in self._buckets]

    def _address(self, hashed: int) -> int:
        bucket = hashed & ((1 << self._level) - 1)
        if bucket < self._split:
            bucket = hashed & ((2 << self._level) - 1)
        return bucket

    def _put(self, name_id: int, bucket: int) -> bool:
        """Put `name_id` in `bucket` unless it is there; whether it was not."""
        ids = self._buckets[bucket]
        if ids is None:
            self._buckets[bucket] = array("I", (name_id,))
            return True
        members = self._members.get(bucket)
        if members is None:
            if name_id in ids:
                return False
            if len(ids) >= SET_AFTER:
                self._members[bucket] = {*ids, name_id}
        elif name_id in members:
            return False
        else:
            members.add(name_id)
        ids.append(name_id)
        return True

    def _split_next(self) -> None:
        """Add one bucket: the ids of the next bucket in turn go where their digests now
        address, it or the new one (stale ones nowhere).
        """
        self._buckets.append(None)
        self._stale.append(0)
        bucket = self._split
        self._split += 1
        if self._split == 1 << self._level:
            self._level += 1
            self._split = 0
        self._rebuild(bucket, (bucket, len(self._buckets) - 1))

    def _rebuild(self, bucket: int, into: tuple[int, ...] | None = None) -> None:
        """Put the ids of `bucket` back where some holder's digest addresses them now, if that
        is one of `into` (default: `bucket` itself); the others are stale and dropped.
        """
        into = into or (bucket,)
        ids = self._buckets[bucket] or ()
        self._buckets[bucket] = None
        self._members.pop(bucket, None)
        self._stale[bucket] = 0
        self._held -= len(ids)
        for name_id in ids:
            for digest in self._digests_of(name_id):
                address = self._address(hash(digest))
                if address in into and self._put(name_id, address):
                    self._held += 1
