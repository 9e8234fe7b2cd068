"""The Redis (or Valkey) backend of the tracker's index, which several trackers can share.

Every call is one Lua script on the server (tracker/store/lua/), so it is one round trip and
one atomic step, timed by the server's clock (`TIME`): replicas need not agree on the time,
and two of them can never both pass a limit or both take an address. The index is split into
shards by peer id, each under one hash tag, so on a Redis Cluster the shards spread over its
nodes; a search asks every shard and merges their pages (the keys: lua/common.lua). Leases are
a sorted set of deadlines per shard; every replica sweeps it in bounded slices, and each
expired peer is reported by the one sweep that drops its last file.

A shard that finds no epoch of its own is new, or lost its data (Redis restarted without
persistence): it makes one, and searches say `gathering` for one lease, on every replica.
Page tokens are signed with a secret kept in the store, so any replica accepts them.
"""

from __future__ import annotations

import logging
import secrets
import struct
import threading
import time
import zlib
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import redis.cluster
from napshare.common import reasons
from napshare.common.addresskey import AddressKey
from napshare.common.protocol import HEARTBEAT_INTERVAL
from napshare.tracker import paging
from napshare.tracker.checks import (
    CONTENT_SHA256,
    MAX_FILES,
    BrowseQuery,
    CheckedFiles,
    SearchQuery,
)
from napshare.tracker.errors import (
    InvalidRequestError,
    StoreUnavailableError,
    address_taken,
    join_replayed,
    joins_busy,
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
    exceeded,
    too_many_files,
)
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
)
from napshare.tracker.store.factory import StoreConfigError
from napshare.tracker.store.redis_switchboard import SharedSwitchboard
from napshare.tracker.switchboard import Switchboard
from napshare.v1 import tracker_pb2
from redis.commands.core import Script
from redis.exceptions import NoScriptError, RedisError

logger = logging.getLogger(__name__)

SCHEMES = ("redis", "rediss", "unix")
DEFAULT_PREFIX = "napshare"
SHARDS_PER_CLUSTER_NODE = 4  # shards a new store gets per master of a Redis Cluster
LEASE_SLICE = 1000  # expired registrations one call departs, at most
DROP_SLICE = 1000  # files of departed peers one sweep drops, at most
PURGE_SECONDS = 1.0  # expire() returns after this long even with files left to drop
SLICE_PAUSE = 0.001  # seconds between slices, for the other calls
MAX_CONNECTIONS = 64  # to the store, per tracker process
CONNECT_TIMEOUT = 5.0  # seconds
RETRY_SECONDS = 1.0  # what a caller is told to wait when the store does not answer
_SCRIPTS = (
    "join",
    "verify",
    "contact",
    "claim",
    "update",
    "heartbeat",
    "leave",
    "search",
    "sweep",
    "state",
    "files",
    "browse",
    "snapshot",
    "stats",
    "audit",
    "hello",
    "nonce",
)
_AUTHENTICATED = ("update", "heartbeat", "leave", "verify")
_SIZE = struct.Struct("<Q")
_NO_DUE = -1


def _script_source(name: str) -> str:
    folder = resources.files("napshare.tracker.store") / "lua"
    parts = ["common.lua", *(["auth.lua"] if name in _AUTHENTICATED else []), f"{name}.lua"]
    return "\n".join((folder / part).read_text(encoding="utf-8") for part in parts)


def _options(url: str) -> tuple[str, str, int | None]:
    """`url` without napshare's own query parameters, and those: prefix and shards."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise StoreConfigError(
            f"store {url!r} is not memory or a redis://, rediss:// or unix:// URL"
        )
    kept, prefix, shards = [], DEFAULT_PREFIX, None
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "prefix":
            if not value or any(c in value for c in "{}: \n"):
                raise StoreConfigError(f"store prefix {value!r} must be a plain word")
            prefix = value
        elif key == "shards":
            if not value.isdigit() or not 1 <= int(value) <= 1024:
                raise StoreConfigError(f"store shards {value!r} must be a number from 1 to 1024")
            shards = int(value)
        else:
            kept.append((key, value))
    base = url.partition("?")[0].partition("#")[0]
    return base + (f"?{urlencode(kept)}" if kept else ""), prefix, shards


class RedisStore(IndexStore):
    """The index in a Redis or Valkey server (or cluster) at `url`, shared by every tracker
    that uses the same URL and prefix.

    `clock` is for tests only: the scripts then take their time from it rather than from the
    server. `shards` applies when the store is new (else the store's own count is used).
    """

    def __init__(
        self,
        url: str,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        *,
        max_files: int = MAX_FILES,
        max_concurrent_searches: int = MAX_CONCURRENT_SEARCHES,
        search_budget: int = SEARCH_BUDGET,
        limits: Limits | None = None,
        max_candidates: int | None = None,
        clock: Callable[[], float] | None = None,
        max_connections: int = MAX_CONNECTIONS,
        address_key: AddressKey | None = None,
        max_join_nonces: int = MAX_JOIN_NONCES,
        large_join_files: int = LARGE_JOIN_FILES,
        large_join_interval: float = LARGE_JOIN_INTERVAL,
    ) -> None:
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
        if search_budget < 1:
            raise ValueError("search_budget must be at least 1")
        plain_url, self.prefix, wanted_shards = _options(url)
        self.url = url
        self._clock = clock
        self._lease_ms = round(self.lease * 1000)
        self._client, self.cluster = _connect(plain_url, max_connections)
        self._scripts = {name: Script(self._client, _script_source(name)) for name in _SCRIPTS}
        self._meta = f"{{{self.prefix}}}:meta"
        self._nonces = f"{{{self.prefix}}}:nonces"  # of recent signed Joins, for every replica
        self._lock = threading.Lock()  # the epochs and the secret below
        try:
            made = self._start(url, wanted_shards)
        except StoreUnavailableError as error:
            raise StoreConfigError(f"cannot use the store at {_shown(url)}: {error}") from None
        # Per shard: each script stays short, so Redis answers everyone else meanwhile. A page
        # of a sharded store's broad search looks at up to shards × budget entries in all.
        self.search_budget = search_budget
        self._limits_arg = ",".join(
            str(self._share(getattr(self.limits, name))) for name in (*PER_ADDRESS, *WHOLE_INDEX)
        )
        logger.info(
            "index store %s: %d shard%s%s",
            _shown(url),
            self.shards,
            "" if self.shards == 1 else "s",
            ", Redis Cluster" if self.cluster else "",
        )
        if made:
            logger.warning(
                "the index store had no data in %d of its %d shards (new, or its data was "
                "lost): searches say gathering for one lease while peers join",
                len(made),
                self.shards,
            )

    def _start(self, url: str, wanted_shards: int | None) -> list[int]:
        """Settle the shards and the secret, check the server, and greet every shard (which
        makes the epoch of one that has none); the shards that had none.
        """
        with self._errors():
            self.shards = self._settle_shards(wanted_shards)
            self._keys = [f"{{{self.prefix}:{shard}}}:m" for shard in range(self.shards)]
            self._epochs: list[bytes | None] = [None] * self.shards
            self._secret = b""
            self._tokens = self._load_secret()
            made: list[int] = []
            for shard in range(self.shards):
                bytewise, epoch, new = self._call("hello", shard, [self._now(), self._lease_ms])
                if bytewise != 1:
                    raise StoreConfigError(
                        f"the Redis server of {_shown(url)} does not compare strings byte by "
                        "byte in Lua (its LC_COLLATE or LC_CTYPE is not C): start it with "
                        "LC_ALL=C"
                    )
                self._epochs[shard] = epoch
                if new == b"1":
                    made.append(shard)
        return made

    # -- the calls -------------------------------------------------------------------------

    def _take_nonce(self, key: bytes, expires_at: float, now: float) -> None:
        with self._errors():
            reply = self._scripts["nonce"](
                keys=[self._nonces], args=[now, expires_at, self.max_join_nonces, key]
            )
        if reply[0] == b"SEEN":
            raise join_replayed()
        if reply[0] == b"FULL":
            raise joins_busy(max(1.0, float(reply[1]) - now), self.max_join_nonces)

    def _claim(self, peer_id: str, identity: str, *, may_prove: bool) -> None:
        reply = self._call(
            "claim",
            self._shard(peer_id),
            [self._now(), self._lease_ms, peer_id, identity, "1" if may_prove else "0"],
        )
        self._answered(peer_id, reply)

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
        shard = self._shard(peer_id)
        reply = self._call(
            "join",
            shard,
            [
                self._now(),
                self._lease_ms,
                peer_id,
                token,
                identity,
                certificate,
                source or "",
                "0" if source is None else "1",
                "1" if reachable else "0",
                "\n".join(local_addresses),
                self._limits_arg,
                _pack_files(files),
                LEASE_SLICE,
            ],
        )
        self._answered(peer_id, reply, shard, source)

    def _update(self, peer_id: str, token: str, files: CheckedFiles, removed: set[str]) -> None:
        shard = self._shard(peer_id)
        reply = self._call(
            "update",
            shard,
            [
                self._now(),
                self._lease_ms,
                peer_id,
                token,
                self._limits_arg,
                self.max_files,
                _pack_files(files),
                b"\0".join(name.encode("utf-8", "surrogatepass") for name in sorted(removed)),
                LEASE_SLICE,
            ],
        )
        self._answered(peer_id, reply, shard, "")

    def _heartbeat(self, peer_id: str, token: str) -> None:
        shard = self._shard(peer_id)
        args = [self._now(), self._lease_ms, peer_id, token, LEASE_SLICE]
        self._answered(peer_id, self._call("heartbeat", shard, args), shard)

    def _leave(self, peer_id: str, token: str) -> None:
        shard = self._shard(peer_id)
        args = [self._now(), self._lease_ms, peer_id, token, LEASE_SLICE]
        self._answered(peer_id, self._call("leave", shard, args), shard)

    def _verify(self, peer_id: str, token: str) -> None:
        shard = self._shard(peer_id)
        args = [self._now(), self._lease_ms, peer_id, token, LEASE_SLICE]
        self._answered(peer_id, self._call("verify", shard, args), shard)

    def _contact(self, peer_id: str) -> Contact:
        reply = self._call("contact", self._shard(peer_id), [self._now(), peer_id])
        if reply[1] != b"OK":
            raise unknown_contact(peer_id)
        token, identity, source, has_source, reachable, local = reply[2:8]
        return Contact(
            peer_id,
            token.decode(),
            identity.decode(),
            source.decode() if has_source == b"1" else None,
            reachable == b"1",
            tuple(local.decode().split("\n")) if local else (),
        )

    def _page(self, wanted: SearchQuery, after: paging.Key | None, *, broad: bool) -> Page | None:
        content = wanted.content
        mode = "n" if wanted.name else "w"
        if content is not None:
            mode = "S" if content[0] == CONTENT_SHA256 else "T"
        head: list[Any] = [
            self._now(),
            self._lease_ms,
            mode,
            "1" if broad else "0",
            wanted.limit + 1,
            "0" if after is None else "1",
            "" if after is None else after[0],
            "" if after is None else after[1].encode("utf-8", "surrogatepass"),
            self.search_budget,
            self.max_candidates,
        ]
        if content is not None:
            args = [*head, content[1]]
        else:
            what = [wanted.name] if wanted.name else wanted.words
            args = head + [w.encode("utf-8", "surrogatepass") for w in what]
        replies = self._fanout("search", args)
        if any(reply[1] == b"BROAD" for reply in replies):
            return None
        return self._merge(replies, wanted.limit + 1)

    def _merge(self, replies: list[Any], wanted: int) -> Page:
        """One page from every shard's: in key order, cut where the first shard's knowledge
        ends (a walk stopped by its budget, or a shard that returned all it was asked for).
        """
        matches: list[Match] = []
        ends: list[paging.Key] = []
        gathering, examined = False, 0
        generation: list[tuple[bytes, int]] = []
        due = _NO_DUE
        for reply in replies:
            epoch, _, gathers, looked, gen, shard_due, resume_peer, resume_name = reply[:8]
            results, peers = reply[8], reply[9]
            gathering = gathering or gathers == 1
            examined += looked
            generation.append((epoch, int(gen)))
            if shard_due != _NO_DUE and (due == _NO_DUE or shard_due < due):
                due = shard_due
            known = {
                peers[i].decode(): (bytes(peers[i + 1]), peers[i + 2] == b"1")
                for i in range(0, len(peers), 3)
            }
            found = [
                Match(
                    results[i].decode(),
                    _entry(results[i + 1].decode("utf-8", "surrogatepass"), results[i + 2]),
                    *known[results[i].decode()],
                )
                for i in range(0, len(results), 3)
            ]
            if resume_peer:
                ends.append((resume_peer.decode(), resume_name.decode("utf-8", "surrogatepass")))
            elif len(found) == wanted and len(replies) > 1:
                ends.append((found[-1].peer_id, found[-1].file.name))
            matches += found
        resume: paging.Key | None = min(ends) if ends else None
        if len(replies) > 1:
            matches.sort(key=lambda m: (m.peer_id, m.file.name))
            if resume is not None:
                matches = [m for m in matches if (m.peer_id, m.file.name) <= resume]
            matches = matches[:wanted]
        return Page(matches, resume, gathering, examined, (tuple(generation), due))

    def unchanged_since(self, generation: Hashable) -> bool:
        if not isinstance(generation, tuple) or len(generation) != 2:
            return False
        seen, due = generation
        try:
            replies = self._fanout("state", [self._now()])
        except StoreUnavailableError:
            return False
        now = max(int(reply[2]) for reply in replies)
        current = tuple((reply[0], int(reply[1])) for reply in replies)
        return bool(current == seen and (due == _NO_DUE or now < due))

    def expire(self) -> list[DeadPeer]:
        deadline = time.monotonic() + PURGE_SECONDS
        dead: list[DeadPeer] = []
        busy = set(range(self.shards))
        while busy:
            for shard in sorted(busy):
                reply = self._call(
                    "sweep", shard, [self._now(), self._lease_ms, LEASE_SLICE, DROP_SLICE]
                )
                self._saw_epoch(shard, reply[0])
                for report in reply[3]:
                    names = [name.decode("utf-8", "surrogatepass") for name in report[1:]]
                    dead.append(DeadPeer(report[0].decode(), names))
                if not reply[1]:
                    busy.discard(shard)
            if not busy or time.monotonic() >= deadline:
                break
            time.sleep(SLICE_PAUSE)
        return dead

    def files_of(self, peer_id: str) -> list[FileEntry] | None:
        reply = self._call("files", self._shard(peer_id), [peer_id, self._now()])
        if reply[0] == b"NONE":
            return None
        return sorted(
            _entry(reply[i].decode("utf-8", "surrogatepass"), reply[i + 1])
            for i in range(1, len(reply), 2)
        )

    def _listing(self, peer_id: str, prefix: str, after: str | None, wanted: int) -> Listing:
        reply = self._call(
            "browse",
            self._shard(peer_id),
            [
                self._now(),
                peer_id,
                prefix.encode("utf-8"),
                wanted,
                b"" if after is None else after.encode("utf-8"),
                "0" if after is None else "1",
            ],
        )
        if reply[0] == b"NONE":
            raise unknown_contact(peer_id)
        files = [_entry(reply[i].decode("utf-8"), reply[i + 1]) for i in range(3, len(reply), 2)]
        return Listing(files, bytes(reply[1]), reply[2] == b"1")

    def snapshot(self) -> dict[str, list[FileEntry]]:
        peers: dict[str, list[FileEntry]] = {}
        for reply in self._fanout("snapshot", [self._now(), LEASE_SLICE]):
            for i in range(0, len(reply), 2):
                files = reply[i + 1]
                peers[reply[i].decode()] = sorted(
                    _entry(files[j].decode("utf-8", "surrogatepass"), files[j + 1])
                    for j in range(0, len(files), 2)
                )
        return dict(sorted(peers.items()))

    def stats(self) -> IndexStats:
        replies = self._fanout("stats", [self._now(), LEASE_SLICE])
        return IndexStats(*(sum(int(reply[i]) for reply in replies) for i in range(3)))

    def audit(self) -> list[str]:
        problems: list[str] = []
        for shard, reply in enumerate(self._fanout("audit", [])):
            problems += [f"shard {shard}: {line.decode(errors='replace')}" for line in reply]
        return problems

    def close(self) -> None:
        self._client.close()

    def switchboard(self, max_listeners: int) -> Switchboard[tracker_pb2.ListenResponse]:
        with self._errors():
            return SharedSwitchboard(self._client, self.prefix, max_listeners)

    def forget(self) -> None:
        """Delete everything this store's prefix holds: for tests and benchmarks."""
        with self._errors():
            for key in [self._meta, self._nonces, *self._keys]:
                tag = key[: key.index("}") + 1]
                nodes = self._client.get_primaries() if self.cluster else [None]
                for node in nodes:
                    kwargs = {} if node is None else {"target_nodes": node}
                    for found in self._client.scan_iter(match=f"{tag}*", count=1000, **kwargs):
                        self._client.unlink(found)

    def _page_tokens(self) -> paging.PageTokens:
        return self._tokens

    def _decode_token(self, wanted: SearchQuery | BrowseQuery) -> paging.Key:
        try:
            return super()._decode_token(wanted)
        except InvalidRequestError as error:
            if error.reason != reasons.PAGE_TOKEN_INVALID:
                raise
            # Another replica may have made a new secret after the store lost its data.
            with self._errors():
                tokens = self._load_secret()
            if tokens is self._tokens:
                raise
            return super()._decode_token(wanted)

    # -- the plumbing ----------------------------------------------------------------------

    def _now(self) -> int:
        """The time the scripts use: -1 for the server's clock, else the test's, in ms."""
        return -1 if self._clock is None else round(self._clock() * 1000)

    def _shard(self, peer_id: str) -> int:
        return zlib.crc32(peer_id.encode()) % self.shards

    def _share(self, limit: int) -> int:
        """A shard's part of a limit: the shards together never pass the limit."""
        return limit if self.shards == 1 else max(1, limit // self.shards)

    def _settle_shards(self, wanted: int | None) -> int:
        """The store's shard count: the one it was made with, else `wanted` (default: one on
        a single server, SHARDS_PER_CLUSTER_NODE per master of a cluster).
        """
        asked = wanted
        if wanted is None:
            if self.cluster:
                masters = len(self._client.get_primaries())
                wanted = SHARDS_PER_CLUSTER_NODE * masters
            else:
                wanted = 1
        self._client.hsetnx(self._meta, "shards", wanted)
        stored = int(self._client.hget(self._meta, "shards") or wanted)
        if asked is not None and stored != asked:
            logger.warning(
                "the store was made with %d shards; it keeps them (%d asked for)", stored, asked
            )
        return stored

    def _load_secret(self) -> paging.PageTokens:
        """The page tokens' signer, from the store's secret (made now if the store has none)."""
        self._client.hsetnx(self._meta, "secret", secrets.token_hex(paging.SECRET_BYTES))
        secret = bytes.fromhex(self._client.hget(self._meta, "secret").decode())
        with self._lock:
            if secret != self._secret:
                self._secret = secret
                self._tokens = paging.PageTokens(secret)
            return self._tokens

    def _saw_epoch(self, shard: int, epoch: bytes) -> None:
        """Note the epoch a script answered with; a new one means the shard lost its data."""
        if not epoch or self._epochs[shard] == epoch:
            return
        with self._lock:
            known, self._epochs[shard] = self._epochs[shard], epoch
        if known is not None and known != epoch:
            logger.warning(
                "the store's shard %d lost its data (its epoch changed): peers will join "
                "again; searches say gathering for one lease",
                shard,
            )
            self._load_secret()

    def _answered(
        self, peer_id: str, reply: Any, shard: int | None = None, source: str | None = None
    ) -> None:
        """Raise what a script's refusal means; return when it said OK."""
        if shard is not None:
            self._saw_epoch(shard, reply[0])
        status = reply[1]
        if status == b"OK":
            return
        if status == b"TAKEN":
            raise address_taken(peer_id)
        if status == b"UNKNOWN":
            raise not_registered(peer_id)
        if status == b"TOKEN":
            raise wrong_token(peer_id)
        if status == b"PEERFILES":
            raise too_many_files(peer_id, int(reply[2]), self.max_files)
        if status == b"LIMIT":
            names = (*PER_ADDRESS, *WHOLE_INDEX)
            limit = names[int(reply[2]) - 1]
            if limit in PER_ADDRESS:
                whose = address_who(source or self._source_of(peer_id, shard))
            else:
                whose = WHOLE_INDEX_WHO
            value = self._share(getattr(self.limits, limit))
            raise exceeded(whose, limit, int(reply[3]), value)
        raise StoreUnavailableError(f"the store answered {status!r}", retry_delay=RETRY_SECONDS)

    def _source_of(self, peer_id: str, shard: int | None) -> str:
        """The address `peer_id` joined from, for an Update's limit message."""
        with self._errors():
            key = f"{{{self.prefix}:{shard}}}:p:{peer_id}"
            source = self._client.hget(key, "src")
        return "" if source is None else source.decode()

    def _call(self, name: str, shard: int, args: Sequence[Any]) -> Any:
        with self._errors():
            return self._scripts[name](keys=[self._keys[shard]], args=args)

    def _fanout(self, name: str, args: Sequence[Any]) -> list[Any]:
        """The script `name` run on every shard with the same `args`, in one round trip per
        node: the replies, by shard.
        """
        if self.shards == 1:
            return [self._call(name, 0, args)]
        script = self._scripts[name]
        with self._errors():
            for _ in range(2):
                pipe = self._client.pipeline(transaction=False)
                for key in self._keys:
                    pipe.execute_command("EVALSHA", script.sha, 1, key, *args)
                replies = pipe.execute(raise_on_error=False)
                if not any(isinstance(reply, NoScriptError) for reply in replies):
                    break
                script.sha = self._client.script_load(script.script)
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            if name == "search":
                for shard, reply in enumerate(replies):
                    self._saw_epoch(shard, reply[0])
            return list(replies)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Redis's failures as StoreUnavailableError (UNAVAILABLE for the caller)."""
        try:
            yield
        except RedisError as error:
            logger.warning("the index store %s failed: %s", _shown(self.url), error)
            raise StoreUnavailableError(
                f"the tracker's index store does not answer ({type(error).__name__}); "
                f"ask again in {RETRY_SECONDS:g} s",
                retry_delay=RETRY_SECONDS,
            ) from None


def _connect(url: str, max_connections: int) -> tuple[Any, bool]:
    """A client for the server at `url`, and whether it is a Redis Cluster."""
    options: dict[str, Any] = {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "health_check_interval": 30,
    }
    try:
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=CONNECT_TIMEOUT, **options
        )
        client = redis.Redis(connection_pool=pool)
        enabled = client.info("cluster").get("cluster_enabled") == 1
    except RedisError as error:
        raise StoreConfigError(f"cannot reach the store at {_shown(url)}: {error}") from None
    except ValueError as error:
        raise StoreConfigError(f"store {_shown(url)}: {error}") from None
    if not enabled:
        return client, False
    client.close()
    cluster = redis.cluster.RedisCluster.from_url(url, max_connections=max_connections, **options)
    return cluster, True


def _shown(url: str) -> str:
    """`url` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def _pack_files(files: CheckedFiles) -> bytes:
    """The files as join.lua and update.lua read them (common.lua's unpack_files)."""
    parts: list[bytes] = []
    for name, size, digest, root in zip(
        files.names, files.sizes, files.digests, files.roots, strict=True
    ):
        raw = name.encode("utf-8", "surrogatepass")
        low = b"" if name.isascii() else name.lower().encode("utf-8", "surrogatepass")
        record = _SIZE.pack(size) + digest + root
        parts += (
            len(raw).to_bytes(2, "big"),
            raw,
            len(low).to_bytes(2, "big"),
            low,
            bytes((len(record),)),
            record,
        )
    return b"".join(parts)


def _entry(name: str, record: bytes) -> FileEntry:
    (size,) = _SIZE.unpack_from(record)
    return FileEntry(name, size, record[8:40].hex(), record[40:72].hex())
