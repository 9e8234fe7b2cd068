"""The Redis backend (tracker/store/redis_store.py) against the store contract, on a real
redis-server (Debian's, Redis 7.0): in one shard, and in three (the layout a Redis Cluster
spreads over its nodes); and on a real valkey-server (Valkey 8, from make valkey), in one.
"""

import dataclasses
import random
from collections.abc import Callable, Iterator

import pytest
from napshare.tracker.errors import CapacityError
from napshare.tracker.store.base import IndexStore
from napshare.tracker.store.redis_store import RedisStore

from tests.support.redis import RedisServer, require_valkey, store_url
from tests.tracker.store.contract import (
    ONE,
    ROOMY,
    LimitsContract,
    ModelContract,
    StoreContract,
    files,
    paged,
)


@pytest.fixture
def made(redis_server: RedisServer) -> Iterator[list[RedisStore]]:
    stores: list[RedisStore] = []
    yield stores
    for store in stores:
        store.forget()
        store.close()


class RedisStoreTests(StoreContract, ModelContract):
    """The contract on a new store of `shards` shards on the session's redis-server."""

    shards = 1

    @pytest.fixture
    def make(self, redis_server: RedisServer, made: list[RedisStore]) -> Callable[..., IndexStore]:
        def make(heartbeat_interval: float = 30.0, **options: object) -> IndexStore:
            url = store_url(redis_server, shards=str(self.shards))
            store = RedisStore(url, heartbeat_interval, **options)  # type: ignore[arg-type]
            made.append(store)
            return store

        return make


class TestRedisStore(RedisStoreTests, LimitsContract):
    """One shard: every limit is exact."""


@pytest.fixture(scope="module")
def valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A valkey-server of this module's own (on a unix socket, without persistence)."""
    server = RedisServer(tmp_path_factory.mktemp("valkey"), binary=require_valkey())
    yield server
    server.stop()


class TestValkeyStore(RedisStoreTests, LimitsContract):
    """One shard on Valkey 8: the same scripts, the same contract."""

    @pytest.fixture
    def redis_server(self, valkey_server: RedisServer) -> RedisServer:
        return valkey_server

    def test_the_server_is_valkey(self, redis_server: RedisServer) -> None:
        with redis_server.client() as client:
            info = client.info("server")
        assert info.get("server_name") == "valkey", info
        assert str(info["valkey_version"]).startswith("8."), info


class TestShardedRedisStore(RedisStoreTests):
    """Three shards on one server: every search asks all three and merges their pages."""

    shards = 3
    model_limits = ROOMY  # each shard enforces a third of each limit
    names_once = False  # a name two shards hold is counted by each

    def examined_bound(self, budget: int) -> int:
        return budget * self.shards  # each shard walks up to the budget

    def test_each_shard_enforces_its_share_of_a_limit(
        self, make: Callable[..., IndexStore]
    ) -> None:
        store = make(limits=dataclasses.replace(ROOMY, files_per_address=9, files=30))
        refusals = []
        for port in range(1, 10):
            try:
                store.join("10.0.0.1", port, files(f"{port}-a", f"{port}-b"), ONE)
            except CapacityError as error:
                refusals.append(error)
        # A third of 9 per shard: the address is refused before it has 9, never after.
        assert store.stats().entries <= 9
        assert refusals
        assert {error.reason for error in refusals} == {"ADDRESS_FILE_LIMIT"}
        assert "the limit is 3 (--max-files-per-address)" in str(refusals[0])


@pytest.mark.parametrize("max_candidates", [10_000, 500, 0])
def test_a_bucket_that_grows_past_a_set_becomes_a_bitmap_and_searches_agree(
    redis_server: RedisServer, made: list[RedisStore], max_candidates: int
) -> None:
    """Past 512 ids a trigram bucket is a bitmap: search, removal and reuse of ids still agree
    with a brute-force scan, whether a search reads the smallest bucket, intersects the
    bitmaps (words common apart, rarer together) or walks.
    """
    store = RedisStore(store_url(redis_server), 3600, max_candidates=max_candidates)
    made.append(store)
    rng = random.Random(9)
    tokens = {}
    for port in range(1, 9):
        names = [f"lecture-{port}-{n}.{rng.choice(['mp4', 'pdf'])}" for n in range(150)]
        tokens[port] = store.join("10.0.0.1", port, files(*names)).token
    for port in (2, 5):  # their names go; their ids come back for the next ones
        store.leave(f"10.0.0.1:{port}", tokens[port])
    store.expire()
    store.join("10.0.0.1", 20, files(*(f"talk-{n}.mp4" for n in range(300))))

    snapshot = store.snapshot()
    for query in ("lecture", "lecture mp4", "ture-3", "talk mp4", "4-1", "pdf"):
        expected = sorted(
            (peer, f.name)
            for peer, held in snapshot.items()
            for f in held
            if all(word in f.name.lower() for word in query.split())
        )
        assert paged(store, 1000, query=query) == expected, query
    assert store.audit() == []
