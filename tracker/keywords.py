"""Keyword search over file names: a hashed trigram index, so a query rarely scans every name.

Each distinct name has an integer id. Every three-character piece (trigram) of the
lowercased name is hashed into one of a fixed number of buckets, and each bucket keeps the
ids of the names with a trigram there, as a compact array. A query word of three or more
characters occurs only in names that are in the buckets of all its trigrams, so the
smallest of those buckets, intersected with the next ones while that pays, gives the
candidates, which are then checked against every word. A fixed bucket count bounds the
index's memory whatever alphabet the names use; a rare collision only adds candidates.
Only a query whose every word is shorter than three characters checks every distinct name.

Removing a name leaves its id in the buckets (arrays cannot drop an item cheaply); a
bucket is rebuilt once half of it, and at least MIN_PURGE ids, is stale. Every candidate is
checked, so stale entries cost time, never wrong answers. An id is `clean` again once every
bucket its old name was in has been rebuilt; an owner that reuses only clean ids (the
catalog does) makes each rebuild a pass over the bucket alone. An id reused before that is
still answered right, but a rebuild then hashes the trigrams of its new name again, for
each bucket: seconds for 50,000 long names, under the caller's lock.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence

GRAM = 3
BUCKETS = 1 << 18
MAX_INTERSECTIONS = 4
FEW = 32
MIN_PURGE = 8  # stale ids a bucket may keep before a purge, whatever its size


def query_words(query: str) -> list[str]:
    """The distinct lowercased words of a query, in order."""
    return list(dict.fromkeys(query.lower().split()))


class KeywordIndex:
    """Hashed trigram buckets over the names in `names` (by id; None marks a free id)."""

    def __init__(self, names: Sequence[str | None], buckets: int = BUCKETS) -> None:
        if buckets < 1 or buckets & (buckets - 1):
            raise ValueError(f"bucket count {buckets} must be a power of two")
        self._names = names
        self._mask = buckets - 1
        self._buckets: list[array[int] | None] = [None] * buckets
        self._stale = array("I", bytes(4 * buckets))
        self._removals = 0  # names removed so far
        self._freed = array("Q")  # by id: the value of _removals when it was last removed
        self._purged = array("Q", bytes(8 * buckets))  # by bucket: _removals at its rebuild
        self._unpurged = array("I")  # by free id: buckets still holding it for its old name
        self.clean: list[int] = []  # free ids in no bucket: an owner may reuse them cheaply

    def add(self, name_id: int, name: str) -> None:
        """Index `name` under `name_id`."""
        buckets = self._buckets
        for bucket in self._buckets_of(name.lower()):
            ids = buckets[bucket]
            if ids is None:
                buckets[bucket] = array("I", (name_id,))
            else:
                ids.append(name_id)

    def remove(self, name_id: int, name: str) -> None:
        """Forget `name`, whose id is already free (`names[name_id]` is None or reused)."""
        self._removals += 1
        freed = self._freed
        if name_id >= len(freed):
            freed.frombytes(bytes(8 * (max(name_id + 1, len(self._names)) - len(freed))))
        freed[name_id] = self._removals
        buckets_of = self._buckets_of(name.lower())
        unpurged = self._unpurged
        if name_id >= len(unpurged):
            unpurged.frombytes(bytes(4 * (len(freed) - len(unpurged))))
        unpurged[name_id] = len(buckets_of)
        if not buckets_of:
            self._cleaned(name_id)
        for bucket in buckets_of:
            ids = self._buckets[bucket]
            assert ids is not None, f"{name!r} was never indexed"
            stale = self._stale[bucket] + 1
            if stale * 2 > len(ids) and stale >= MIN_PURGE:
                self._purge(bucket)
            else:
                self._stale[bucket] = stale

    def matches(self, words: Sequence[str]) -> Iterator[int]:
        """Ids of the names that contain every word of `words` (lowercased), each once."""
        names = self._names
        for name_id in self._candidates(words):
            name = names[name_id]
            if name is None:
                continue
            lowered = name.lower()
            for word in words:
                if word not in lowered:
                    break
            else:
                yield name_id

    def estimate(self, words: Sequence[str]) -> int:
        """At most how many names a search for `words` checks: the size of its smallest bucket
        (every distinct name when each word is shorter than three characters), 0 when a word
        cannot match. Safe without the caller's lock: each read is one atomic step, and a
        stale answer only misjudges how broad a search is.
        """
        smallest = -1
        for word in words:
            for bucket in self._buckets_of(word):
                ids = self._buckets[bucket]
                if ids is None:
                    return 0
                if smallest < 0 or len(ids) < smallest:
                    smallest = len(ids)
        return len(self._names) if smallest < 0 else smallest

    def bucket_sizes(self) -> list[int]:
        """The length of every non-empty bucket, stale ids included: for tests and statistics."""
        return [len(ids) for ids in self._buckets if ids is not None]

    def _candidates(self, words: Sequence[str]) -> Iterable[int]:
        """A superset of the matching ids, each once: the query's smallest buckets intersected."""
        per_word: list[list[tuple[int, int]]] = []  # each word's (length, bucket), smallest first
        for word in words:
            sizes = []
            for bucket in self._buckets_of(word):
                ids = self._buckets[bucket]
                if ids is None:
                    return ()
                sizes.append((len(ids), bucket))
            if sizes:
                per_word.append(sorted(sizes))
        if not per_word:
            return range(len(self._names))  # every word is too short for trigrams
        per_word.sort()
        # Other words' buckets first: those of one word hold much the same names.
        order = [sizes[0] for sizes in per_word] + sorted(
            pair for sizes in per_word for pair in sizes[1:]
        )
        size, smallest = order[0]
        # A pass over a bucket costs far less than checking a name, up to a point.
        others = [
            bucket for length, bucket in order[1 : MAX_INTERSECTIONS + 1] if length <= size * 8
        ]
        ids = self._buckets[smallest] or array("I")
        if size < FEW or not others:
            return _unique(ids, len(self._names)) if self._stale[smallest] else ids
        candidates = set(ids)
        for bucket in others:
            candidates.intersection_update(self._buckets[bucket] or ())
            if len(candidates) < FEW:
                break
        return candidates

    def _buckets_of(self, text: str) -> set[int]:
        mask = self._mask
        return {hash(text[i : i + GRAM]) & mask for i in range(len(text) - GRAM + 1)}

    def _cleaned(self, name_id: int) -> None:
        """Free `name_id` is in no bucket now: any entry of it later is its next name's."""
        self._freed[name_id] = 0
        self.clean.append(name_id)

    def _purge(self, bucket: int) -> None:
        """Rebuild one bucket without its stale ids."""
        names, freed = self._names, self._freed
        since, known = self._purged[bucket], len(freed)
        kept = array("I")
        unpurged = self._unpurged
        for name_id in _unique(self._buckets[bucket] or (), len(names)):
            name = names[name_id]
            if name is None:
                if name_id < len(unpurged) and unpurged[name_id]:
                    unpurged[name_id] -= 1
                    if not unpurged[name_id]:
                        self._cleaned(name_id)
                continue
            # Only an id freed since the last rebuild may be here for the name it had before.
            fresh = name_id >= known or freed[name_id] <= since
            if fresh or bucket in self._buckets_of(name.lower()):
                kept.append(name_id)
        self._stale[bucket] = 0
        self._purged[bucket] = self._removals
        self._buckets[bucket] = kept or None


def _unique(ids: Iterable[int], bound: int) -> Iterator[int]:
    """`ids` (all below `bound`) without repeats."""
    seen = bytearray(bound)
    for name_id in ids:
        if not seen[name_id]:
            seen[name_id] = 1
            yield name_id
