"""The tracker's index: registered peers, their tokens and leases, and search over their files.

A search costs bounded work. An exact name, or keywords whose candidates are few (at most
MAX_CANDIDATES names, judged from the keyword index), is answered from those candidates. A
broader keyword search walks the entries in result order instead (peers by id, each peer's
files by name, both kept sorted), so a page costs what it returns, and at most SEARCH_BUDGET
entries: past that the page ends early, with a token that resumes after the last entry
looked at. At most `max_concurrent_searches` broad searches run or wait at once; others
are refused with BusyError at once, before they wait for the index lock.
"""

from __future__ import annotations

import bisect
import heapq
import hmac
import logging
import math
import re
import secrets
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from napshare.common import reasons
from napshare.common.address import (
    InvalidAddressError,
    check_host,
    check_port,
    format_address,
    normal_address,
)
from napshare.common.names import InvalidNameError, check_file_name, check_sha256
from napshare.common.protocol import HEARTBEAT_INTERVAL, LEASE_INTERVALS, MAX_PAGE_SIZE
from napshare.tracker import paging
from napshare.tracker.catalog import Catalog, pack_record, unpack_record
from napshare.tracker.errors import (
    AddressTakenError,
    BusyError,
    CapacityError,
    InvalidRequestError,
    UnauthenticatedError,
    UnknownPeerError,
)
from napshare.tracker.keywords import query_words
from napshare.tracker.limits import Limits, flag

logger = logging.getLogger(__name__)

MAX_FILES = 50_000
DEFAULT_LIMIT = 100
MAX_LIMIT = MAX_PAGE_SIZE
TOKEN_BYTES = 16
MAX_QUERY_CHARS = 1024
MAX_CANDIDATES = 10_000  # a keyword search whose candidates may be more is broad: it walks
SEARCH_BUDGET = 10_000  # entries a broad search looks at for one page
MAX_CONCURRENT_SEARCHES = 4  # broad searches running or waiting for the lock at once
BUSY_RETRY_SECONDS = 1.0  # what a refused broad search is told to wait (RetryInfo)
_INSORT_MAX = 64  # new files of one call inserted one by one; more are sorted in at once
# Files of departed peers are dropped at most this many per hold of the lock, so RPCs and
# health keep answering while a million entries go.
DROP_SLICE = 1000
SLICE_PAUSE = 0.001  # seconds between slices, for the threads waiting for the lock
PURGE_SECONDS = 1.0  # expire() returns after this long even with files left to drop
_HEX_ROOT = re.compile(r"[0-9a-f]{64}")


class FileLike(Protocol):
    """A file as a peer announces it: a protobuf FileInfo or a FileEntry."""

    @property
    def name(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> str: ...
    @property
    def pieces_root(self) -> str: ...


class FileEntry(NamedTuple):
    """One file a peer shares."""

    name: str
    size: int
    sha256: str
    pieces_root: str = ""


class Match(NamedTuple):
    """One peer that shares one matching file."""

    peer_id: str
    file: FileEntry
    certificate: bytes = b""  # the peer's, as its Join carried it; empty when anonymous
    reachable: bool = False  # the tracker reached the peer at peer_id when it joined


class SearchOutcome(NamedTuple):
    """One page of matches in (peer id, name) order, the token of the next page, if any, and
    whether the tracker is still gathering the peers it had before a restart.
    """

    matches: list[Match]
    next_page_token: str
    gathering: bool
    examined: int = 0  # entries gathered (exact name, few candidates) or walked (broad)

    @property
    def truncated(self) -> bool:
        """Whether more matched than this page holds."""
        return bool(self.next_page_token)


@dataclass(frozen=True, slots=True)
class Registration:
    """What a joined peer needs to prove who it is later."""

    peer_id: str
    token: str


@dataclass(frozen=True, slots=True)
class Contact:
    """What Connect needs of a registered peer: who it is, where it joined from, its local
    addresses, and the token of its registration (a Listen stream holds it).
    """

    peer_id: str
    token: str
    identity: str  # "" for an anonymous Join
    source: str | None  # the IP address its Join came from (None: a caller in this process)
    reachable: bool
    local_addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeadPeer:
    """A peer whose lease ran out, and the names of the files it had."""

    peer_id: str
    names: list[str]


@dataclass(frozen=True, slots=True)
class IndexStats:
    """How big the index is."""

    peers: int
    entries: int
    names: int


class _Peer:
    """A registration: address, owner, secret, lease renewal time, the ids of its names in
    name order (a broad search walks them in that order), the bytes of those names and the
    address it joined from (None: not counted per address).
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


class TrackerIndex:
    """Peers and their files; every method is safe to call from many threads at once."""

    def __init__(
        self,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_files: int = MAX_FILES,
        max_concurrent_searches: int = MAX_CONCURRENT_SEARCHES,
        search_budget: int = SEARCH_BUDGET,
        limits: Limits | None = None,
    ) -> None:
        if not (math.isfinite(heartbeat_interval) and heartbeat_interval > 0):
            raise ValueError(f"heartbeat interval {heartbeat_interval} must be a positive number")
        if max_concurrent_searches < 1 or search_budget < 1:
            raise ValueError("max_concurrent_searches and search_budget must be at least 1")
        self.heartbeat_interval = heartbeat_interval
        self.max_files = max_files
        self.search_budget = search_budget
        self._broad_searches = threading.BoundedSemaphore(max_concurrent_searches)
        self.limits = limits or Limits()
        self._lease = LEASE_INTERVALS * heartbeat_interval
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

    def unchanged_since(self, generation: int) -> bool:
        """Whether every search answers as it did at `generation` (no lease has run out since,
        nor has the gathering window ended).
        """
        return generation == self._generation and self._clock() < self._due

    def join(
        self,
        host: str,
        port: int,
        files: Sequence[FileLike],
        source: str | None = None,
        *,
        identity: str = "",
        certificate: bytes = b"",
        reachable: bool = False,
        local_addresses: Sequence[str] = (),
    ) -> Registration:
        """Register a peer of `identity` ("" for anonymous), replacing a registration of the
        same address and identity, or, when this one was `reachable` there, one of another
        identity that was not; AddressTakenError if one of another identity holds it.

        `source` is the address the call came from, which the per-address limits count (None:
        a caller in this process, not counted); past a limit, CapacityError and no change.
        `local_addresses` (already checked) are kept for Connect's callers from `source`.
        """
        peer_id = self.claim(host, port, identity, may_prove=reachable)
        checked = self._check_files(files)
        name_bytes = sum(len(name.encode()) for name in checked[0])
        token = secrets.token_hex(TOKEN_BYTES)
        with self._lock:
            now = self._expire_locked()
            old = self._peers.get(peer_id)
            if old is not None and _holds_against(old, identity, proven=reachable):
                raise _taken(peer_id)
            self._check_room_locked(
                source,
                1,
                len(checked[0]),
                name_bytes,
                self._catalog.new_bytes(checked[0]),
                replaced=old,
            )
            if old is not None:
                del self._peers[peer_id]
                self._unregister_locked(old)
                self._remove_locked(old)
                logger.info("peer %s joined again; its earlier registration is replaced", peer_id)
            self._finish_departed_locked(peer_id)
            peer = _Peer(
                peer_id,
                token,
                now,
                source,
                identity=identity,
                certificate=certificate,
                reachable=reachable,
                local_addresses=tuple(local_addresses),
            )
            self._peers[peer_id] = peer
            if old is None:
                bisect.insort(self._order, peer_id)
            self._register_locked(peer)
            self._add_locked(peer, checked, name_bytes)
            self._changed_locked()
        return Registration(peer_id, token)

    def claim(self, host: str, port: int, identity: str, *, may_prove: bool = False) -> str:
        """The peer id of host:port if `identity` may join with it now: no live registration
        of another identity holds it, other than one the tracker never reached there, which a
        Join that `may_prove` (signed, so it will be checked) can still take over by being
        reached. Raises InvalidRequestError or AddressTakenError.
        """
        try:
            peer_id = format_address(check_host(host), check_port(port))
        except InvalidAddressError as error:
            raise InvalidRequestError(str(error), reasons.ADDRESS_INVALID) from None
        with self._lock:
            self._expire_locked()
            old = self._peers.get(peer_id)
            if old is not None and _holds_against(old, identity, proven=may_prove):
                raise _taken(peer_id)
        return peer_id

    def update(
        self,
        peer_id: str,
        token: str,
        files: Sequence[FileLike],
        removed_names: Sequence[str] = (),
    ) -> None:
        """Add or refresh `files` and drop `removed_names` of the caller's own registration.

        Removed names the caller does not have are ignored. The lease is renewed.
        """
        peer_id = _normal_peer_id(peer_id)
        checked = self._check_files(files)
        removed = self._check_removed(removed_names, checked[0])
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
                raise CapacityError(
                    f"peer {peer_id} would share {len(peer.files) - len(gone) + new} files; "
                    f"the limit is {self.max_files} per peer",
                    metadata={"limit": str(self.max_files)},
                )
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

    def heartbeat(self, peer_id: str, token: str) -> None:
        """Renew the caller's lease."""
        peer_id = _normal_peer_id(peer_id)
        with self._lock:
            now = self._expire_locked()
            self._renew_locked(self._authenticated_locked(peer_id, token), now)

    def verify(self, peer_id: str, token: str) -> None:
        """Check that `token` is that of `peer_id`'s live registration, renewing nothing."""
        peer_id = _normal_peer_id(peer_id)
        with self._lock:
            self._expire_locked()
            self._authenticated_locked(peer_id, token)

    def contact(self, peer_id: str) -> Contact:
        """How to reach registered `peer_id`: UnknownPeerError if it is not registered."""
        peer_id = _normal_peer_id(peer_id)
        with self._lock:
            self._expire_locked()
            peer = self._peers.get(peer_id)
            if peer is None:
                raise UnknownPeerError(
                    f"peer {peer_id} is not registered (it left, or its lease ran out)"
                )
            return Contact(
                peer_id,
                peer.token,
                peer.identity,
                peer.source,
                peer.reachable,
                peer.local_addresses,
            )

    def leave(self, peer_id: str, token: str) -> None:
        """Remove the caller and its files."""
        peer_id = _normal_peer_id(peer_id)
        with self._lock:
            self._expire_locked()
            peer = self._authenticated_locked(peer_id, token)
            self._depart_locked(peer, expired=False)

    def search(
        self, *, name: str = "", query: str = "", limit: int = 0, page_token: str = ""
    ) -> SearchOutcome:
        """A page of matches for an exact `name` or every keyword of `query` (exactly one is set).

        `limit` is the page size (0: DEFAULT_LIMIT; at most MAX_LIMIT); `page_token` is empty
        for the first page, else the `next_page_token` of the page before.
        """
        if bool(name) == bool(query):
            raise InvalidRequestError(
                "set exactly one of name (an exact file name) and query (keywords)",
                reasons.NAME_OR_QUERY_REQUIRED,
            )
        if limit < 0:
            raise InvalidRequestError(f"limit {limit} is negative", reasons.LIMIT_INVALID)
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidRequestError(
                f"query has {len(query)} characters; the limit is {MAX_QUERY_CHARS}",
                reasons.QUERY_TOO_LONG,
                {"field": "query", "limit": str(MAX_QUERY_CHARS)},
            )
        limit = min(limit or DEFAULT_LIMIT, MAX_LIMIT)
        words = query_words(query)
        if name:
            _check_name(name, "name")
        elif not words:
            raise InvalidRequestError(
                "query has no word in it; give at least one keyword", reasons.QUERY_EMPTY
            )
        search = paging.search_id(name, words)
        after = paging.decode(page_token, search) if page_token else None
        # Read without the lock, so that a refused search never waits for it.
        broad = not name and self._is_broad(words)
        if broad and not self._broad_searches.acquire(blocking=False):
            raise BusyError(
                "the tracker is running as many broad searches as it allows; ask again "
                f"in {BUSY_RETRY_SECONDS:g} s, or add words that narrow the query",
                retry_delay=BUSY_RETRY_SECONDS,
            )
        try:
            with self._lock:
                return self._search_locked(search, name, words, limit, after)
        finally:
            if broad:
                self._broad_searches.release()

    def _is_broad(self, words: list[str]) -> bool:
        return self._catalog.keywords.estimate(words) > MAX_CANDIDATES

    def _search_locked(
        self, search: bytes, name: str, words: list[str], limit: int, after: paging.Key | None
    ) -> SearchOutcome:
        self._expire_locked()
        catalog = self._catalog
        gathering = self._gathering_until is not None
        resume: paging.Key | None = None
        if name or not self._is_broad(words):
            if name:
                found = catalog.id_of(name)
                held = [] if found is None else catalog.holdings((found,))
            else:
                held = catalog.holdings(catalog.matching(words))
            examined = len(held)
            if self._departed:
                departed = self._departed
                held = [h for h in held if h[0] not in departed]
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
        if len(matches) > limit:
            last = matches[limit - 1]
            token = paging.encode(search, (last.peer_id, last.file.name))
            return SearchOutcome(matches[:limit], token, gathering, examined)
        token = "" if resume is None else paging.encode(search, resume)
        return SearchOutcome(matches, token, gathering, examined)

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
            peer = self._peers.get(peer_id)
            return None if peer is None else self._files_locked(peer)

    def snapshot(self) -> dict[str, list[FileEntry]]:
        """Every registered peer id and its files, taken at one instant: for comparisons."""
        with self._lock:
            return {
                peer_id: self._files_locked(self._peers[peer_id]) for peer_id in sorted(self._peers)
            }

    def stats(self) -> IndexStats:
        """Peers, (peer, file) entries (those of departed peers not yet dropped too) and
        distinct names.
        """
        with self._lock:
            return IndexStats(len(self._peers), self._entries, len(self._catalog))

    def _check_files(self, files: Sequence[FileLike]) -> tuple[list[str], list[bytes]]:
        """The files' names and packed records, or InvalidRequestError naming a bad one."""
        if len(files) > self.max_files:
            raise InvalidRequestError(
                f"{len(files)} files in one call; the limit is {self.max_files}",
                reasons.TOO_MANY_FILES,
                {"field": "files", "limit": str(self.max_files)},
            )
        names = [file.name for file in files]
        sizes = [file.size for file in files]
        digests = [file.sha256 for file in files]
        roots = [file.pieces_root for file in files]
        position = 0
        try:
            for position, name in enumerate(names):  # noqa: B007 - the error names it
                check_file_name(name)
            for position, digest in enumerate(digests):  # noqa: B007
                check_sha256(digest)
        except InvalidNameError as error:
            part = "name" if error.reason == reasons.NAME_INVALID else "sha256"
            raise InvalidRequestError(
                f"files[{position}]: {error}", error.reason, {"field": f"files[{position}].{part}"}
            ) from None
        if sizes and min(sizes) < 0:
            position = next(at for at, size in enumerate(sizes) if size < 0)
            raise InvalidRequestError(
                f"files[{position}]: size {sizes[position]} is negative",
                reasons.SIZE_INVALID,
                {"field": f"files[{position}].size"},
            )
        if len(set(names)) < len(names):
            seen: set[str] = set()
            for position, name in enumerate(names):
                if name in seen:
                    raise InvalidRequestError(
                        f"files[{position}]: {name!r} is listed twice",
                        reasons.NAME_DUPLICATE,
                        {"field": f"files[{position}].name"},
                    )
                seen.add(name)
        for position, (size, root) in enumerate(zip(sizes, roots, strict=True)):
            if root and (size == 0 or not _HEX_ROOT.fullmatch(root)):
                raise InvalidRequestError(
                    f"files[{position}]: pieces_root must be empty or 64 lowercase hex "
                    "characters, and empty for an empty file",
                    reasons.PIECES_ROOT_INVALID,
                    {"field": f"files[{position}].pieces_root"},
                )
        records = [
            pack_record(size, bytes.fromhex(d), bytes.fromhex(r))
            for size, d, r in zip(sizes, digests, roots, strict=True)
        ]
        return names, records

    def _check_removed(self, names: Sequence[str], added: list[str]) -> set[str]:
        """The distinct removed names, or InvalidRequestError naming a bad one."""
        if len(names) > self.max_files:
            raise InvalidRequestError(
                f"{len(names)} removed names in one call; the limit is {self.max_files}",
                reasons.TOO_MANY_FILES,
                {"field": "removed_names", "limit": str(self.max_files)},
            )
        for position, name in enumerate(names):
            _check_name(name, f"removed_names[{position}]")
        removed = set(names)
        if not removed.isdisjoint(added):
            both = min(removed.intersection(added))
            raise InvalidRequestError(
                f"{both!r} is in both files and removed_names; list it in one of them",
                reasons.NAME_ADDED_AND_REMOVED,
            )
        return removed

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
            whose = f"address {source}"
            _check(whose, "peers_per_address", usage.peers, peers - mine[0], self.limits)
            _check(whose, "files_per_address", usage.files, files - mine[1], self.limits)
            _check(
                whose, "name_bytes_per_address", usage.name_bytes, name_bytes - mine[2], self.limits
            )
        whose = "the tracker"
        _check(whose, "peers", len(self._peers), peers - gone[0], self.limits)
        _check(whose, "files", self._entries, files - gone[1], self.limits)
        _check(whose, "name_bytes", self._catalog.name_bytes, distinct_bytes, self.limits)

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

    def _counted_locked(self, peer: _Peer, files: int, name_bytes: int) -> None:
        """Count `files` more entries with `name_bytes` more bytes of names for `peer`."""
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
            raise UnknownPeerError(
                f"peer {peer_id} is not registered (it never joined, left, or its lease "
                "ran out); call Join again"
            )
        if not hmac.compare_digest(peer.token.encode(), token.encode()):
            raise UnauthenticatedError(
                f"the token does not match peer {peer_id}; use the token of its latest Join"
            )
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


def _check(whose: str, limit: str, current: int, added: int, limits: Limits) -> None:
    """CapacityError if `current` + `added` passes the limit named `limit`, and grows."""
    value = getattr(limits, limit)
    after = current + added
    if added > 0 and after > value:
        what = _COUNTED[limit]
        raise CapacityError(
            f"{whose} would have {after:,} {what}; the limit is {value:,} ({flag(limit)})",
            reason=_REASONS[limit],
            metadata={"limit": str(value), "flag": flag(limit)},
        )


_COUNTED = {
    "peers_per_address": "registrations",
    "files_per_address": "files",
    "name_bytes_per_address": "bytes of file names",
    "peers": "registrations",
    "files": "files",
    "name_bytes": "bytes of file names",
}
_REASONS = {
    "peers_per_address": reasons.ADDRESS_PEER_LIMIT,
    "files_per_address": reasons.ADDRESS_FILE_LIMIT,
    "name_bytes_per_address": reasons.ADDRESS_NAME_BYTES_LIMIT,
    "peers": reasons.INDEX_PEER_LIMIT,
    "files": reasons.INDEX_FULL,
    "name_bytes": reasons.INDEX_NAME_BYTES_LIMIT,
}


def _holds_against(old: _Peer, identity: str, *, proven: bool) -> bool:
    """Whether registration `old` keeps its address from a Join of `identity`: it is another
    identity's, and that one was reached there or the Join was not (nor anonymous).
    """
    if old.identity == identity:
        return False
    return old.reachable or not proven or not identity


def _taken(peer_id: str) -> AddressTakenError:
    return AddressTakenError(
        f"address {peer_id} is registered by a live peer of another identity; it stays so "
        "until that peer leaves or its lease runs out"
    )


def _check_name(name: str, where: str) -> str:
    try:
        return check_file_name(name)
    except InvalidNameError as error:
        raise InvalidRequestError(f"{where}: {error}", error.reason, {"field": where}) from None


def _normal_peer_id(peer_id: str) -> str:
    """`peer_id` in the one form Join issues, or InvalidRequestError."""
    try:
        return normal_address(peer_id)
    except InvalidAddressError as error:
        raise InvalidRequestError(
            f"peer_id: {error}", reasons.PEER_ID_INVALID, {"field": "peer_id"}
        ) from None


def _entry(name: str, record: bytes) -> FileEntry:
    size, digest, pieces_root = unpack_record(record)
    return FileEntry(name, size, digest.hex(), pieces_root.hex())
