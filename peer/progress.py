"""How a download shows its progress: a rich bar on a terminal, plain periodic lines otherwise."""

import sys
import threading
import time
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from peer.download import Reporter

PLAIN_INTERVAL = 2.0


def human(count: float) -> str:
    """A byte count in binary units: `512 B`, `3.5 MiB`, `1.0 GiB`."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


class _RateColumn(ProgressColumn):
    """The transfer rate in binary units, as the size column and the plain lines show it."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("?" if speed is None else f"{human(speed)}/s", style="progress.data.speed")


class BarReporter:
    """A rich progress bar with size, rate and time left, on the terminal's stderr."""

    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console(stderr=True)
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def begin(self, name: str, size: int, have: int) -> None:
        """Show a bar for `name`, already `have` of `size` bytes along."""
        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                _RateColumn(),
                TimeRemainingColumn(),
                console=self._console,
            )
            self._progress.start()
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(name, total=size, completed=have)

    def advance(self, count: int) -> None:
        """Move the bar."""
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, count)

    def restart(self, have: int) -> None:
        """Move the bar back to `have`."""
        if self._progress is not None and self._task is not None:
            self._progress.reset(self._task, completed=have)

    def note(self, line: str) -> None:
        """Print `line` on stdout above the bar."""
        print(line, flush=True)

    def end(self) -> None:
        """Leave the final bar on screen."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._task = None


class PlainReporter:
    """One line on `stream` every `interval` seconds: done, percent, rate and time left."""

    def __init__(self, stream: TextIO | None = None, interval: float = PLAIN_INTERVAL) -> None:
        self._stream = stream or sys.stderr
        self._interval = interval
        self._name = ""
        self._size = 0
        self._done = 0
        self._start_done = 0
        self._started = 0.0
        self._last_line = 0.0

    def begin(self, name: str, size: int, have: int) -> None:
        """Say what is fetched, and from where it resumes."""
        self._name, self._size, self._done, self._start_done = name, size, have, have
        self._started = self._last_line = time.monotonic()
        resumed = f", resuming after {human(have)}" if have else ""
        self._write(f"downloading {name}: {human(size)}{resumed}")

    def advance(self, count: int) -> None:
        """Count bytes; print a line when `interval` has passed since the last one."""
        self._done += count
        now = time.monotonic()
        if now - self._last_line >= self._interval:
            self._last_line = now
            self._write(f"{self._name}: {self.status(now)}")

    def restart(self, have: int) -> None:
        """Start counting again from `have`."""
        self._done = self._start_done = have
        self._started = time.monotonic()

    def note(self, line: str) -> None:
        """Print `line` on stdout."""
        print(line, flush=True)

    def end(self) -> None:
        """Nothing to clean up."""

    def status(self, now: float | None = None) -> str:
        """How far it got: `40% 400.0 MiB of 1.0 GiB, 120.5 MiB/s, 5 s left`."""
        if not self._name:
            return "(looking for peers)"
        now = time.monotonic() if now is None else now
        elapsed = max(now - self._started, 1e-9)
        rate = (self._done - self._start_done) / elapsed
        percent = 100 * self._done // self._size if self._size else 100
        left = f", {(self._size - self._done) / rate:.0f} s left" if rate > 0 else ""
        return f"{percent}% {human(self._done)} of {human(self._size)}, {human(rate)}/s{left}"

    def _write(self, line: str) -> None:
        print(line, file=self._stream, flush=True)


class StatusReporter(PlainReporter):
    """Prints nothing but the original's lines; keeps the status for a menu to show on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.finished = threading.Event()

    def _write(self, line: str) -> None:
        pass

    def end(self) -> None:
        """Mark the download over."""
        self.finished.set()


def reporter_for(stream: TextIO) -> Reporter:
    """A bar when `stream` is a terminal, else plain lines on it."""
    if stream.isatty():
        return BarReporter(Console(file=stream))
    return PlainReporter(stream)
