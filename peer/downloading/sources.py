"""Who has the file a download fetches, as the tracker says: searches by name (waiting for a
tracker that is still gathering its peers), by the bytes' sha256 (the same bytes under other
names), and again for peers that joined since; a source whose listed sha256 the bytes
disproved is not asked again for that version. The engine decides what to do with them.
"""

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable

from napshare.common.console import tr
from napshare.peer.defaults import GATHERING_POLL
from napshare.peer.downloading.fetch import PeerChannels
from napshare.peer.downloading.reporting import Reporter
from napshare.peer.downloading.sha256_later import Disagreements
from napshare.peer.downloading.target import Target
from napshare.peer.errors import CancelledError
from napshare.peer.tracker_client import Found, Source, TrackerClient

logger = logging.getLogger(__name__)


class Sources:
    """The tracker's answers about one downloader's files: `asker()` is this peer's id (left
    out of every answer), `disagreements` the sources whose sha256 the bytes disproved.
    """

    def __init__(
        self, tracker: TrackerClient, asker: Callable[[], str], disagreements: Disagreements
    ) -> None:
        self.tracker = tracker
        self._asker = asker
        self.disagreements = disagreements

    def search(self, name: str, seconds: float, cancel: threading.Event | None) -> Found:
        """The tracker's sources of `name` but this peer, paging for at most the search's time
        or `seconds`, whichever is shorter.
        """
        me = self._asker()
        found = self.tracker.lookup(name, asker=me, cancel=cancel, seconds=seconds)
        return _answered(found, me, name)

    def await_peers(
        self,
        name: str,
        seconds: float,
        patience: float,
        reporter: Reporter,
        cancel: threading.Event | None,
    ) -> Found:
        """Search again until a peer shares `name`, the tracker stops gathering, or `patience`
        seconds pass; the last answer.
        """
        reporter.notice(
            tr(
                "the tracker started moments ago and its peers may still be joining; "
                "waiting up to {seconds} s for a peer that shares {name}",
                seconds=format(patience, "g"),
                name=name,
            )
        )
        deadline = time.monotonic() + patience
        while True:
            sleep(min(GATHERING_POLL, max(0.0, deadline - time.monotonic())), cancel, name)
            found = self.search(name, seconds, cancel)
            if found.sources or not found.gathering or time.monotonic() >= deadline:
                return found

    def by_content(
        self, name: str, target: Target, seconds: float, cancel: threading.Event | None
    ) -> Found | None:
        """The tracker's sources of `target`'s bytes under any name, but this peer; None when
        the tracker could not be asked (the peers listed by name are enough to go on).
        """
        me = self._asker()
        try:
            found = self.tracker.sharing(target.sha256, asker=me, cancel=cancel, seconds=seconds)
        except Exception as error:
            logger.info("could not search the tracker for other names of %s: %s", name, error)
            return None
        return _answered(found, me, name)

    def refresh(
        self,
        name: str,
        target: Target,
        seconds: float,
        cancel: threading.Event | None,
        channels: PeerChannels,
    ) -> None:
        """Add peers that joined since the search (keeping the old list if the tracker is
        down), by name and by content; those no complete answer lists any more are unlisted.
        """
        try:
            found = self.search(name, seconds, cancel)
        except CancelledError:
            raise
        except Exception as error:
            logger.info("could not search the tracker again: %s", error)
            return
        by_content = self.by_content(name, target, seconds, cancel)
        listed = add_sources(name, target, self.credible(found.sources), channels)
        if by_content is not None:
            listed |= add_sources(name, target, self.credible(by_content.sources), channels)
        # A search cut short says nothing of the peers it did not list.
        if not found.more and by_content is not None and not by_content.more:
            target.unlisted = {p for p in target.listed if p not in listed}

    def credible(self, sources: Iterable[Source]) -> list[Source]:
        """`sources` but those whose listed sha256 the bytes disproved."""
        return [s for s in sources if not self.disproved(s)]

    def disproved(self, source: Source) -> bool:
        """Whether the bytes of `source`'s version disproved the sha256 it lists."""
        return source.peer in self.disagreements.of(
            (source.size, source.sha256, source.pieces_root)
        )


def _answered(found: Found, me: str, name: str) -> Found:
    """`found` without this peer (`me`); CancelledError if the search was stopped."""
    if found.stopped:
        raise CancelledError(tr("download of {name} cancelled", name=name))
    return dataclasses.replace(found, sources=[s for s in found.sources if s.peer != me])


def add_sources(
    name: str, target: Target, sources: Iterable[Source], channels: PeerChannels
) -> set[str]:
    """Add the peers of `sources` that offer `target`'s version, each pinned in `channels` and
    asked for the file by the name it gives it; those peers.
    """
    listed: set[str] = set()
    added = 0
    for source in sources:
        if not target.has(source) or source.peer in listed:
            continue
        listed.add(source.peer)
        if target.knows(source.peer):
            continue
        other = source.name if source.name != name else ""
        channels.pin(source.peer, source.certificate, reachable=source.reachable, name=other)
        target.add([source.peer])
        added += bool(other)
    if added:
        logger.info(
            "%d more peers share the bytes of %s (sha256 %s) under other names",
            added,
            name,
            target.sha256,
        )
    target.listed |= listed
    return listed


def sleep(delay: float, cancel: threading.Event | None, name: str) -> None:
    """Wait `delay` seconds, or raise CancelledError as soon as `cancel` is set."""
    if cancel is None:
        time.sleep(delay)
    elif cancel.wait(delay):
        raise CancelledError(tr("download of {name} cancelled", name=name))
