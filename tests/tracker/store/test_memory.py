"""The memory backend (tracker/index.py) against the store contract."""

from collections.abc import Callable

import pytest
from napshare.tracker.index import TrackerIndex
from napshare.tracker.store.base import IndexStore

from tests.tracker.store.contract import LimitsContract, ModelContract, StoreContract


class TestMemoryStore(StoreContract, LimitsContract, ModelContract):
    @pytest.fixture
    def make(self) -> Callable[..., IndexStore]:
        def make(heartbeat_interval: float = 30.0, **options: object) -> IndexStore:
            if options.get("clock") is None:
                options.pop("clock", None)
            return TrackerIndex(heartbeat_interval, **options)  # type: ignore[arg-type]

        return make
