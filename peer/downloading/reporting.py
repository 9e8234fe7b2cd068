"""How a download tells its progress: the Reporter protocol, a silent one, one that keeps status.

The download engine calls a Reporter; the user interface decides what to show (peer.ui.progress
draws bars and lines on top of StatusReporter).
"""

import math
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from napshare.common import console
from napshare.common.console import tr
from napshare.peer.units import human


class Reporter(Protocol):
    """Where a download tells how it goes (a progress bar, plain lines, or nothing)."""

    def begin(self, name: str, size: int, have: int) -> None:
        """The download of `size` bytes starts, `have` of them already there."""

    def advance(self, count: int) -> None:
        """`count` more bytes arrived and were kept (never from two threads at once)."""

    def restart(self, have: int) -> None:
        """The bytes so far were thrown away; `have` are there now."""

    def sources(self, count: int, paths: Mapping[str, int] | None = None) -> None:
        """`count` peers are sending pieces now; `paths` says how many are reached by each
        path (peer.reach.paths.Path values: direct, local, reverse, relay).
        """

    def queued(self, peer: str, position: int, waiting: int, estimate: int) -> None:
        """A stream waits in `peer`'s upload queue: at `position` of `waiting`, about
        `estimate` seconds from a slot (0: the peer cannot tell yet); position 0: it no longer
        waits (its data comes, or it ended).
        """

    def note(self, line: str) -> None:
        """Show one line to the user (one of the original's console lines)."""

    def notice(self, line: str) -> None:
        """Tell the user what the download waits on (napshare's own word, not the original's:
        the command line shows it on stderr after the program's name).
        """

    def end(self) -> None:
        """The download is over, whatever the outcome."""


class SilentReporter:
    """A Reporter that shows nothing."""

    def begin(self, name: str, size: int, have: int) -> None:
        """Nothing."""

    def advance(self, count: int) -> None:
        """Nothing."""

    def restart(self, have: int) -> None:
        """Nothing."""

    def sources(self, count: int, paths: Mapping[str, int] | None = None) -> None:
        """Nothing."""

    def queued(self, peer: str, position: int, waiting: int, estimate: int) -> None:
        """Nothing."""

    def note(self, line: str) -> None:
        """Nothing."""

    def notice(self, line: str) -> None:
        """Nothing."""

    def end(self) -> None:
        """Nothing."""


class StatusReporter:
    """Shows nothing by itself; keeps how far the download got for `status()` to tell.

    `note` lines (the original's console lines, such as a refused download) go to `on_note`,
    `notice` lines to `on_notice` (by default `on_note` too).
    """

    def __init__(
        self,
        on_note: Callable[[str], None] = console.show,
        on_notice: Callable[[str], None] | None = None,
    ) -> None:
        self._on_note = on_note
        self._on_notice = on_notice or on_note
        self.name = ""
        self._size = 0
        self._done = 0
        self._start_done = 0
        self._started = 0.0
        self._sources = 0
        self._paths: Mapping[str, int] = {}
        self._queues: dict[str, tuple[int, int, int]] = {}  # per peer: position, waiting, eta

    def begin(self, name: str, size: int, have: int) -> None:
        """Start counting `size` bytes, `have` of them already there."""
        self.name, self._size, self._done, self._start_done = name, size, have, have
        self._started = time.monotonic()

    def advance(self, count: int) -> None:
        """Count `count` more bytes."""
        self._done += count

    def restart(self, have: int) -> None:
        """Start counting again from `have`."""
        self._done = self._start_done = have
        self._started = time.monotonic()

    def sources(self, count: int, paths: Mapping[str, int] | None = None) -> None:
        """Remember how many peers send now, and how they are reached, for `status`."""
        self._sources = count
        self._paths = paths or {}

    def queued(self, peer: str, position: int, waiting: int, estimate: int) -> None:
        """Remember where the download waits in `peer`'s upload queue, for `status`."""
        if position:
            self._queues[peer] = (position, waiting, estimate)
        else:
            self._queues.pop(peer, None)

    @property
    def queued_at(self) -> int:
        """How many peers' queues the download waits in now."""
        return len(self._queues)

    def best_place(self) -> tuple[str, int, int, int] | None:
        """The best place the download holds in a peer's upload queue (peer, position,
        waiting, estimate), None when it waits in none.
        """
        if not self._queues:
            return None
        peer, (position, waiting, estimate) = min(
            self._queues.items(), key=lambda item: (item[1][0], item[1][2] or math.inf)
        )
        return peer, position, waiting, estimate

    def queue_text(self) -> str:
        """`, waiting in the upload queue of 1.2.3.4:8776: 2 of 3, about 40 s`: the best
        place, as the progress lines end; "" for none.
        """
        best = self.best_place()
        return "" if best is None else queue_text(*best)

    def note(self, line: str) -> None:
        """Pass `line` on to `on_note`."""
        self._on_note(line)

    def notice(self, line: str) -> None:
        """Pass `line` on to `on_notice`."""
        self._on_notice(line)

    def end(self) -> None:
        """Nothing to clean up."""

    def status(self, now: float | None = None) -> str:
        """How far it got: `40% 400.0 MiB of 1.0 GiB, 120.5 MiB/s, 5 s left, from 3 peers`."""
        # A stream waiting in a peer's queue is no peer sending.
        sources = sources_text(self._sources - len(self._queues), self._paths)
        return f"{self._progress(now)}{sources}{self.queue_text()}"

    def _progress(self, now: float | None) -> str:
        if not self.name:
            return tr("(looking for peers)")
        now = time.monotonic() if now is None else now
        elapsed = max(now - self._started, 1e-9)
        rate = (self._done - self._start_done) / elapsed
        percent = 100 * self._done // self._size if self._size else 100
        done, size, speed = human(self._done), human(self._size), human(rate)
        if rate <= 0:
            return tr(
                "{percent}% {done} of {size}, {rate}/s",
                percent=percent,
                done=done,
                size=size,
                rate=speed,
            )
        return tr(
            "{percent}% {done} of {size}, {rate}/s, {left} s left",
            percent=percent,
            done=done,
            size=size,
            rate=speed,
            left=format((self._size - self._done) / rate, ".0f"),
        )


def sources_text(count: int, paths: Mapping[str, int] | None = None) -> str:
    """`, from 3 peers` (how many send now), as the progress lines end; when some are reached
    otherwise than directly, how: `, from 2 peers: 1 direct, 1 relayed`. "" for none.
    """
    if count <= 0:
        return ""
    text = tr(", from 1 peer") if count == 1 else tr(", from {count} peers", count=count)
    reached = {path: n for path, n in (paths or {}).items() if n > 0}
    if not reached or set(reached) == {"direct"}:
        return text
    parts = [_PATH_WORDS[path](n) for path, n in sorted(reached.items(), key=_path_order)]
    return f"{text}: {', '.join(parts)}"


def queue_text(peer: str, position: int, waiting: int, estimate: int) -> str:
    """`, waiting in the upload queue of 1.2.3.4:8776: 2 of 3, about 40 s` (without the
    estimate when the peer gave none), as the progress lines end.
    """
    if estimate:
        return tr(
            ", waiting in the upload queue of {peer}: {position} of {waiting}, about {seconds} s",
            peer=peer,
            position=position,
            waiting=waiting,
            seconds=estimate,
        )
    return tr(
        ", waiting in the upload queue of {peer}: {position} of {waiting}",
        peer=peer,
        position=position,
        waiting=waiting,
    )


_PATH_ORDER = ("direct", "local", "reverse", "relay")
_PATH_WORDS = {
    "direct": lambda n: tr("{count} direct", count=n),
    "local": lambda n: tr("{count} on this network", count=n),
    "reverse": lambda n: tr("{count} by reverse connection", count=n),
    "relay": lambda n: tr("{count} relayed", count=n),
}


def _path_order(item: tuple[str, int]) -> int:
    return _PATH_ORDER.index(item[0]) if item[0] in _PATH_ORDER else len(_PATH_ORDER)
