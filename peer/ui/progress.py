"""How a download shows its progress: a rich bar on a terminal, plain periodic lines otherwise."""

import sys
import time
from collections.abc import Callable, Mapping
from typing import TextIO

from napshare.common import console
from napshare.common.console import tr
from napshare.peer.downloading.engine import DownloadResult
from napshare.peer.downloading.reporting import Reporter, StatusReporter, sources_text
from napshare.peer.units import human
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

PLAIN_INTERVAL = 2.0


class _RateColumn(ProgressColumn):
    """The transfer rate in binary units, as the size column and the plain lines show it."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("?" if speed is None else f"{human(speed)}/s", style="progress.data.speed")


class _SourcesColumn(ProgressColumn):
    """How many peers send now, and where the download waits in a peer's upload queue."""

    def render(self, task: Task) -> Text:
        # A stream waiting in a peer's queue is no peer sending.
        sending = task.fields.get("sources", 0) - task.fields.get("queued", 0)
        text = sources_text(sending, task.fields.get("paths"))
        return Text((text + task.fields.get("queue", "")).lstrip(", "))


class BarReporter:
    """A rich progress bar with size, rate and time left, on the terminal's stderr."""

    def __init__(
        self, console: Console | None = None, on_notice: Callable[[str], None] | None = None
    ) -> None:
        self._console = console or Console(stderr=True)
        self._on_notice = on_notice or self.note
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._queues = StatusReporter(on_note=lambda _line: None)  # keeps the queue places

    def begin(self, name: str, size: int, have: int) -> None:
        """Show a bar for `name`, already `have` of `size` bytes along."""
        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                DownloadColumn(binary_units=True),
                _RateColumn(),
                TimeRemainingColumn(),
                _SourcesColumn(),
                console=self._console,
            )
            self._progress.start()
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(
            console.printable(name), total=size, completed=have, sources=0
        )

    def advance(self, count: int) -> None:
        """Move the bar."""
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, count)

    def restart(self, have: int) -> None:
        """Move the bar back to `have`."""
        if self._progress is not None and self._task is not None:
            self._progress.reset(self._task, completed=have)

    def sources(self, count: int, paths: Mapping[str, int] | None = None) -> None:
        """Show how many peers send now, and how they are reached."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, sources=count, paths=dict(paths or {}))

    def queued(self, peer: str, position: int, waiting: int, estimate: int) -> None:
        """Show where the download waits in a peer's upload queue."""
        self._queues.queued(peer, position, waiting, estimate)
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task, queue=self._queues.queue_text(), queued=self._queues.queued_at
            )

    def note(self, line: str) -> None:
        """Print `line` on stdout above the bar."""
        console.show(line)

    def notice(self, line: str) -> None:
        """Pass `line` on to `on_notice` (it prints above the bar too)."""
        self._on_notice(line)

    def end(self) -> None:
        """Leave the final bar on screen."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._task = None


class PlainReporter(StatusReporter):
    """One line on `stream` every `interval` seconds: done, percent, rate and time left."""

    def __init__(
        self,
        stream: TextIO | None = None,
        interval: float = PLAIN_INTERVAL,
        on_notice: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(on_notice=on_notice)
        self._stream = stream or sys.stderr
        self._interval = interval
        self._last_line = 0.0

    def begin(self, name: str, size: int, have: int) -> None:
        """Say what is fetched, and from where it resumes."""
        super().begin(name, size, have)
        self._last_line = time.monotonic()
        if have:
            line = tr(
                "downloading {name}: {size}, resuming after {have}",
                name=name,
                size=human(size),
                have=human(have),
            )
        else:
            line = tr("downloading {name}: {size}", name=name, size=human(size))
        self._write(line)

    def advance(self, count: int) -> None:
        """Count bytes; print a line when `interval` has passed since the last one."""
        super().advance(count)
        now = time.monotonic()
        if now - self._last_line >= self._interval:
            self._last_line = now
            self._write(f"{self.name}: {self.status(now)}")

    def queued(self, peer: str, position: int, waiting: int, estimate: int) -> None:
        """Print a line at once when the download's best place in a peer's upload queue
        changes (not when only its estimate does: the next line that moves says it).
        """
        before = self.best_place()
        super().queued(peer, position, waiting, estimate)
        after = self.best_place()
        if after is not None and (before is None or after[:3] != before[:3]):
            self._last_line = time.monotonic()
            self._write(f"{self.name}: {self.status()}")
        elif after is None and before is not None:
            self._last_line = time.monotonic()  # the next line comes `interval` after the wait

    def _write(self, line: str) -> None:
        console.show(line, file=self._stream)


def reporter_for(stream: TextIO, on_notice: Callable[[str], None] | None = None) -> Reporter:
    """A bar when `stream` is a terminal, else plain lines on it; notices to `on_notice`."""
    if stream.isatty():
        # soft_wrap: a log line printed above the bar stays one line (the terminal wraps it).
        return BarReporter(Console(file=stream, soft_wrap=True), on_notice)
    return PlainReporter(stream, on_notice=on_notice)


def downloaded_line(result: DownloadResult, folder_label: str) -> str:
    """The original's `File X downloaded successfully into folder Y`."""
    return console.render(console.DOWNLOADED, {"name": result.name, "folder": folder_label})


def resumed_line(result: DownloadResult) -> str | None:
    """What a resumed download found already there, or None for one that started afresh."""
    if not result.resumed_from:
        return None
    return tr(
        "resumed: {have} of {size} were already there",
        have=human(result.resumed_from),
        size=human(result.size),
    )
