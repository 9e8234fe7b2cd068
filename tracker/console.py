"""The tracker's console lines: common.console's wording, written in batches off the RPC path.

A busy tracker prints a line per search. Writing each one from the RPC's thread costs a
system call (one per line when stdout is unbuffered), during which another thread takes
the GIL. say() only queues the line; the lease reaper calls flush() ten times a second,
and say() flushes by itself if lines pile up with no reaper running.
"""

import logging
import sys
import threading
from collections import deque
from collections.abc import Iterable

from napshare.common.console import render

logger = logging.getLogger(__name__)

MAX_QUEUED = 1000

_queued: deque[str] = deque()
_writing = threading.Lock()  # one flush at a time, so batches keep their order


def say(message: str, **fields: str | Iterable[str]) -> None:
    """Queue one console line (deque appends are atomic, so threads need no lock)."""
    _queued.append(render(message, fields))
    if len(_queued) > MAX_QUEUED:
        flush()


def flush() -> None:
    """Write the queued lines, in order, and flush stdout; a broken stdout loses them quietly."""
    with _writing:
        lines = [_queued.popleft() for _ in range(len(_queued))]
        try:
            if lines:
                sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()
        except (OSError, ValueError) as error:
            logger.debug("%d console lines lost: %s", len(lines), error)
