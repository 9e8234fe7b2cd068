"""The nonces of recent signed Joins, in this process: each is taken once until it expires.

The memory backend keeps them here (the Redis one in the store, for every replica). A nonce
is kept in the bucket of the time it expires (BUCKET_SECONDS wide), so a lookup reads one set
and expiry drops whole buckets; at most `limit` are kept, since every signed Join adds one.
"""

from __future__ import annotations

import math
import threading

from napshare.tracker.errors import join_replayed, joins_busy

BUCKET_SECONDS = 10


class RecentNonces:
    """Keys (bytes) of recent signed Joins, each until its expiry; at most `limit`."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the nonce limit must be at least 1")
        self.limit = limit
        self._lock = threading.Lock()
        self._buckets: dict[int, set[bytes]] = {}
        self._count = 0

    def __len__(self) -> int:
        with self._lock:
            return self._count

    def take(self, key: bytes, expires_at: float, now: float) -> None:
        """Remember `key` until `expires_at`. JoinReplayedError if it is remembered already;
        BusyError (JOINS_BUSY) when `limit` keys are remembered and none has expired by `now`.
        """
        bucket = math.floor(expires_at / BUCKET_SECONDS)
        with self._lock:
            self._expire_locked(now)
            kept = self._buckets.get(bucket)
            if kept is not None and key in kept:
                raise join_replayed()
            if self._count >= self.limit:
                oldest = min(self._buckets)
                raise joins_busy(max(1.0, (oldest + 1) * BUCKET_SECONDS - now), self.limit)
            if kept is None:
                kept = self._buckets[bucket] = set()
            kept.add(key)
            self._count += 1

    def _expire_locked(self, now: float) -> None:
        for bucket in [b for b in self._buckets if (b + 1) * BUCKET_SECONDS <= now]:
            self._count -= len(self._buckets.pop(bucket))
