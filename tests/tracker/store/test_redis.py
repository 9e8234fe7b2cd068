"""The Redis backend (tracker/store/redis_store.py) against the store contract, on a real
redis-server: in one shard, and in three (the layout a Redis Cluster spreads).
"""

from collections.abc import Callable, Iterator

import pytest
from napshare.tracker.store.base import IndexStore
from napshare.tracker.store.redis_store import RedisStore

from tests.support.redis import RedisServer, store_url
from tests.tracker.store.contract import ModelContract, StoreContract


@pytest.fixture
def made(redis_server: RedisServer) -> Iterator[list[RedisStore]]:
    stores: list[RedisStore] = []
    yield stores
    for store in stores:
        store.forget()
        store.close()


class TestRedisStore(StoreContract, ModelContract):
    @pytest.fixture
    def make(self, redis_server: RedisServer, made: list[RedisStore]) -> Callable[..., IndexStore]:
        def make(heartbeat_interval: float = 30.0, **options: object) -> IndexStore:
            store = RedisStore(store_url(redis_server), heartbeat_interval, **options)  # type: ignore[arg-type]
            made.append(store)
            return store

        return make
