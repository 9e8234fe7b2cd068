"""The streams of one round of a download: one per peer that may be asked, up to a cap, all at
once on the pieces of one part (and a second one per peer while the cap leaves room and much of
the file is left); peer.downloading.plan decides which stream fetches what.

A stream that fails is reported (the engine decides whether its peer is asked again, later, or
never) and its pieces go to the others; a failure that is not a peer's (the disk, a cancel)
stops every stream and is raised.
"""

import itertools
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from napshare.common.console import tr
from napshare.peer.defaults import SECOND_STREAM_MIN, SOURCES_REFRESH, STREAMS_PER_PEER
from napshare.peer.downloading.fetch import PeerChannels, Stream, fetch_claim
from napshare.peer.downloading.partfile import PartFile
from napshare.peer.downloading.plan import Claim, Plan
from napshare.peer.downloading.reporting import Reporter
from napshare.peer.errors import CancelledError, PeerError, PeerFault

logger = logging.getLogger(__name__)

POLL = 0.5  # seconds between looks for peers whose wait is over, while streams run
_Key = tuple[str, int]  # a stream: its peer, and which of that peer's streams it is


def streams_per_peer(left: int) -> int:
    """How many streams one peer may send on with `left` bytes to fetch: a second one only
    while SECOND_STREAM_MIN or more are left.
    """
    return STREAMS_PER_PEER if left >= SECOND_STREAM_MIN else 1


class Swarm:
    """Runs streams from the peers `ready()` lists into `part` until it is complete or no
    peer can send more now.

    `ready()` gives the peers that may be asked, in asking order (it is walked only as far as
    needed). `on_failure(failure, following)` is told of each stream's PeerError
    (`following` is a peer that goes on, None when none does); a peer whose stream failed is
    not asked again in this round (its other stream stops too), unless it was busy and said
    when to come back. While fewer than `max_sources` peers send, `refresh()` is called every
    `refresh_every` seconds to find peers that joined since (a search). The round ends, its
    streams stopped, once the monotonic time reaches `until()` (no byte came in time).

    Up to `max_streams` streams run at once, at most `max_sources` peers' and STREAMS_PER_PEER
    of one peer's: each stream has a connection of its own, so the receiving work of two spreads
    over two cores. A peer's second stream starts only while SECOND_STREAM_MIN bytes or more
    are left to fetch (it costs a connection and round trips), and not again for this round
    once the peer refused one (it allows one upload per address, or has no slot free).
    """

    def __init__(
        self,
        part: PartFile,
        channels: PeerChannels,
        how: Stream,
        reporter: Reporter,
        *,
        max_sources: int,
        max_streams: int | None = None,
        ready: Callable[[], Iterable[str]],
        on_failure: Callable[[PeerError, str | None], None],
        refresh: Callable[[], None] = lambda: None,
        refresh_every: float = SOURCES_REFRESH,
        until: Callable[[], float] = lambda: math.inf,
    ) -> None:
        self._part = part
        self._channels = channels
        self._halt = threading.Event()
        self._how = replace(how, halt=self._halt)
        self._reporter = reporter
        self._max = max(1, max_sources)
        self._max_streams = max(self._max, max_streams or self._max)
        self._ready = ready
        self._on_failure = on_failure
        self._refresh = refresh
        self._refresh_every = refresh_every
        self._until = until
        self._events: queue.Queue[tuple[_Key, BaseException | None]] = queue.Queue()

    def run(self) -> None:
        """Fetch until the part is complete or every stream has ended; raises what is not a
        peer's failure (CancelledError, a FolderProblemError) after stopping every stream.
        """
        plan = Plan(self._part.verified_pieces(), streams_per_peer=STREAMS_PER_PEER)
        running: dict[_Key, threading.Thread] = {}
        resting: set[str] = set()  # failed in this round
        single: set[str] = set()  # refused a second stream in this round
        refreshed = time.monotonic()
        try:
            while not plan.complete:
                if self._how.cancel is not None and self._how.cancel.is_set():
                    raise CancelledError(tr("download of {name} cancelled", name=self._part.name))
                if time.monotonic() >= self._until():
                    return
                peers = {peer for peer, _ in running}
                if len(peers) < self._max and time.monotonic() - refreshed >= self._refresh_every:
                    self._refresh()
                    refreshed = time.monotonic()
                for key in self._wanted(running, resting, single, plan):
                    claim = plan.claim(key[0])
                    if claim is not None:
                        wait = key[1] == 0 and self._alone(key[0], running, resting)
                        running[key] = self._start(plan, claim, key, wait)
                self._report(running)
                if not running:
                    return
                try:
                    key, outcome = self._events.get(timeout=POLL)
                except queue.Empty:
                    continue
                running.pop(key).join()
                self._report(running)
                peer = key[0]
                if isinstance(outcome, PeerError):
                    sibling = any(p == peer for p, _ in running)
                    if sibling and outcome.fault is PeerFault.REFUSED:
                        logger.debug("%s refused a second stream: %s", peer, outcome)
                        single.add(peer)
                        continue
                    if outcome.fault is not PeerFault.REFUSED or outcome.retry_after is None:
                        resting.add(peer)
                        plan.drop(peer)  # its other stream stops too
                    following = next(
                        (p for p in self._ready() if p != peer and p not in resting), None
                    )
                    self._on_failure(outcome, following)
                elif outcome is not None:
                    raise outcome
        finally:
            self._halt.set()
            for thread in running.values():
                thread.join()
            self._reporter.sources(0)

    def _report(self, running: dict[_Key, threading.Thread]) -> None:
        """Tell the reporter how many peers send now, and by which paths they are reached."""
        peers = {peer for peer, _ in running}
        self._reporter.sources(len(peers), self._channels.paths(peers))

    def _wanted(
        self, running: dict[_Key, threading.Thread], resting: set[str], single: set[str], plan: Plan
    ) -> list[_Key]:
        """The streams to start now: first one for each ready peer without one (up to
        `max_sources` peers), then second ones while `max_streams` and the bytes left allow.
        """
        busy = set(running)
        peers = {peer for peer, _ in busy}
        # The peers asked now: those sending and the first ready ones up to the cap (no
        # further: a version may list a hundred thousand).
        room = max(0, self._max - len(peers))
        fresh = (p for p in self._ready() if p not in resting and p not in peers)
        ready = [p for p, _ in busy if p not in resting] + list(itertools.islice(fresh, room))
        wanted: list[_Key] = []
        for peer in ready:
            if peer not in peers and len(peers) < self._max:
                peers.add(peer)
                wanted.append((peer, 0))
        layer = self._part.layer
        per_peer = streams_per_peer(plan.left * (layer.piece_size if layer is not None else 0))
        busy.update(wanted)
        for peer in dict.fromkeys(ready):
            free = [n for n in range(per_peer) if (peer, n) not in busy]
            if peer in peers and peer not in single and 0 < len(free) < per_peer:
                wanted.append((peer, free[0]))
        return wanted[: max(0, self._max_streams - len(running))]

    def _alone(self, peer: str, running: dict[_Key, threading.Thread], resting: set[str]) -> bool:
        """Whether no other peer is free to ask now (none ready, or all sending already): then
        a busy `peer` is asked to queue the request, else to refuse it so that another is
        asked at once.
        """
        sending = {p for p, _ in running}
        others = (p for p in self._ready() if p != peer and p not in resting and p not in sending)
        return next(others, None) is None

    def _start(self, plan: Plan, claim: Claim, key: _Key, wait: bool) -> threading.Thread:
        thread = threading.Thread(
            target=self._stream,
            args=(plan, claim, key, wait),
            name=f"stream-{claim.peer}-{key[1]}",
            daemon=True,
        )
        thread.start()
        return thread

    def _stream(self, plan: Plan, first: Claim, key: _Key, wait: bool) -> None:
        """One stream of a peer: its claim, then more from the plan while there is any; with
        `wait`, a busy peer queues each request rather than refuse it.
        """
        peer = first.peer
        claim: Claim | None = first
        outcome: BaseException | None = None
        try:
            download = self._channels.download(peer, key[1])
            name = self._channels.shared_name(peer, self._part.name)
            while claim is not None:
                started = time.monotonic()
                try:
                    fetch_claim(download, self._part, plan, claim, self._how, name=name, wait=wait)
                finally:
                    plan.release(claim)
                logger.debug(
                    "%s: pieces %d-%d from %s in %.1f s",
                    self._part.name,
                    claim.start,
                    claim.next - 1,
                    peer,
                    time.monotonic() - started,
                )
                claim = plan.claim(peer)
        except BaseException as error:  # handed to the engine's thread
            outcome = error
        self._events.put((key, outcome))
