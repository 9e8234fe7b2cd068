"""The streams of one round of a download: one per peer that may be asked, up to a cap, all at
once on the pieces of one part; peer.downloading.plan decides which stream fetches what.

A stream that fails is reported (the engine decides whether its peer is asked again, later, or
never) and its pieces go to the others; a failure that is not a peer's (the disk, a cancel)
stops every stream and is raised.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from napshare.common.console import tr
from napshare.peer.defaults import SOURCES_REFRESH
from napshare.peer.downloading.fetch import PeerChannels, Stream, fetch_claim
from napshare.peer.downloading.partfile import PartFile
from napshare.peer.downloading.plan import Claim, Plan
from napshare.peer.downloading.reporting import Reporter
from napshare.peer.errors import CancelledError, PeerError, PeerFault

logger = logging.getLogger(__name__)

POLL = 0.5  # seconds between looks for peers whose wait is over, while streams run


class Swarm:
    """Runs streams from the peers `ready()` lists into `part` until it is complete or no
    peer can send more now.

    `on_failure(failure, following)` is told of each stream's PeerError (`following` is a peer
    that goes on); a peer whose stream failed is not asked again in this round, unless it
    was busy and said when to come back. While fewer than `max_sources` stream, `refresh()`
    is called every `refresh_every` seconds to find peers that joined since (a search).
    """

    def __init__(
        self,
        part: PartFile,
        channels: PeerChannels,
        how: Stream,
        reporter: Reporter,
        *,
        max_sources: int,
        ready: Callable[[], list[str]],
        on_failure: Callable[[PeerError, str], None],
        refresh: Callable[[], None] = lambda: None,
        refresh_every: float = SOURCES_REFRESH,
    ) -> None:
        self._part = part
        self._channels = channels
        self._halt = threading.Event()
        self._how = replace(how, halt=self._halt)
        self._reporter = reporter
        self._max = max(1, max_sources)
        self._ready = ready
        self._on_failure = on_failure
        self._refresh = refresh
        self._refresh_every = refresh_every
        self._events: queue.Queue[tuple[str, BaseException | None]] = queue.Queue()

    def run(self) -> None:
        """Fetch until the part is complete or every stream has ended; raises what is not a
        peer's failure (CancelledError, a FolderProblemError) after stopping every stream.
        """
        plan = Plan(self._part.verified_pieces())
        running: dict[str, threading.Thread] = {}
        resting: set[str] = set()  # failed in this round
        refreshed = time.monotonic()
        try:
            while not plan.complete:
                if self._how.cancel is not None and self._how.cancel.is_set():
                    raise CancelledError(tr("download of {name} cancelled", name=self._part.name))
                if len(running) < self._max and time.monotonic() - refreshed >= self._refresh_every:
                    self._refresh()
                    refreshed = time.monotonic()
                for peer in self._ready():
                    if len(running) >= self._max:
                        break
                    if peer in running or peer in resting:
                        continue
                    claim = plan.claim(peer)
                    if claim is not None:
                        running[peer] = self._start(plan, claim)
                self._reporter.sources(len(running))
                if not running:
                    return
                try:
                    peer, outcome = self._events.get(timeout=POLL)
                except queue.Empty:
                    continue
                running.pop(peer).join()
                self._reporter.sources(len(running))
                if isinstance(outcome, PeerError):
                    if outcome.fault is not PeerFault.REFUSED or outcome.retry_after is None:
                        resting.add(peer)
                    others = [p for p in self._ready() if p != peer and p not in resting]
                    self._on_failure(outcome, (others or [peer])[0])
                elif outcome is not None:
                    raise outcome
        finally:
            self._halt.set()
            for thread in running.values():
                thread.join()
            self._reporter.sources(0)

    def _start(self, plan: Plan, claim: Claim) -> threading.Thread:
        thread = threading.Thread(
            target=self._stream, args=(plan, claim), name=f"stream-{claim.peer}", daemon=True
        )
        thread.start()
        return thread

    def _stream(self, plan: Plan, first: Claim) -> None:
        """One peer's stream: its claim, then more from the plan while there is any."""
        peer = first.peer
        claim: Claim | None = first
        outcome: BaseException | None = None
        try:
            download = self._channels.download(peer)
            while claim is not None:
                started = time.monotonic()
                try:
                    fetch_claim(download, self._part, plan, claim, self._how)
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
        self._events.put((peer, outcome))
