"""IndexStore: the one interface the tracker's servicer talks to, whatever holds the index.

A store keeps the registered peers, their tokens and leases, and searches their files. This
class holds what every store shares: the checks of each request (tracker/checks.py), the
bound on broad searches running at once, the page size, and the results' types. Each
backend (memory in tracker/index.py, Redis in tracker/store/redis_store.py) does the rest
as one atomic check-and-write per call, the limits (tracker/limits.py) included.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from napshare.common import reasons
from napshare.common.addresskey import AddressKey
from napshare.common.identity import JOIN_CLOCK_SKEW
from napshare.common.protocol import LEASE_INTERVALS
from napshare.tracker import checks
from napshare.tracker.checks import BrowseQuery, CheckedFiles, FileLike, SearchQuery
from napshare.tracker.errors import InvalidRequestError, searches_busy
from napshare.tracker.largejoins import LARGE_JOIN_FILES, LARGE_JOIN_INTERVAL, LargeJoins
from napshare.tracker.limits import Limits
from napshare.tracker.paging import Key, PageTokens
from napshare.tracker.switchboard import Switchboard
from napshare.v1 import tracker_pb2

TOKEN_BYTES = 16
MAX_CANDIDATES = 10_000  # a keyword search whose candidates may be more is broad: it walks
SEARCH_BUDGET = 10_000  # entries a broad search looks at for one page
MAX_CONCURRENT_SEARCHES = 4  # broad searches running or waiting for the store at once
BUSY_RETRY_SECONDS = 1.0  # what a refused broad search is told to wait (RetryInfo)
# Signed Joins whose nonces are remembered at once (--max-join-nonces): twice the peers a
# tracker holds by default, so that every peer may join again after a restart.
MAX_JOIN_NONCES = 200_000
# A nonce is remembered until this long after its Join's signed_at: a Join is taken while
# signed_at is within JOIN_CLOCK_SKEW of the clock, and replicas' clocks may differ as much.
NONCE_SECONDS = 2 * JOIN_CLOCK_SKEW


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
    whether the tracker is still gathering the peers it had before its store lost them.
    """

    matches: list[Match]
    next_page_token: str
    gathering: bool
    examined: int = 0  # entries gathered (exact name, few candidates) or walked (broad)
    # What the store looked like to this search: unchanged_since() tells whether every
    # search still answers as it did then (None: never).
    generation: Hashable = None

    @property
    def truncated(self) -> bool:
        """Whether more matched than this page holds."""
        return bool(self.next_page_token)


class Listing(NamedTuple):
    """What a backend found for one page of a Browse: up to limit + 1 of the peer's files
    after the token's name, in name order, and the peer's certificate and reachability.
    """

    files: list[FileEntry]
    certificate: bytes
    reachable: bool


class BrowseOutcome(NamedTuple):
    """One page of a peer's files in name order, the token of the next page ("" on the last),
    and how to reach the peer: its certificate ("" when anonymous) and whether the tracker
    reached it.
    """

    files: list[FileEntry]
    next_page_token: str
    certificate: bytes
    reachable: bool


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
    # The key (common.addresskey) of the IP address its Join came from: the address, or its
    # IPv6 network; None for a caller in this process.
    source: str | None
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


class Page(NamedTuple):
    """What a backend found for one page: up to limit + 1 matches after the token's key, in
    order, and where a broad walk stopped short of the end (None: it did not).
    """

    matches: list[Match]
    resume: Key | None
    gathering: bool
    examined: int
    generation: Hashable


class IndexStore(ABC):
    """Peers and their files; every method is safe to call from many threads at once.

    Public methods check their arguments and raise the tracker's domain errors
    (tracker/errors.py); the `_`-methods below them are what a backend implements, each one
    atomic in its store.
    """

    def __init__(
        self,
        heartbeat_interval: float,
        *,
        max_files: int,
        max_concurrent_searches: int,
        max_candidates: int,
        limits: Limits | None,
        address_key: AddressKey | None = None,
        max_join_nonces: int = MAX_JOIN_NONCES,
        large_join_files: int = LARGE_JOIN_FILES,
        large_join_interval: float = LARGE_JOIN_INTERVAL,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not (heartbeat_interval > 0 and heartbeat_interval < float("inf")):
            raise ValueError(f"heartbeat interval {heartbeat_interval} must be a positive number")
        if max_concurrent_searches < 1 or max_join_nonces < 1:
            raise ValueError("max_concurrent_searches and max_join_nonces must be at least 1")
        self.heartbeat_interval = heartbeat_interval
        self.lease = LEASE_INTERVALS * heartbeat_interval
        self.max_files = max_files
        # A keyword search whose words may match more names than this is broad: it walks.
        self.max_candidates = max_candidates
        self.limits = limits or Limits()
        # What one source address is to the per-address limits (IPv6 counts per /64).
        self.address_key = address_key or AddressKey()
        self.max_join_nonces = max_join_nonces
        self._broad_searches = threading.BoundedSemaphore(max_concurrent_searches)
        # In this process: replicas sharing a store each let a client this often.
        self.large_joins = LargeJoins(
            large_join_files, large_join_interval, clock or time.monotonic
        )

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

        `source` is the address the call came from, which the per-address limits count under
        its key (`address_key`: IPv6 addresses per /64; None: a caller in this process, not
        counted); past a limit, CapacityError and no change.
        `local_addresses` (already checked) are kept with the registration.
        A large Join (`large_joins`) from an address or identity that sent one a moment ago
        is refused with BusyError (LARGE_JOIN_TOO_SOON).
        """
        peer_id = checks.peer_id_of(host, port)
        checked = checks.check_files(files, self.max_files)
        key = None if source is None else self.address_key(source)
        senders = [] if key is None else [f"address {key}"]
        if identity:
            senders.append(f"identity {identity}")
        self.large_joins.take(len(checked.names), senders)
        token = secrets.token_hex(TOKEN_BYTES)
        self._join(
            peer_id,
            token,
            checked,
            key,
            identity=identity,
            certificate=certificate,
            reachable=reachable,
            local_addresses=tuple(local_addresses),
        )
        return Registration(peer_id, token)

    def claim(self, host: str, port: int, identity: str, *, may_prove: bool = False) -> str:
        """The peer id of host:port if `identity` may join with it now: no live registration
        of another identity holds it, other than one the tracker never reached there, which a
        Join that `may_prove` (signed, so it will be checked) can still take over by being
        reached. Raises InvalidRequestError or AddressTakenError.
        """
        peer_id = checks.peer_id_of(host, port)
        self._claim(peer_id, identity, may_prove=may_prove)
        return peer_id

    def take_nonce(self, identity: str, nonce: bytes, signed_at: int, now: float) -> None:
        """Take the nonce of a signed Join of `identity` (signed at `signed_at`, Unix time),
        which is then remembered for NONCE_SECONDS past signed_at, by every process sharing
        the store: JoinReplayedError if it was taken already, BusyError (JOINS_BUSY) when
        max_join_nonces are remembered and none has expired at `now` (Unix time).
        """
        key = hashlib.sha256(identity.encode() + b"\0" + nonce).digest()[:16]
        self._take_nonce(key, signed_at + NONCE_SECONDS, now)

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
        peer_id = checks.normal_peer_id(peer_id)
        checked = checks.check_files(files, self.max_files)
        removed = checks.check_removed(removed_names, checked.names, self.max_files)
        self._update(peer_id, token, checked, removed)

    def heartbeat(self, peer_id: str, token: str) -> None:
        """Renew the caller's lease."""
        self._heartbeat(checks.normal_peer_id(peer_id), token)

    def leave(self, peer_id: str, token: str) -> None:
        """Remove the caller and its files."""
        self._leave(checks.normal_peer_id(peer_id), token)

    def verify(self, peer_id: str, token: str) -> None:
        """Check that `token` is that of `peer_id`'s live registration, renewing nothing."""
        self._verify(checks.normal_peer_id(peer_id), token)

    def contact(self, peer_id: str) -> Contact:
        """How to reach registered `peer_id`: UnknownPeerError if it is not registered."""
        return self._contact(checks.normal_peer_id(peer_id))

    def search(
        self,
        *,
        name: str = "",
        query: str = "",
        sha256: str = "",
        pieces_root: str = "",
        limit: int = 0,
        page_token: str = "",
    ) -> SearchOutcome:
        """A page of matches for an exact `name`, every keyword of `query`, or the files whose
        bytes have this `sha256` or `pieces_root`, under any name (exactly one is set).

        `limit` is the page size (0: DEFAULT_LIMIT; at most MAX_LIMIT); `page_token` is empty
        for the first page, else the `next_page_token` of the page before. A broad keyword
        search (more than MAX_CANDIDATES candidate names) is refused with BusyError at once
        when as many as allowed already run in this process; a search by name or by content
        never is.
        """
        wanted = checks.check_search(
            name, query, limit, page_token, sha256=sha256, pieces_root=pieces_root
        )
        after = self._decode_token(wanted) if page_token else None
        page = self._page(wanted, after, broad=False)
        if page is None:
            if not self._broad_searches.acquire(blocking=False):
                raise searches_busy(BUSY_RETRY_SECONDS)
            try:
                page = self._page(wanted, after, broad=True)
            finally:
                self._broad_searches.release()
            assert page is not None, "a broad search was allowed and gave no page"
        return self._outcome(wanted, page)

    def browse(
        self, peer_id: str, folder: str = "", *, limit: int = 0, page_token: str = ""
    ) -> BrowseOutcome:
        """A page of the files registered `peer_id` shares under `folder` ("": every file), at
        any depth, in name order; UnknownPeerError if it is not registered.

        `limit` is the page size (0: DEFAULT_LIMIT; at most MAX_LIMIT); `page_token` is empty
        for the first page, else the `next_page_token` of the page before. A page costs what
        it returns.
        """
        wanted = checks.check_browse(peer_id, folder, limit, page_token)
        after: str | None = None
        if page_token:
            try:
                _, after = self._decode_token(wanted)
            except InvalidRequestError as error:
                if error.reason != reasons.PAGE_TOKEN_MISMATCH:
                    raise
                raise InvalidRequestError(
                    "page_token belongs to another peer or folder, or to a search; send the "
                    "same peer_id and folder that returned it, or no token for the first page",
                    reasons.PAGE_TOKEN_MISMATCH,
                    {"field": "page_token"},
                ) from None
        listing = self._listing(wanted.peer_id, wanted.prefix, after, wanted.limit + 1)
        files, token = listing.files, ""
        if len(files) > wanted.limit:
            files = files[: wanted.limit]
            token = self._page_tokens().encode(wanted.search, (wanted.peer_id, files[-1].name))
        return BrowseOutcome(files, token, listing.certificate, listing.reachable)

    def _outcome(self, wanted: SearchQuery, page: Page) -> SearchOutcome:
        """The page a caller sees: at most `limit` matches and the token that follows them."""
        matches, limit = page.matches, wanted.limit
        if len(matches) > limit:
            last = matches[limit - 1]
            token = self._page_tokens().encode(wanted.search, (last.peer_id, last.file.name))
            return SearchOutcome(
                matches[:limit], token, page.gathering, page.examined, page.generation
            )
        token = (
            "" if page.resume is None else self._page_tokens().encode(wanted.search, page.resume)
        )
        return SearchOutcome(matches, token, page.gathering, page.examined, page.generation)

    def _decode_token(self, wanted: SearchQuery | BrowseQuery) -> Key:
        """The key the page token of a search or listing resumes after (InvalidRequestError if
        it is bad).
        """
        return self._page_tokens().decode(wanted.page_token, wanted.search)

    @abstractmethod
    def _page_tokens(self) -> PageTokens:
        """The signer of this store's page tokens."""

    @abstractmethod
    def unchanged_since(self, generation: Hashable) -> bool:
        """Whether every search answers as it did when it saw `generation` (a search's): no
        change it could see, no lease run out, the gathering window not ended.
        """

    @abstractmethod
    def expire(self) -> list[DeadPeer]:
        """Drop peers whose lease ran out and, a bounded slice at a time, the files of peers
        that expired or left; return every expired peer whose files are all gone since the
        last call (each once, whichever process sharing the store dropped them).
        """

    @abstractmethod
    def files_of(self, peer_id: str) -> list[FileEntry] | None:
        """The files of a registered peer, by name; None if it is not registered."""

    @abstractmethod
    def snapshot(self) -> dict[str, list[FileEntry]]:
        """Every registered peer id and its files: for comparisons and audits."""

    @abstractmethod
    def stats(self) -> IndexStats:
        """Peers, (peer, file) entries (those of departed peers not yet dropped too) and
        distinct names.
        """

    @abstractmethod
    def audit(self) -> list[str]:
        """What a recount of the whole store finds wrong (empty when all is consistent):
        counts that differ from a recount, entries without a live record, records not
        indexed. Costs a pass over everything: for tests and checks, not for serving.
        """

    @abstractmethod
    def close(self) -> None:
        """Let go of the store's connections and threads."""

    def switchboard(self, max_listeners: int) -> Switchboard[tracker_pb2.ListenResponse]:
        """Where this tracker keeps its peers' Listen streams: in this process, unless the
        store is shared (then Connects at any replica reach them).
        """
        return Switchboard(max_listeners)

    @abstractmethod
    def _claim(self, peer_id: str, identity: str, *, may_prove: bool) -> None: ...

    @abstractmethod
    def _take_nonce(self, key: bytes, expires_at: float, now: float) -> None: ...

    @abstractmethod
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
    ) -> None: ...

    @abstractmethod
    def _update(self, peer_id: str, token: str, files: CheckedFiles, removed: set[str]) -> None: ...

    @abstractmethod
    def _heartbeat(self, peer_id: str, token: str) -> None: ...

    @abstractmethod
    def _leave(self, peer_id: str, token: str) -> None: ...

    @abstractmethod
    def _verify(self, peer_id: str, token: str) -> None: ...

    @abstractmethod
    def _contact(self, peer_id: str) -> Contact: ...

    @abstractmethod
    def _listing(self, peer_id: str, prefix: str, after: str | None, wanted: int) -> Listing:
        """Up to `wanted` files of registered `peer_id` whose names start with `prefix`, after
        the name `after` (None: from the first), in name order; UnknownPeerError (as
        errors.unknown_contact) if it is not registered.
        """

    @abstractmethod
    def _page(self, wanted: SearchQuery, after: Key | None, *, broad: bool) -> Page | None:
        """Up to wanted.limit + 1 matches after `after`; None, without searching, when the
        search is broad and `broad` is False (the caller then takes a place among the broad
        searches and asks again). A search by content (wanted.content) matches every entry
        whose file has that sha256 or pieces root, whatever its name.
        """


def holds_against(identity: str, reachable: bool, new_identity: str, *, proven: bool) -> bool:
    """Whether a live registration of `identity` (`reachable` at its address) keeps that
    address from a Join of `new_identity`: it is another identity's, and that one was reached
    there or the Join was not (nor anonymous).
    """
    if identity == new_identity:
        return False
    return reachable or not proven or not new_identity
