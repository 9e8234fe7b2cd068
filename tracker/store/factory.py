"""open_store: the index backend that a `--store` value names (memory, or a Redis URL)."""

from __future__ import annotations

from urllib.parse import urlsplit

from napshare.common.addresskey import AddressKey
from napshare.tracker.largejoins import LARGE_JOIN_FILES, LARGE_JOIN_INTERVAL
from napshare.tracker.limits import Limits
from napshare.tracker.store.base import MAX_JOIN_NONCES, IndexStore

MEMORY = "memory"
REDIS_SCHEMES = ("redis", "rediss", "unix")


class StoreConfigError(ValueError):
    """A store that this tracker cannot reach or use; the message says why."""


def check_store(value: str) -> str:
    """`value` if it names a store (`memory`, or a redis://, rediss:// or unix:// URL), else
    ValueError saying what would.
    """
    if value == MEMORY or urlsplit(value).scheme in REDIS_SCHEMES:
        return value
    raise ValueError(
        f"{value!r} is not a store: give memory, or a redis://HOST:PORT/DB, rediss://... or "
        "unix:///PATH URL"
    )


def open_store(
    value: str,
    heartbeat_interval: float,
    *,
    max_concurrent_searches: int,
    limits: Limits,
    address_key: AddressKey | None = None,
    max_join_nonces: int = MAX_JOIN_NONCES,
    large_join_files: int = LARGE_JOIN_FILES,
    large_join_interval: float = LARGE_JOIN_INTERVAL,
) -> IndexStore:
    """The store `value` names, opened: an empty index in memory, or the Redis one (which
    raises StoreConfigError when it cannot be reached or used).
    """
    if check_store(value) == MEMORY:
        from napshare.tracker.index import TrackerIndex  # noqa: PLC0415 - it imports this package

        return TrackerIndex(
            heartbeat_interval,
            max_concurrent_searches=max_concurrent_searches,
            limits=limits,
            address_key=address_key,
            max_join_nonces=max_join_nonces,
            large_join_files=large_join_files,
            large_join_interval=large_join_interval,
        )
    from napshare.tracker.store.redis_store import RedisStore  # noqa: PLC0415 - redis is big

    return RedisStore(
        value,
        heartbeat_interval,
        max_concurrent_searches=max_concurrent_searches,
        limits=limits,
        address_key=address_key,
        max_join_nonces=max_join_nonces,
        large_join_files=large_join_files,
        large_join_interval=large_join_interval,
    )
