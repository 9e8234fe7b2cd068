"""The tracker's console lines: common.console's wording, written in batches off the RPC path.

A busy tracker prints a line per search. Writing each one from the RPC's thread costs a
system call (one per line when stdout is unbuffered), during which another thread takes
the GIL. say() only queues the line; the lease reaper calls flush() ten times a second,
and say() flushes by itself if lines pile up with no reaper running. Lines of one kind are
limited in rate and every line in length (common.linelimit): past the rate, one line says
how many were left out. A log line first writes the lines queued before it (ConsoleFirst), so
the two kinds keep their order.
"""

import logging
import sys
import threading
from collections import deque
from collections.abc import Iterable

from napshare.common.console import LINES_LEFT_OUT, render
from napshare.common.linelimit import CONSOLE_LINES, CONSOLE_WINDOW_SECONDS, LineLimiter, cut

logger = logging.getLogger(__name__)

MAX_QUEUED = 1000

_queued: deque[str] = deque()
_writing = threading.Lock()  # one flush at a time, so batches keep their order
_limiter = LineLimiter(CONSOLE_LINES, CONSOLE_WINDOW_SECONDS)


def say(message: str, **fields: str | Iterable[str]) -> None:
    """Queue one console line (deque appends are atomic, so threads need no lock)."""
    _say_left_out()
    if _limiter.admit(message):
        _queued.append(cut(render(message, fields)))
    if len(_queued) > MAX_QUEUED:
        flush()


def _say_left_out() -> None:
    for _kind, count in _limiter.left_out():
        _queued.append(render(LINES_LEFT_OUT, {"count": str(count)}))


def flush() -> None:
    """Write the queued lines, in order, and flush stdout; a broken stdout loses them quietly."""
    _say_left_out()
    with _writing:
        lines = [_queued.popleft() for _ in range(len(_queued))]
        try:
            if lines:
                sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()
        except (OSError, ValueError) as error:
            logger.debug("%d console lines lost: %s", len(lines), error)


class ConsoleFirst(logging.Filter):
    """Writes the console lines queued so far before a log record goes out: a log line never
    comes before the lines of what happened earlier (a peer's search, then its Leave).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Flush the queue (unless the record is the queue's own: it is being flushed)."""
        if record.name != __name__:
            flush()
        return True
