"""Recent Search answers, kept serialized so that a repeated search costs almost nothing.

Answers are keyed by the request's bytes and hold the index generation they reflect; the
caller checks that generation before using one. The oldest are dropped first once the kept
requests and answers pass a byte budget.
"""

import threading
from collections.abc import Hashable
from typing import NamedTuple

BUDGET_BYTES = 8 * 1024 * 1024
ENTRY_OVERHEAD = 200  # bytes a kept entry costs besides its request and answer


class Answer(NamedTuple):
    """A serialized Search answer, the index generation it reflects, and its console line."""

    generation: Hashable  # what the store's unchanged_since() takes
    response: bytes
    asker: str | None  # the request's peer_id, normalised, if it had a valid one
    searched: str


class Answers:
    """Answers by request bytes; get() is lock-free, put() keeps within the budget."""

    def __init__(self, budget: int = BUDGET_BYTES) -> None:
        self._budget = budget
        self._kept: dict[bytes, Answer] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, request: bytes) -> Answer | None:
        """The answer kept for `request`, if any (it may be out of date)."""
        return self._kept.get(request)

    def put(self, request: bytes, answer: Answer) -> None:
        """Keep `answer`, dropping the oldest answers if the budget requires it."""
        size = _cost(request, answer)
        if size > self._budget // 64:
            return  # one huge answer must not push out dozens of small ones
        with self._lock:
            old = self._kept.pop(request, None)
            if old is not None:
                self._bytes -= _cost(request, old)
            self._kept[request] = answer
            self._bytes += size
            while self._bytes > self._budget:
                oldest, dropped = next(iter(self._kept.items()))
                del self._kept[oldest]
                self._bytes -= _cost(oldest, dropped)


def _cost(request: bytes, answer: Answer) -> int:
    return len(request) + len(answer.response) + ENTRY_OVERHEAD
