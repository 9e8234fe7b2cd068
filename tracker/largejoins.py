"""How often one address or identity may send a large Join: each costs the index seconds of
work (50,000 names took 2.5 to 9 s), so one client re-joining in a loop would take a core,
and the index's time, from everyone else.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from napshare.tracker.errors import large_join_too_soon

LARGE_JOIN_FILES = 10_000  # a Join listing this many files or more is large (--large-join-files)
# Seconds between two large Joins of one address (an IPv6 /64) or identity
# (--large-join-interval): an honest peer joins once at start and again only when its lease
# was lost, far less often.
LARGE_JOIN_INTERVAL = 30.0
MAX_REMEMBERED = 65_536  # addresses and identities remembered at once; the oldest go first


class LargeJoins:
    """When each address and identity last sent a large Join, for `interval` seconds."""

    def __init__(
        self,
        files: int = LARGE_JOIN_FILES,
        interval: float = LARGE_JOIN_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if files < 1 or not interval >= 0:
            raise ValueError("a large Join has at least 1 file, and the interval is not negative")
        self.files = files
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: OrderedDict[str, float] = OrderedDict()  # oldest first

    def take(self, files: int, keys: Iterable[str]) -> None:
        """Note a Join of `files` files from everyone in `keys` (its address key, its
        identity): BusyError (LARGE_JOIN_TOO_SOON, with the seconds to wait) if it is large and
        one of them sent a large Join less than `interval` seconds ago.
        """
        if files < self.files or not self.interval:
            return
        wanted = list(keys)
        with self._lock:
            now = self._clock()
            last = self._last
            while last and next(iter(last.values())) <= now - self.interval:
                last.popitem(last=False)
            waits = [last[key] + self.interval - now for key in wanted if key in last]
            if waits:
                raise large_join_too_soon(max(waits), self.files, self.interval)
            for key in wanted:
                last[key] = now
                last.move_to_end(key)
            while len(last) > MAX_REMEMBERED:
                last.popitem(last=False)
