"""The Redis backend on a Redis Cluster of three nodes started for this module: its shards
spread over every node, searches ask them all, and the store contract still holds.
"""

import uuid
from collections.abc import Callable, Iterator

import pytest
from napshare.tracker.store.base import IndexStore
from napshare.tracker.store.redis_store import SHARDS_PER_CLUSTER_NODE, RedisStore

from tests.support.redis import RedisCluster, started_cluster
from tests.tracker.store.contract import ROOMY, ModelContract, StoreContract, files, keys


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    yield from started_cluster(tmp_path_factory.mktemp("cluster"))


class TestRedisClusterStore(StoreContract, ModelContract):
    model_limits = ROOMY  # each shard enforces its share of each limit
    names_once = False  # a name two shards hold is counted by each
    model_examples = 15  # twelve shards on three nodes: each step costs more round trips

    @pytest.fixture
    def make(self, cluster: RedisCluster) -> Iterator[Callable[..., IndexStore]]:
        made: list[RedisStore] = []

        def make(heartbeat_interval: float = 30.0, **options: object) -> IndexStore:
            url = f"{cluster.url}?prefix=t{uuid.uuid4().hex[:12]}"
            store = RedisStore(url, heartbeat_interval, **options)  # type: ignore[arg-type]
            made.append(store)
            return store

        yield make
        for store in made:
            store.forget()
            store.close()

    def examined_bound(self, budget: int) -> int:
        return budget * SHARDS_PER_CLUSTER_NODE * 3  # each shard walks up to the budget

    def test_the_shards_spread_over_every_node_and_searches_ask_them_all(
        self, make: Callable[..., IndexStore], cluster: RedisCluster
    ) -> None:
        store = make()
        for port in range(1, 40):
            store.join("10.0.0.1", port, files(f"own-{port}.mp4", "shared.mp4"))

        assert isinstance(store, RedisStore)
        assert store.cluster
        assert store.shards == SHARDS_PER_CLUSTER_NODE * 3
        for server in cluster.servers:
            with server.client() as client:
                assert client.dbsize() > 0, f"node {server.port} holds no part of the index"
        holders = [peer for peer, _ in keys(store.search(name="shared.mp4", limit=1000))]
        assert holders == sorted(f"10.0.0.1:{port}" for port in range(1, 40))
        assert len(keys(store.search(query="own mp4", limit=1000))) == 39
        assert store.audit() == []
