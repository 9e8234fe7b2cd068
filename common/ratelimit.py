"""A token bucket that caps bytes per second: uploads, downloads and the relay share it."""

import re
import threading
import time
from collections.abc import Callable

# A bucket holds at most this many seconds of its rate, so that after an idle spell at most
# that much goes out at once: over 10 s the overshoot is at most 2.5% plus one chunk.
BURST_SECONDS = 0.25
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
_RATE = re.compile(r"(\d+(?:\.\d+)?)([KMG]?)(?:I?B)?(?:/S)?")


class TokenBucket:
    """At most `rate` bytes per second on average, in bursts of at most `burst` bytes.

    A rate of 0 means no limit. reserve() never blocks: it takes the tokens at once, going
    into debt if it must, and says how long the caller should wait before using them; callers
    that reserve while others wait queue up behind their debt, so the rate holds for all of
    them together. The bucket starts full.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate < 0:
            raise ValueError(f"a rate must not be negative, not {rate}")
        self.rate = rate
        self.burst = rate * BURST_SECONDS if burst is None else burst
        if self.burst < 0:
            raise ValueError(f"a burst must not be negative, not {self.burst}")
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._stamp = clock()

    @property
    def limited(self) -> bool:
        """False when the rate is 0 (no limit)."""
        return self.rate > 0

    def reserve(self, count: int) -> float:
        """Take `count` bytes' tokens; the seconds to wait before sending (or reading) them.

        Nothing (count 0) never waits, even behind others' debt.
        """
        if not self.rate or count <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= count
            return max(0.0, -self._tokens / self.rate)

    def take(self, count: int = 1) -> float:
        """Take `count` tokens only if the bucket holds them: 0.0 when taken, else the seconds
        until it will (nothing taken), for callers that refuse rather than wait.
        """
        if not self.rate or count <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= count:
                self._tokens -= count
                return 0.0
            return (count - self._tokens) / self.rate


def parse_rate(text: str) -> float:
    """Bytes per second from `30M`, `500K`, `1.5G`, `2MiB/s` or `4096` (binary units).

    Raises ValueError for anything else; `0` means no limit.
    """
    match = _RATE.fullmatch(text.strip().upper())
    if match is None:
        raise ValueError(
            f"{text!r} is not a rate; write bytes per second as a number with an optional "
            "K, M or G (1024, 1024², 1024³), such as 500K or 30M; 0 means no limit"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]
