"""The one retry delay of the peer: exponential with jitter and a cap, reset after a success."""

import random

FIRST_DELAY = 0.5  # seconds before the first retry, before jitter


class Backoff:
    """Delays that double from `first` up to `cap`; each is drawn from [half of it, all of it].

    The jitter keeps peers that failed together (a tracker restart) from retrying together.
    """

    def __init__(self, cap: float, first: float = FIRST_DELAY) -> None:
        if first <= 0 or cap <= 0:
            raise ValueError(f"backoff delays must be positive, not {first:g} and {cap:g}")
        self._first = min(first, cap)
        self._cap = cap
        self._base = self._first

    def next(self) -> float:
        """The delay before the next retry; the one after it is twice as long, up to the cap."""
        delay = self._base
        self._base = min(self._cap, self._base * 2)
        return delay * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        """Start again from the first delay (after a success)."""
        self._base = self._first
