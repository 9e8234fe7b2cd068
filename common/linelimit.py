"""Bounds on log and console lines, so that a flood of requests is never a flood of lines.

Lines of one kind (a log call's format string, a console message) are written at most
`lines` at a time in a window of `seconds`; the rest are counted, not written, and the
count is reported in one line once the window is over. Every line is cut to MAX_LINE_CHARS.
"""

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

MAX_LINE_CHARS = 2000
LOG_LINES = 20  # of one kind, on stderr, in each LOG_WINDOW_SECONDS
LOG_WINDOW_SECONDS = 10.0
CONSOLE_LINES = 2000  # of one kind, on the tracker's stdout (a line per search), each second
CONSOLE_WINDOW_SECONDS = 1.0
MAX_KINDS = 1024  # kinds remembered at once; past it the quiet ones are forgotten
_CUT = " [… {count} more characters]"


def cut(line: str, limit: int = MAX_LINE_CHARS) -> str:
    """`line`, or its start and how much was left out if it is longer than `limit`."""
    if len(line) <= limit:
        return line
    keep = limit - len(_CUT.format(count=len(line)))
    return line[:keep] + _CUT.format(count=len(line) - keep)


class _Window:
    __slots__ = ("left_out", "start", "written")

    def __init__(self, start: float) -> None:
        self.start = start
        self.written = 0
        self.left_out = 0


class LineLimiter:
    """Which lines to write: at most `lines` of one kind in each window of `seconds`."""

    def __init__(
        self, lines: int, seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lines = lines
        self._seconds = seconds
        self._clock = clock
        self._windows: dict[Hashable, _Window] = {}
        self._lock = threading.Lock()

    def admit(self, kind: Hashable) -> bool:
        """Whether to write a line of `kind` now (if not, it is counted as left out).

        A kind with lines left out starts a new window only once left_out() has reported them.
        """
        now = self._clock()
        with self._lock:
            window = self._windows.get(kind)
            if window is None:
                if len(self._windows) >= MAX_KINDS:
                    self._forget_quiet(now)
                window = self._windows[kind] = _Window(now)
            elif now - window.start >= self._seconds and not window.left_out:
                window.start, window.written = now, 0
            if window.written < self._lines:
                window.written += 1
                return True
            window.left_out += 1
            return False

    def left_out(self, *, everything: bool = False) -> list[tuple[Any, int]]:
        """Each kind whose window is over (or every kind) with lines left out, and how many;
        they restart. Call it before each admit() (and on a timer, and at the end), and
        report each count in one line.
        """
        now = self._clock()
        with self._lock:
            done = [
                (kind, window)
                for kind, window in self._windows.items()
                if window.left_out and (everything or now - window.start >= self._seconds)
            ]
            for _kind, window in done:
                window.start, window.written = now, 0
            counts = [(kind, window.left_out) for kind, window in done]
            for _kind, window in done:
                window.left_out = 0
        return counts

    def _forget_quiet(self, now: float) -> None:
        quiet = [
            kind
            for kind, window in self._windows.items()
            if not window.left_out and now - window.start >= self._seconds
        ]
        for kind in quiet:
            del self._windows[kind]
        if len(self._windows) >= MAX_KINDS:  # all busy: a new kind's lines still get written
            self._windows.clear()
