"""The memory backend of the tracker's index: registered peers, their tokens and leases, and
search over their files, all in this process (`--store memory`, the default, and the model
the other backends are tested against).

A search costs bounded work. An exact name, a file's sha256 or pieces root (the content
index's candidates), or keywords whose candidates are few (at most MAX_CANDIDATES names,
judged from the keyword index), is answered from those candidates. A
broader keyword search walks the entries in result order instead (peers by id, each peer's
files by name, both kept sorted), so a page costs what it returns, and at most SEARCH_BUDGET
entries: past that the page ends early, with a token that resumes after the last entry
looked at. A restart forgets everything: for one lease after the start, searches say they
are gathering the peers that may still be re-joining.
"""

from __future__ import annotations

import bisect
import heapq
import hmac
import logging
import math
import secrets
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Hashable

from napshare.common.addresskey import AddressKey
from napshare.common.protocol import HEARTBEAT_INTERVAL
from napshare.tracker import paging
from napshare.tracker.catalog import Catalog, pack_record, unpack_record
from napshare.tracker.checks import MAX_FILES, CheckedFiles, SearchQuery
from napshare.tracker.errors import (
    address_taken,
    join_in_progress,
    not_registered,
    unknown_contact,
    wrong_token,
)
from napshare.tracker.largejoins import LARGE_JOIN_FILES, LARGE_JOIN_INTERVAL
from napshare.tracker.limits import (
    PER_ADDRESS,
    WHOLE_INDEX,
    WHOLE_INDEX_WHO,
    Limits,
    address_who,
    check,
    too_many_files,
)
from napshare.tracker.nonces import RecentNonces
from napshare.tracker.store.base import (
    MAX_CANDIDATES,
    MAX_CONCURRENT_SEARCHES,
    MAX_JOIN_NONCES,
    SEARCH_BUDGET,
    Contact,
    DeadPeer,
    FileEntry,
    IndexStats,
    IndexStore,
    Listing,
    Match,
    Page,
    holds_against,
)

logger = logging.getLogger(__name__)

_INSORT_MAX = 64  # new files of one call inserted one by one; more are sorted in at once
# Files of departed peers are dropped, and those of a big Join added, at most this many per
# hold of the lock, so RPCs and health keep answering while a million entries go or 50,000
# come (a Join holding the lock throughout held everyone else up to 9 s).
DROP_SLICE = 1000
# ... and at most this many bytes of names: the keyword index's work is per character, and a
# thousand names of 250 bytes took 0.3 s.
SLICE_BYTES = 64 * 1024
SLICE_PAUSE = 0.001  # seconds between slices, for the threads waiting for the lock
PURGE_SECONDS = 1.0  # expire() returns after this long even with files left to drop


class _Peer:
    """A registration: address, owner, secret, lease renewal time, the ids of its names in
    name order (a broad search walks them in that order), the bytes of those names, the
    address it joined from (None: not counted per address) and its local addresses.
    """

    __slots__ = (
        "certificate",
        "files",
        "identity",
        "local_addresses",
        "name_bytes",
        "peer_id",
        "reachable",
        "renewed",
        "source",
        "token",
    )

    def __init__(
        self,
        peer_id: str,
        token: str,
        now: float,
        source: str | None,
        *,
        identity: str = "",
        certificate: bytes = b"",
        reachable: bool = False,
        local_addresses: tuple[str, ...] = (),
    ) -> None:
        self.peer_id = peer_id
        self.local_addresses = local_addresses  # host:port on its own network, as it said
        self.reachable = reachable  # the tracker reached this identity at this address
        self.token = token
        self.renewed = now
        self.source = source
        self.identity = identity  # the certificate's fingerprint; "" for an anonymous Join
        self.certificate = certificate
        self.files: array[int] = array("I")
        self.name_bytes = 0


class _Usage:
    """What the registrations from one source address hold."""

    __slots__ = ("files", "name_bytes", "peers")

    def __init__(self) -> None:
        self.peers = 0
        self.files = 0
        self.name_bytes = 0


class _Departed:
    """A peer that expired or left, whose files are still being dropped, a slice at a time."""

    __slots__ = ("dropped", "expired", "names", "peer")

    def __init__(self, peer: _Peer, *, expired: bool) -> None:
        self.peer = peer
        self.expired = expired  # report it as dead once its files are gone
        self.dropped = 0  # how many of peer.files are gone
        self.names: list[str] = []  # of the dropped files, for the report


class TrackerIndex(IndexStore):
    """The index in this process; every method is safe to call from many threads at once."""

    def __init__(
        self,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_files: int = MAX_FILES,
        max_concurrent_searches: int = MAX_CONCURRENT_SEARCHES,
        search_budget: int = SEARCH_BUDGET,
        limits: Limits | None = None,
        max_candidates: int | None = None,
        page_token_secret: bytes | None = None,
        address_key: AddressKey | None = None,
        max_join_nonces: int = MAX_JOIN_NONCES,
        large_join_files: int = LARGE_JOIN_FILES,
        large_join_interval: float = LARGE_JOIN_INTERVAL,
    ) -> None:
        if not (math.isfinite(heartbeat_interval) and heartbeat_interval > 0):
            raise ValueError(f"heartbeat interval {heartbeat_interval} must be a positive number")
        if max_concurrent_searches < 1 or search_budget < 1:
            raise ValueError("max_concurrent_searches and search_budget must be at least 1")
        super().__init__(
            heartbeat_interval,
            max_files=max_files,
            max_concurrent_searches=max_concurrent_searches,
            max_candidates=MAX_CANDIDATES if max_candidates is None else max_candidates,
            limits=limits,
            address_key=address_key,
            max_join_nonces=max_join_nonces,
            large_join_files=large_join_files,
            large_join_interval=large_join_interval,
            clock=clock,
        )
        self.search_budget = search_budget
        self._nonces = RecentNonces(max_join_nonces)
        # Tokens of an index in memory need not outlive it: the index does not either.
        self._tokens = paging.PageTokens(
            page_token_secret or secrets.token_bytes(paging.SECRET_BYTES)
        )
        self._lease = self.lease
        self._clock = clock
        self._lock = threading.Lock()
        self._peers: OrderedDict[str, _Peer] = OrderedDict()  # oldest renewal first
        self._order: list[str] = []  # the registered peer ids, sorted
        self._catalog = Catalog()
        self._entries = 0  # (peer, file) pairs in the catalog, departed peers' included
        self._usage: dict[str, _Usage] = {}  # by source address, of registered peers only
        # Peers out of _peers whose files are still in the catalog, oldest first. Searches
        # skip their files; a peer id is never both here and in _peers.
        self._departed: OrderedDict[str, _Departed] = OrderedDict()
        # Peers whose big Join is being added, a slice at a time: not registered yet, their
        # files skipped by searches; entries and distinct name bytes they will still add.
        self._joining: dict[str, _Peer] = {}
        self._pending = (0, 0)
        self._dead: list[DeadPeer] = []
        self._generation = 0  # changes whenever any search could answer differently
        # For one lease after the start, peers of a tracker that restarted may still be
        # re-joining: searches say so (until this time; None once it has passed).
        self._gathering_until: float | None = clock() + self._lease
        self._due = self._gathering_until  # when the oldest lease runs out, or gathering ends

    @property
    def generation(self) -> int:
        """A number that changes whenever a search could answer differently."""
        return self._generation

    def unchanged_since(self, generation: Hashable) -> bool:
        """Whether every search answers as it did at `generation` (no lease has run out since,
        nor has the gathering window ended).
        """
        return generation == self._generation and self._clock() < self._due

    def _page_tokens(self) -> paging.PageTokens:
        return self._tokens

    def _join(
        self,
        peer_id: str,
        token: str,
        files: CheckedFiles,
        source: str | None,
        *,
        identity: str,
        certificate: bytes,
        reachable: bool,
        local_addresses: tuple[str, ...],
    ) -> None:
        # Sorted here, without the lock: added in this order, the names' ids are in the order
        # a broad search walks them.
        order = sorted(range(len(files.names)), key=files.names.__getitem__)
        records = _records(files)
        names = [files.names[i] for i in order]
        checked = (names, [records[i] for i in order])
        name_bytes = sum(len(name.encode()) for name in names)
        with self._lock:
            now = self._expire_locked()
            if peer_id in self._joining:
                raise join_in_progress(peer_id)
            old = self._peers.get(peer_id)
            if old is not None and _holds_against(old, identity, proven=reachable):
                raise address_taken(peer_id)
            distinct_bytes = self._catalog.new_bytes(names)
            self._check_room_locked(source, 1, len(names), name_bytes, distinct_bytes, replaced=old)
            peer = _Peer(
                peer_id,
                token,
                now,
                source,
                identity=identity,
                certificate=certificate,
                reachable=reachable,
                local_addresses=local_addresses,
            )
            gone = self._departed.get(peer_id)
            work = len(names) + (0 if old is None else len(old.files))
            work += 0 if gone is None else len(gone.peer.files) - gone.dropped
            if work <= DROP_SLICE:
                self._replace_locked(old, peer, checked, name_bytes)
                return
            # A big Join: the registration it replaces leaves searches now and its files go,
            # then the new one's are added, DROP_SLICE at a time with the lock let go in
            # between, and it is registered once whole.
            if old is not None:
                self._depart_locked(old, expired=False)
            self._joining[peer_id] = peer
            self._pending = (self._pending[0] + len(names), self._pending[1] + distinct_bytes)
            self._register_locked(peer)
            self._counted_locked(peer, len(names), name_bytes, entries=False)
        try:
            self._drop_departed_of(peer_id)
            self._add_in_slices(peer, checked)
        except BaseException:
            with self._lock:
                self._abandon_locked(peer, len(names), name_bytes, distinct_bytes)
            raise
        with self._lock:
            del self._joining[peer_id]
            self._pending = (self._pending[0], self._pending[1] - distinct_bytes)
            peer.renewed = self._clock()
            self._peers[peer_id] = peer
            bisect.insort(self._order, peer_id)
            self._changed_locked()

    def _replace_locked(
        self,
        old: _Peer | None,
        peer: _Peer,
        checked: tuple[list[str], list[bytes]],
        name_bytes: int,
    ) -> None:
        """Put `peer` with `checked` in the place of `old` (if any) at once."""
        peer_id = peer.peer_id
        if old is not None:
            del self._peers[peer_id]
            self._unregister_locked(old)
            self._remove_locked(old)
            logger.info("peer %s joined again; its earlier registration is replaced", peer_id)
        self._finish_departed_locked(peer_id)
        self._peers[peer_id] = peer
        if old is None:
            bisect.insort(self._order, peer_id)
        self._register_locked(peer)
        self._add_locked(peer, checked, name_bytes)
        self._changed_locked()

    def _drop_departed_of(self, peer_id: str) -> None:
        """Drop what is left of departed `peer_id`'s files, a slice per hold of the lock."""
        while True:
            with self._lock:
                gone = self._departed.get(peer_id)
                if gone is None:
                    return
                self._departed.move_to_end(peer_id, last=False)
                files, name_bytes = len(gone.peer.files), gone.peer.name_bytes
                self._drop_departed_locked(
                    max(1, min(DROP_SLICE, SLICE_BYTES * files // max(1, name_bytes)))
                )
            time.sleep(SLICE_PAUSE)

    def _add_in_slices(self, peer: _Peer, checked: tuple[list[str], list[bytes]]) -> None:
        """Add the files of joining `peer` (it holds none yet; `checked` in name order) to the
        catalog, DROP_SLICE per hold of the lock.
        """
        names, records = checked
        start = 0
        while start < len(names):
            if start:
                time.sleep(SLICE_PAUSE)
            end, size = start, 0
            while end < len(names) and end - start < DROP_SLICE and size < SLICE_BYTES:
                size += len(names[end])
                end += 1
            with self._lock:
                new = self._catalog.put_all(peer.peer_id, names[start:end], records[start:end])
                peer.files.extend(new)
                self._entries += len(new)
                self._pending = (self._pending[0] - len(new), self._pending[1])
            assert len(new) == end - start, "a joining peer held some names already"
            start = end

    def _abandon_locked(
        self, peer: _Peer, files: int, name_bytes: int, distinct_bytes: int
    ) -> None:
        """Undo a big Join of `peer` that failed half way: what it added goes in slices."""
        del self._joining[peer.peer_id]
        self._pending = (
            self._pending[0] - (files - len(peer.files)),
            self._pending[1] - distinct_bytes,
        )
        self._counted_locked(peer, len(peer.files) - files, 0, entries=False)
        self._unregister_locked(peer)
        self._departed[peer.peer_id] = _Departed(peer, expired=False)

    def _take_nonce(self, key: bytes, expires_at: float, now: float) -> None:
        self._nonces.take(key, expires_at, now)

    def _claim(self, peer_id: str, identity: str, *, may_prove: bool) -> None:
        with self._lock:
            self._expire_locked()
            old = self._peers.get(peer_id) or self._joining.get(peer_id)
            if old is not None and _holds_against(old, identity, proven=may_prove):
                raise address_taken(peer_id)

    def _update(self, peer_id: str, token: str, files: CheckedFiles, removed: set[str]) -> None:
        checked = (files.names, _records(files))
        with self._lock:
            now = self._expire_locked()
            peer = self._authenticated_locked(peer_id, token)
            catalog = self._catalog
            held = [catalog.id_of(n) for n in removed if catalog.holds(peer_id, n)]
            gone = {i for i in held if i is not None}
            gone_bytes = sum(len(catalog.name_of(i).encode()) for i in gone)
            new_names = [name for name in checked[0] if not catalog.holds(peer_id, name)]
            new = len(new_names)
            new_bytes = sum(len(name.encode()) for name in new_names)
            if len(peer.files) - len(gone) + new > self.max_files:
                raise too_many_files(peer_id, len(peer.files) - len(gone) + new, self.max_files)
            self._check_room_locked(
                peer.source,
                0,
                new - len(gone),
                new_bytes - gone_bytes,
                catalog.new_bytes(new_names),
            )
            if gone:
                self._drop_locked(peer, gone, gone_bytes)
            self._add_locked(peer, checked, new_bytes)
            self._renew_locked(peer, now)
            if checked[0] or gone:
                self._changed_locked()

    def _heartbeat(self, peer_id: str, token: str) -> None:
        with self._lock:
            now = self._expire_locked()
            self._renew_locked(self._authenticated_locked(peer_id, token), now)

    def _verify(self, peer_id: str, token: str) -> None:
        with self._lock:
            self._expire_locked()
            self._authenticated_locked(peer_id, token)

    def _contact(self, peer_id: str) -> Contact:
        with self._lock:
            self._expire_locked()
            peer = self._peers.get(peer_id)
            if peer is None:
                raise unknown_contact(peer_id)
            return Contact(
                peer_id,
                peer.token,
                peer.identity,
                peer.source,
                peer.reachable,
                peer.local_addresses,
            )

    def _leave(self, peer_id: str, token: str) -> None:
        with self._lock:
            self._expire_locked()
            peer = self._authenticated_locked(peer_id, token)
            self._depart_locked(peer, expired=False)

    def _listing(self, peer_id: str, prefix: str, after: str | None, wanted: int) -> Listing:
        with self._lock:
            self._expire_locked()
            peer = self._peers.get(peer_id)
            if peer is None:
                raise unknown_contact(peer_id)
            catalog, files = self._catalog, peer.files
            name_of = catalog.name_of
            at = bisect.bisect_left(files, prefix, key=name_of)
            if after is not None:
                at = max(at, bisect.bisect_right(files, after, key=name_of))
            found: list[FileEntry] = []
            while at < len(files) and len(found) < wanted:
                name = name_of(files[at])
                if not name.startswith(prefix):
                    break  # the names under a folder come together: the rest sort after
                found.append(_entry(name, catalog.record(peer_id, files[at])))
                at += 1
            return Listing(found, peer.certificate, peer.reachable)

    def _page(self, wanted: SearchQuery, after: paging.Key | None, *, broad: bool) -> Page | None:
        # Judged without the lock, so that a refused search never waits for it.
        if not broad and wanted.words and self._is_broad(wanted.words):
            return None
        with self._lock:
            return self._search_locked(wanted, after)

    def _is_broad(self, words: list[str]) -> bool:
        return self._catalog.keywords.estimate(words) > self.max_candidates

    def _search_locked(self, wanted: SearchQuery, after: paging.Key | None) -> Page:
        self._expire_locked()
        catalog = self._catalog
        gathering = self._gathering_until is not None
        resume: paging.Key | None = None
        name, words, limit, content = wanted.name, wanted.words, wanted.limit, wanted.content
        if not words or not self._is_broad(words):
            if content is not None:
                held = catalog.with_content(*content)
            elif name:
                found = catalog.id_of(name)
                held = [] if found is None else catalog.holdings((found,))
            else:
                held = catalog.holdings(catalog.matching(words))
            examined = len(held)
            if self._departed or self._joining:
                departed, joining = self._departed, self._joining
                held = [h for h in held if h[0] not in departed and h[0] not in joining]
            if after is not None:
                held = [h for h in held if (h[0], h[1]) > after]
            # (peer id, name) is unique, so name ids are never compared.
            first = sorted(held) if len(held) <= limit else heapq.nsmallest(limit + 1, held)
        else:
            first, resume, examined = self._walk_locked(words, limit + 1, after)
        peers = self._peers
        matches = [
            Match(
                peer_id,
                _entry(file_name, catalog.record(peer_id, name_id)),
                peers[peer_id].certificate,
                peers[peer_id].reachable,
            )
            for peer_id, file_name, name_id in first
        ]
        return Page(matches, resume, gathering, examined, self._generation)

    def _walk_locked(
        self, words: list[str], wanted: int, after: paging.Key | None
    ) -> tuple[list[tuple[str, str, int]], paging.Key | None, int]:
        """The first `wanted` matches after `after`, walking entries in (peer id, name) order.

        Returns them with (peer id, name, name id) each, the key to resume after if the walk
        stopped at the budget rather than at the end, and how many entries it looked at.
        Peers without files cost a step each but no budget: a resume key needs an entry.
        """
        name_of = self._catalog.name_of
        order, budget = self._order, self.search_budget
        found: list[tuple[str, str, int]] = []
        examined = 0
        start = 0 if after is None else bisect.bisect_left(order, after[0])
        for position in range(start, len(order)):
            peer_id = order[position]
            files = self._peers[peer_id].files
            first = 0
            if after is not None and peer_id == after[0]:
                first = bisect.bisect_right(files, after[1], key=name_of)
            for at in range(first, len(files)):
                name_id = files[at]
                file_name = name_of(name_id)
                examined += 1
                lowered = file_name.lower()
                for word in words:
                    if word not in lowered:
                        break
                else:
                    found.append((peer_id, file_name, name_id))
                    if len(found) == wanted:
                        return found, None, examined
                if examined >= budget:
                    return found, (peer_id, file_name), examined
        return found, None, examined

    def expire(self) -> list[DeadPeer]:
        """Drop peers whose lease ran out and the files of every peer that expired or left,
        DROP_SLICE files per hold of the lock, for up to PURGE_SECONDS; return every expired
        peer whose files are all gone since the last call.
        """
        deadline = time.monotonic() + PURGE_SECONDS
        while True:
            with self._lock:
                self._expire_locked()
                done = self._drop_departed_locked(DROP_SLICE)
                if done or time.monotonic() >= deadline:
                    dead, self._dead = self._dead, []
                    return dead
            time.sleep(SLICE_PAUSE)

    def files_of(self, peer_id: str) -> list[FileEntry] | None:
        """The files of a registered peer, by name; None if it is not registered."""
        with self._lock:
            self._expire_locked()
            peer = self._peers.get(peer_id)
            return None if peer is None else self._files_locked(peer)

    def snapshot(self) -> dict[str, list[FileEntry]]:
        """Every registered peer id and its files, taken at one instant: for comparisons."""
        with self._lock:
            self._expire_locked()
            return {
                peer_id: self._files_locked(self._peers[peer_id]) for peer_id in sorted(self._peers)
            }

    def stats(self) -> IndexStats:
        """Peers, (peer, file) entries (those of departed peers not yet dropped too) and
        distinct names.
        """
        with self._lock:
            self._expire_locked()
            return IndexStats(len(self._peers), self._entries, len(self._catalog))

    def audit(self) -> list[str]:
        """What a recount of the whole index finds wrong; empty when all is consistent."""
        problems: list[str] = []
        with self._lock:
            catalog = self._catalog
            holders = catalog.holdings(catalog.ids())
            held = {(holder, name) for holder, name, _ in holders}
            listed = {
                (peer_id, catalog.name_of(i))
                for peer_id, peer in self._peers.items()
                for i in peer.files
            } | {
                (peer_id, catalog.name_of(i))
                for peer_id, gone in self._departed.items()
                for i in gone.peer.files[gone.dropped :]
            }
            if held != listed:
                problems.append(
                    f"{len(held - listed)} catalog entries belong to no peer, "
                    f"{len(listed - held)} peers' files are not in the catalog"
                )
            if self._entries != len(held):
                problems.append(f"entries counted {self._entries}, recounted {len(held)}")
            names = {name for _, name in held}
            name_bytes = sum(len(name.encode()) for name in names)
            if catalog.name_bytes != name_bytes or len(catalog) != len(names):
                problems.append(
                    f"names counted {len(catalog)} ({catalog.name_bytes} bytes), recounted "
                    f"{len(names)} ({name_bytes} bytes)"
                )
            if not self._joining and self._pending != (0, 0):
                problems.append(f"no Join being added, yet {self._pending} pending")
            unfound = sum(
                1
                for holder, _, name_id in holders
                for digest in catalog.digests(holder, name_id)
                if name_id not in catalog.contents.candidates(digest)
            )
            if unfound:
                problems.append(f"{unfound} digests of entries are not in the content index")
            if self._order != sorted(self._peers):
                problems.append("the peers' search order is not their sorted ids")
            usage: dict[str, tuple[int, int, int]] = {}
            for peer in self._peers.values():
                if peer.source is not None:
                    peers, files, nbytes = usage.get(peer.source, (0, 0, 0))
                    nbytes += peer.name_bytes
                    usage[peer.source] = (peers + 1, files + len(peer.files), nbytes)
            counted = {s: (u.peers, u.files, u.name_bytes) for s, u in self._usage.items()}
            if usage != counted:
                problems.append(f"per-address usage counted {counted}, recounted {usage}")
        return problems

    def close(self) -> None:
        """Nothing to let go of: the index lives and dies with this process."""

    def _files_locked(self, peer: _Peer) -> list[FileEntry]:
        catalog = self._catalog
        return sorted(
            _entry(catalog.name_of(i), catalog.record(peer.peer_id, i)) for i in peer.files
        )

    def _check_room_locked(
        self,
        source: str | None,
        peers: int,
        files: int,
        name_bytes: int,
        distinct_bytes: int,
        *,
        replaced: _Peer | None = None,
    ) -> None:
        """CapacityError if adding `peers` registrations, `files` entries and `name_bytes`
        (`distinct_bytes` of them in names the index does not have yet) from `source`, less
        the registration `replaced`, would pass a limit it grows.
        """
        gone = (0, 0, 0) if replaced is None else (1, len(replaced.files), replaced.name_bytes)
        if source is not None:
            usage = self._usage.get(source) or _Usage()
            same = replaced is not None and replaced.source == source
            mine = gone if same else (0, 0, 0)
            whose = address_who(source)
            current = (usage.peers, usage.files, usage.name_bytes)
            added = (peers - mine[0], files - mine[1], name_bytes - mine[2])
            for limit, count, more in zip(PER_ADDRESS, current, added, strict=True):
                check(whose, limit, count, more, self.limits)
        current = (
            len(self._peers) + len(self._joining),
            self._entries + self._pending[0],
            self._catalog.name_bytes + self._pending[1],
        )
        added = (peers - gone[0], files - gone[1], distinct_bytes)
        for limit, count, more in zip(WHOLE_INDEX, current, added, strict=True):
            check(WHOLE_INDEX_WHO, limit, count, more, self.limits)

    def _register_locked(self, peer: _Peer) -> None:
        """Count `peer` (already in _peers) against its source address."""
        if peer.source is not None:
            usage = self._usage.get(peer.source)
            if usage is None:
                usage = self._usage[peer.source] = _Usage()
            usage.peers += 1

    def _unregister_locked(self, peer: _Peer) -> None:
        """Stop counting `peer` (already out of _peers) and its files against its address."""
        if peer.source is not None:
            usage = self._usage[peer.source]
            usage.peers -= 1
            usage.files -= len(peer.files)
            usage.name_bytes -= peer.name_bytes
            if not usage.peers:
                del self._usage[peer.source]

    def _counted_locked(
        self, peer: _Peer, files: int, name_bytes: int, *, entries: bool = True
    ) -> None:
        """Count `files` more entries with `name_bytes` more bytes of names for `peer`
        (against its address only, not `entries`: a big Join's, counted as they are added).
        """
        if entries:
            self._entries += files
        peer.name_bytes += name_bytes
        if peer.source is not None:
            usage = self._usage[peer.source]
            usage.files += files
            usage.name_bytes += name_bytes

    def _add_locked(
        self, peer: _Peer, checked: tuple[list[str], list[bytes]], new_bytes: int
    ) -> None:
        """Add `checked` to `peer`; `new_bytes` are those of the names it did not have yet."""
        new = self._catalog.put_all(peer.peer_id, *checked)
        name_of = self._catalog.name_of
        if len(new) <= _INSORT_MAX:
            for name_id in new:
                bisect.insort(peer.files, name_id, key=name_of)
        else:
            peer.files.extend(new)
            peer.files = array("I", sorted(peer.files, key=name_of))
        self._counted_locked(peer, len(new), new_bytes)

    def _unorder_locked(self, peer_id: str) -> None:
        """Take `peer_id`, no longer registered, out of the sorted peer ids."""
        order = self._order
        del order[bisect.bisect_left(order, peer_id)]

    def _drop_locked(self, peer: _Peer, name_ids: set[int], name_bytes: int) -> None:
        """Drop the names `name_ids` (all held by `peer`, `name_bytes` long) from it."""
        for name_id in name_ids:
            self._catalog.drop(peer.peer_id, name_id)
        peer.files = array("I", (i for i in peer.files if i not in name_ids))
        self._counted_locked(peer, -len(name_ids), -name_bytes)

    def _remove_locked(self, peer: _Peer) -> None:
        """Drop `peer`'s files at once (it is out of `_peers` and no longer counted)."""
        for name_id in peer.files:
            self._catalog.drop(peer.peer_id, name_id)
        self._entries -= len(peer.files)
        peer.files = array("I")

    def _depart_locked(self, peer: _Peer, *, expired: bool) -> None:
        """Take `peer` out of the registrations; its files go later, a slice at a time."""
        del self._peers[peer.peer_id]
        self._unorder_locked(peer.peer_id)
        self._unregister_locked(peer)
        self._departed[peer.peer_id] = _Departed(peer, expired=expired)
        self._changed_locked()

    def _drop_departed_locked(self, budget: int) -> bool:
        """Drop up to `budget` files of departed peers, oldest first; whether none are left."""
        catalog, departed = self._catalog, self._departed
        while departed:
            gone = next(iter(departed.values()))
            peer = gone.peer
            start = gone.dropped
            ids = peer.files[start : start + budget]
            for name_id in ids:
                if gone.expired:
                    gone.names.append(catalog.name_of(name_id))
                catalog.drop(peer.peer_id, name_id)
            gone.dropped += len(ids)
            self._entries -= len(ids)
            budget -= len(ids)
            if gone.dropped < len(peer.files):
                return False
            del departed[peer.peer_id]
            if gone.expired:
                self._dead.append(DeadPeer(peer.peer_id, gone.names))
        return True

    def _finish_departed_locked(self, peer_id: str) -> None:
        """Drop at once what is left of departed `peer_id`'s files, before it joins again."""
        gone = self._departed.get(peer_id)
        if gone is None:
            return
        self._departed.move_to_end(peer_id, last=False)
        self._drop_departed_locked(len(gone.peer.files) - gone.dropped)

    def _authenticated_locked(self, peer_id: str, token: str) -> _Peer:
        peer = self._peers.get(peer_id)
        if peer is None:
            raise not_registered(peer_id)
        if not hmac.compare_digest(peer.token.encode(), token.encode()):
            raise wrong_token(peer_id)
        return peer

    def _renew_locked(self, peer: _Peer, now: float) -> None:
        peer.renewed = now
        self._peers.move_to_end(peer.peer_id)
        self._set_due_locked()

    def _changed_locked(self) -> None:
        """Note that searches may answer differently from now on."""
        self._generation += 1
        self._set_due_locked()

    def _set_due_locked(self) -> None:
        """Note when searches will next answer differently by the clock alone."""
        oldest = next(iter(self._peers.values()), None)
        due = math.inf if oldest is None else oldest.renewed + self._lease
        gathering_until = self._gathering_until
        self._due = due if gathering_until is None else min(due, gathering_until)

    def _expire_locked(self) -> float:
        """Drop every peer whose lease ran out, and return the time now."""
        now = self._clock()
        if self._gathering_until is not None and now >= self._gathering_until:
            self._gathering_until = None
            logger.info("a lease has passed since the start: peers have had time to re-join")
            self._changed_locked()  # searches stop saying "gathering"
        peers = self._peers
        while peers:
            oldest = next(iter(peers.values()))
            if now - oldest.renewed < self._lease:
                break
            self._depart_locked(oldest, expired=True)
        return now


def _holds_against(old: _Peer, identity: str, *, proven: bool) -> bool:
    """Whether registration `old` keeps its address from a Join of `identity`."""
    return holds_against(old.identity, old.reachable, identity, proven=proven)


def _records(files: CheckedFiles) -> list[bytes]:
    return [
        pack_record(size, digest, root)
        for size, digest, root in zip(files.sizes, files.digests, files.roots, strict=True)
    ]


def _entry(name: str, record: bytes) -> FileEntry:
    size, digest, pieces_root = unpack_record(record)
    return FileEntry(name, size, digest.hex(), pieces_root.hex())
