"""The tracker's index: registered peers, their tokens and leases, and search over their files."""

from __future__ import annotations

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
    CapacityError,
    InvalidRequestError,
    UnauthenticatedError,
    UnknownPeerError,
)
from napshare.tracker.keywords import query_words

logger = logging.getLogger(__name__)

MAX_FILES = 50_000
DEFAULT_LIMIT = 100
MAX_LIMIT = MAX_PAGE_SIZE
TOKEN_BYTES = 16
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


class SearchOutcome(NamedTuple):
    """One page of matches in (peer id, name) order, the token of the next page, if any, and
    whether the tracker is still gathering the peers it had before a restart.
    """

    matches: list[Match]
    next_page_token: str
    gathering: bool

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
    """A registration: identity, secret, lease renewal time and the ids of its names."""

    __slots__ = ("files", "peer_id", "renewed", "token")

    def __init__(self, peer_id: str, token: str, now: float) -> None:
        self.peer_id = peer_id
        self.token = token
        self.renewed = now
        self.files: array[int] = array("I")


class TrackerIndex:
    """Peers and their files; every method is safe to call from many threads at once."""

    def __init__(
        self,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_files: int = MAX_FILES,
    ) -> None:
        if not (math.isfinite(heartbeat_interval) and heartbeat_interval > 0):
            raise ValueError(f"heartbeat interval {heartbeat_interval} must be a positive number")
        self.heartbeat_interval = heartbeat_interval
        self.max_files = max_files
        self._lease = LEASE_INTERVALS * heartbeat_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._peers: OrderedDict[str, _Peer] = OrderedDict()  # oldest renewal first
        self._catalog = Catalog()
        self._entries = 0
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

    def join(self, host: str, port: int, files: Sequence[FileLike]) -> Registration:
        """Register a peer, replacing any registration of the same address."""
        try:
            peer_id = format_address(check_host(host), check_port(port))
        except InvalidAddressError as error:
            raise InvalidRequestError(str(error), reasons.ADDRESS_INVALID) from None
        checked = self._check_files(files)
        token = secrets.token_hex(TOKEN_BYTES)
        with self._lock:
            now = self._expire_locked()
            old = self._peers.pop(peer_id, None)
            if old is not None:
                self._remove_locked(old)
                logger.info("peer %s joined again; its earlier registration is replaced", peer_id)
            peer = _Peer(peer_id, token, now)
            self._peers[peer_id] = peer
            self._add_locked(peer, checked)
            self._changed_locked()
        return Registration(peer_id, token)

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
            new = sum(1 for name in checked[0] if not catalog.holds(peer_id, name))
            if len(peer.files) - len(gone) + new > self.max_files:
                raise CapacityError(
                    f"peer {peer_id} would share {len(peer.files) - len(gone) + new} files; "
                    f"the limit is {self.max_files} per peer",
                    metadata={"limit": str(self.max_files)},
                )
            if gone:
                self._drop_locked(peer, gone)
            self._add_locked(peer, checked)
            self._renew_locked(peer, now)
            if checked[0] or gone:
                self._changed_locked()

    def heartbeat(self, peer_id: str, token: str) -> None:
        """Renew the caller's lease."""
        peer_id = _normal_peer_id(peer_id)
        with self._lock:
            now = self._expire_locked()
            self._renew_locked(self._authenticated_locked(peer_id, token), now)

    def leave(self, peer_id: str, token: str) -> None:
        """Remove the caller and its files."""
        peer_id = _normal_peer_id(peer_id)
        with self._lock:
            self._expire_locked()
            peer = self._authenticated_locked(peer_id, token)
            del self._peers[peer_id]
            self._remove_locked(peer)
            self._changed_locked()

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
        with self._lock:
            self._expire_locked()
            catalog = self._catalog
            gathering = self._gathering_until is not None
            if name:
                found = catalog.id_of(name)
                held = [] if found is None else catalog.holdings((found,))
            else:
                held = catalog.holdings(catalog.matching(words))
            if after is not None:
                held = [h for h in held if (h[0], h[1]) > after]
            # (peer id, name) is unique, so name ids are never compared.
            first = sorted(held) if len(held) <= limit else heapq.nsmallest(limit + 1, held)
            matches = [
                Match(peer_id, _entry(file_name, catalog.record(peer_id, name_id)))
                for peer_id, file_name, name_id in first
            ]
        if len(matches) <= limit:
            return SearchOutcome(matches, "", gathering)
        last = matches[limit - 1]
        token = paging.encode(search, (last.peer_id, last.file.name))
        return SearchOutcome(matches[:limit], token, gathering)

    def expire(self) -> list[DeadPeer]:
        """Drop peers whose lease ran out; return every peer dropped since the last call."""
        with self._lock:
            self._expire_locked()
            dead, self._dead = self._dead, []
        return dead

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
        """Peers, (peer, file) entries and distinct names."""
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

    def _add_locked(self, peer: _Peer, checked: tuple[list[str], list[bytes]]) -> None:
        new = self._catalog.put_all(peer.peer_id, *checked)
        peer.files.extend(new)
        self._entries += len(new)

    def _drop_locked(self, peer: _Peer, name_ids: set[int]) -> None:
        """Drop the names `name_ids` (all held by `peer`) from its registration."""
        for name_id in name_ids:
            self._catalog.drop(peer.peer_id, name_id)
        peer.files = array("I", (i for i in peer.files if i not in name_ids))
        self._entries -= len(name_ids)

    def _remove_locked(self, peer: _Peer) -> list[str]:
        """Drop `peer`'s files (it is already out of `_peers`); return their names."""
        catalog = self._catalog
        names = [catalog.name_of(name_id) for name_id in peer.files]
        for name_id in peer.files:
            catalog.drop(peer.peer_id, name_id)
        self._entries -= len(peer.files)
        peer.files = array("I")
        return names

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
            del peers[oldest.peer_id]
            self._dead.append(DeadPeer(oldest.peer_id, self._remove_locked(oldest)))
            self._changed_locked()
        return now


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
