"""Download a file by name: search the tracker, stream from every peer at once, verify, keep.

The bytes land in a part under `<dir>/.napshare/partial/`; a later attempt resumes from it.
When the tracker lists a pieces root, the piece layer is fetched from a peer and checked
against it first; then up to `max_sources` peers send pieces at once (peer.downloading.swarm),
and every piece is checked as it arrives: a bad piece bans the one peer that sent it (for
that file) and is fetched again from another. The file gets its final name only once its
whole sha256 matches the tracker's too. Peers that refuse, die or stall leave their pieces
to the others and are asked again later.
"""

import dataclasses
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from napshare.common import console
from napshare.common.console import tr
from napshare.common.names import check_file_name
from napshare.common.ratelimit import TokenBucket
from napshare.peer.backoff import Backoff
from napshare.peer.defaults import (
    DOWNLOAD_BACKOFF_CAP,
    GATHERING_POLL,
    GIVE_UP_AFTER,
    MAX_SOURCES,
    MOST_SOURCES,
    SOURCES_REFRESH,
    STALL_TIMEOUT,
    STREAMS_PER_PEER,
    WAIT_FOR_PEERS,
)
from napshare.peer.downloading.fetch import PeerChannels, Stream, fetch_in_order, fetch_layer
from napshare.peer.downloading.partfile import PartFile
from napshare.peer.downloading.reporting import Reporter, SilentReporter
from napshare.peer.downloading.swarm import Swarm, streams_per_peer
from napshare.peer.errors import (
    CancelledError,
    NoPeerReachableError,
    NotFoundError,
    PeerError,
    PeerFault,
    PeerIdentityError,
    VerificationFailedError,
)
from napshare.peer.folder.store import Digests, SharedFile, SharedFolder
from napshare.peer.reach.paths import PathCounts
from napshare.peer.reach.reverse import ReverseListener
from napshare.peer.reach.routes import Routes
from napshare.peer.tracker_client import Found, Source, TrackerClient

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DownloadOptions:
    """How hard and from whom to try.

    `preferred` is a peer (`host:port`) asked first, as the original's DOWNLOAD named one.
    `give_up_after` counts seconds without any new byte, not the whole download's time.
    `wait_for_peers` is how long to keep searching when nobody shares the file yet but the
    tracker is gathering (it restarted moments ago and its peers are re-joining); 0: never.
    `max_sources` is how many peers send pieces at once; one at a time when `preferred` is set,
    or for a file without a pieces root. While fewer send, the tracker is searched again every
    `refresh_every` seconds for peers that joined since.
    """

    preferred: str | None = None
    force: bool = False
    stall_timeout: float = STALL_TIMEOUT
    give_up_after: float = GIVE_UP_AFTER
    max_backoff: float = DOWNLOAD_BACKOFF_CAP
    wait_for_peers: float = WAIT_FOR_PEERS
    max_sources: int = MAX_SOURCES
    refresh_every: float = SOURCES_REFRESH


@dataclass(frozen=True)
class DownloadResult:
    """A finished, verified download."""

    name: str
    path: Path
    size: int
    sha256: str
    resumed_from: int
    bytes_received: int
    sources: tuple[str, ...]
    received_from: tuple[tuple[str, int], ...] = ()  # (peer, bytes kept) in this run, most first


class _Target:
    """One version (size, sha256, pieces root) of the file and the peers that have it, in
    asking order.
    """

    def __init__(self, size: int, sha256: str, pieces_root: str, peers: list[str]) -> None:
        self.size = size
        self.sha256 = sha256
        self.pieces_root = pieces_root
        self.order = peers
        self.banned: set[str] = set()  # their bytes failed verification, or they broke rules
        self.impostors: set[str] = set()  # banned: another certificate than the tracker lists
        self.dropped: set[str] = set()  # they do not have this version
        self.warned: set[str] = set()  # the user was told they failed
        self.not_before: dict[str, float] = {}  # busy peers: monotonic time to ask them again
        self.failures: dict[str, PeerError] = {}  # each peer's last failure since it sent
        self.listed: set[str] = set()  # the tracker listed them with this version
        self.unlisted: set[str] = set()  # listed once, not any more: they left or expired

    def candidates(self) -> list[str]:
        return [
            p
            for p in self.order
            if p not in self.banned and p not in self.dropped and p not in self.unlisted
        ]

    def down(self) -> list[PeerError]:
        """The failures of the candidates, if no connection to any of them could be made
        since they last sent (else []): nobody can be reached now.
        """
        failures = [self.failures.get(p) for p in self.candidates()]
        if not failures or any(f is None or f.reached for f in failures):
            return []
        return [f for f in failures if f is not None]

    def ready(self, now: float) -> list[str]:
        """The candidates that may be asked at `now` (busy ones only once their wait is over)."""
        return [p for p in self.candidates() if self.not_before.get(p, now) <= now]

    def wait(self, now: float) -> float:
        """Seconds from `now` until some candidate may be asked; 0 if one may be now."""
        waits = [self.not_before.get(p, now) - now for p in self.candidates()]
        return max(0.0, min(waits, default=0.0))

    def to_back(self, peer: str) -> None:
        self.order.remove(peer)
        self.order.append(peer)

    def add(self, peers: list[str]) -> None:
        self.order.extend(p for p in peers if p not in self.order)

    def has(self, source: Source) -> bool:
        """Whether `source` offers this version."""
        return (source.size, source.sha256, source.pieces_root) == (
            self.size,
            self.sha256,
            self.pieces_root,
        )


@dataclass(frozen=True)
class _Job:
    """One call of Downloader.download: what it was asked, and its channels."""

    name: str
    options: DownloadOptions
    reporter: Reporter
    channels: PeerChannels
    cancel: threading.Event | None
    tally: "_Tally"


class _Tally:
    """Counts the bytes kept from each peer, from every stream's thread, and passes them on to
    the reporter one call at a time.
    """

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter
        self._lock = threading.Lock()
        self._by_peer: Counter[str] = Counter()

    def add(self, peer: str, count: int) -> None:
        with self._lock:
            self._by_peer[peer] += count
            self._reporter.advance(count)

    def by_peer(self) -> tuple[tuple[str, int], ...]:
        with self._lock:
            return tuple(self._by_peer.most_common())


class Downloader:
    """Downloads files into one folder; safe to run several downloads at once from threads.

    `asker` is this peer's id when it serves too (so it never asks itself), and `on_saved`
    is called with each file kept, to announce it to the tracker. `limit` caps the bytes per
    second of all its downloads together (`--max-download-rate`; None: no cap).
    """

    def __init__(
        self,
        folder: SharedFolder,
        tracker: TrackerClient,
        *,
        asker: Callable[[], str] = lambda: "",
        on_saved: Callable[[SharedFile], None] | None = None,
        limit: TokenBucket | None = None,
    ) -> None:
        self.folder = folder
        self.tracker = tracker
        self._asker = asker
        self._on_saved = on_saved
        self._limit = limit
        self.connections = PathCounts()  # connections to peers opened, by path
        self.reverse_host = ""  # where reverse connections are listened for ("": everywhere)
        self._reverse: ReverseListener | None = None
        self._reverse_lock = threading.Lock()

    def download(
        self,
        name: str,
        options: DownloadOptions | None = None,
        reporter: Reporter | None = None,
        cancel: threading.Event | None = None,
    ) -> DownloadResult:
        """Fetch `name` into the folder and return what was kept.

        Raises a napshare.peer.errors.ClientError subclass (or InvalidNameError) on failure.
        """
        check_file_name(name)
        options = options or DownloadOptions()
        reporter = reporter or SilentReporter()
        routes = Routes(
            self.tracker, self._reverse_listener, note=reporter.note, counts=self.connections
        )
        channels = PeerChannels(plaintext=self.tracker.plaintext, routes=routes)
        try:
            targets, options = self._targets(name, options, reporter, cancel, channels)
            job = _Job(name, options, reporter, channels, cancel, _Tally(reporter))
            for index, target in enumerate(targets):
                try:
                    return self._fetch_target(job, target)
                except (NoPeerReachableError, VerificationFailedError) as error:
                    if index == len(targets) - 1:
                        raise
                    logger.warning("%s; trying another version of the file", error)
            raise AssertionError("a download ended without a target")  # targets is not empty
        finally:
            channels.close()
            routes.close()
            reporter.end()

    def close(self) -> None:
        """Stop listening for reverse connections (if any download needed them)."""
        with self._reverse_lock:
            reverse, self._reverse = self._reverse, None
        if reverse is not None:
            reverse.close()

    def _reverse_listener(self) -> ReverseListener:
        """The listener for this downloader's reverse connections, made when first needed."""
        with self._reverse_lock:
            if self._reverse is None:
                self._reverse = ReverseListener(self.reverse_host)
            return self._reverse

    def _targets(
        self,
        name: str,
        options: DownloadOptions,
        reporter: Reporter,
        cancel: threading.Event | None,
        channels: PeerChannels,
    ) -> tuple[list[_Target], DownloadOptions]:
        """The versions of the file on offer, the most widely shared (or the preferred) first;
        each source's certificate is pinned in `channels`. With them, `options`, without the
        preferred peer if the tracker does not list it over TLS (a peer that cannot be checked).
        """
        found = self._search(name)
        if not found.sources and found.gathering and options.wait_for_peers > 0:
            found = self._await_peers(name, options.wait_for_peers, reporter, cancel)
        sources = found.sources
        for source in sources:
            channels.pin(source.peer, source.certificate, reachable=source.reachable)
        if not sources:
            raise NotFoundError(tr("no peer shares {name}", name=name))
        counts = Counter((s.size, s.sha256, s.pieces_root) for s in sources)
        ranked = sorted(counts, key=lambda key: -counts[key])
        preferred = options.preferred
        unlisted = preferred is not None and all(s.peer != preferred for s in sources)
        if unlisted and not channels.plaintext:
            # Over TLS only the tracker's list says which certificate a peer must show; in
            # plain text a peer the user names is asked as in the original's DOWNLOAD.
            reporter.notice(
                tr(
                    "the tracker does not list peer {peer} as sharing {name} (it never joined, "
                    "or shares no file of that name), so nothing says which certificate it "
                    "must show; downloading from the peers it lists",
                    peer=preferred,
                    name=name,
                )
            )
            options = dataclasses.replace(options, preferred=None)
            preferred = None
        if preferred is not None:
            chosen = [(s.size, s.sha256, s.pieces_root) for s in sources if s.peer == preferred]
            if chosen:
                ranked.remove(chosen[0])
                ranked.insert(0, chosen[0])
        targets = []
        for size, sha256, pieces_root in ranked:
            target = _Target(size, sha256, pieces_root, [])
            peers = [s.peer for s in sources if target.has(s)]
            target.listed.update(peers)
            random.shuffle(peers)
            if preferred is not None:
                peers = [preferred] + [p for p in peers if p != preferred]
            target.add(peers)
            targets.append(target)
        return targets, options

    def _await_peers(
        self, name: str, patience: float, reporter: Reporter, cancel: threading.Event | None
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
            _sleep(min(GATHERING_POLL, max(0.0, deadline - time.monotonic())), cancel, name)
            found = self._search(name)
            if found.sources or not found.gathering or time.monotonic() >= deadline:
                return found

    def _search(self, name: str) -> Found:
        me = self._asker()
        found = self.tracker.lookup(name, asker=me)
        return dataclasses.replace(found, sources=[s for s in found.sources if s.peer != me])

    def _fetch_target(self, job: _Job, target: _Target) -> DownloadResult:
        name, options, reporter = job.name, job.options, job.reporter
        job.channels.streams = self._streams(job, target, target.size)
        part = PartFile(
            self.folder.root,
            name,
            target.size,
            target.sha256,
            force=options.force,
            pieces_root=target.pieces_root,
        )
        try:
            reporter.begin(name, target.size, part.have)
            backoff = Backoff(options.max_backoff)
            last_progress = time.monotonic()
            told_down = False  # the user was told that no source can be reached now
            while True:
                if part.have == target.size:
                    if part.verify():
                        break
                    self._reject(part, target)
                    reporter.restart(part.have)
                    continue
                candidates = target.candidates()
                if not candidates:
                    raise _exhausted(name, target)
                before = part.have
                ready = target.ready(time.monotonic())
                if ready:
                    self._round(job, part, target, ready)
                if part.have == target.size:
                    continue
                now = time.monotonic()
                if part.have > before:
                    last_progress = now
                    backoff.reset()
                    target.failures.clear()
                    told_down = False
                    continue
                down = target.down()
                if down and all(f.fault is PeerFault.UNREACHABLE for f in down):
                    raise _nobody_reached(name, down)
                if now - last_progress >= options.give_up_after:
                    raise _gave_up(name, target, options.give_up_after)
                if down and not told_down:
                    told_down = True
                    until = last_progress + options.give_up_after
                    reporter.note(
                        tr(
                            "no peer with {name} can be reached now ({failures}); trying again "
                            "until {time} (--give-up-after), or until the tracker lists none",
                            name=name,
                            failures=_failures_text(down),
                            time=_clock_time(until),
                        )
                    )
                # Busy peers said when to ask again; they are not asked before that.
                delay = max(backoff.next(), target.wait(now))
                delay = min(delay, max(0.0, last_progress + options.give_up_after - now))
                logger.info("no peer could send %s now; asking again in %.1f s", name, delay)
                _sleep(delay, job.cancel, name)
                self._refresh(name, target, job.channels)
            part.commit(replace=options.force)
        except VerificationFailedError:
            # Verified pieces are kept for a later run (every peer is banned now, but others
            # may come); bytes nothing can check, or a version whose pieces and sha256
            # disagree, are not.
            if part.layer is None or part.empty or part.have == part.size:
                part.remove()
            part.close()
            raise
        except BaseException:
            if part.empty:
                part.remove()  # nothing to resume
            part.close()
            raise
        part.close()
        layer = part.layer
        self._saved(name, target.sha256, target.pieces_root, layer.serialized() if layer else b"")
        return DownloadResult(
            name,
            self.folder.root / name,
            target.size,
            target.sha256,
            part.resumed_from,
            part.have - part.resumed_from,
            tuple(part.sources),
            job.tally.by_peer(),
        )

    def _round(self, job: _Job, part: PartFile, target: _Target, ready: list[str]) -> None:
        """One try of the peers that may be asked now, until the part is complete or none of
        them can send more.
        """
        if part.needs_layer:
            ready = self._layer_round(job, part, target, ready)
            if part.needs_layer:
                return
        if part.layer is None:
            self._in_order(job, part, target, ready)
            return
        job.channels.streams = self._streams(job, target, target.size - part.have)
        swarm = Swarm(
            part,
            job.channels,
            self._stream(job),
            job.reporter,
            max_sources=self._max_sources(job),
            max_streams=self._max_streams(job),
            ready=lambda: target.ready(time.monotonic()),
            on_failure=lambda failure, following: self._handle(
                failure, target, job.reporter, following
            ),
            refresh=lambda: self._more_sources(job, target, part),
            refresh_every=job.options.refresh_every,
        )
        swarm.run()

    def _layer_round(
        self, job: _Job, part: PartFile, target: _Target, ready: list[str]
    ) -> list[str]:
        """Ask the peers in turn for the piece layer until one sends a good one; the peers
        left to ask for pieces.
        """
        for index, peer in enumerate(ready):
            try:
                self._attach_layer(job, part, peer)
            except PeerError as failure:
                self._handle(failure, target, job.reporter, _next_of(ready, index))
                continue
            if part.have:
                job.reporter.restart(part.have)  # pieces an earlier run left, checked on disk
            return [p for p in ready if p in target.candidates()]
        return []

    def _in_order(self, job: _Job, part: PartFile, target: _Target, ready: list[str]) -> None:
        """A file without a pieces root: one stream at a time, each peer in turn."""
        how = self._stream(job)
        for index, peer in enumerate(ready):
            before = part.have
            job.reporter.sources(1)
            try:
                fetch_in_order(job.channels.download(peer), peer, part, how)
            except PeerError as failure:
                self._handle(failure, target, job.reporter, _next_of(ready, index))
            finally:
                job.reporter.sources(0)
                if part.have < before:
                    job.reporter.restart(part.have)
            if part.have == target.size:
                return

    @staticmethod
    def _max_sources(job: _Job) -> int:
        """How many peers may send at once: a peer the user named sends alone (the others only
        step in when it fails).
        """
        if job.options.preferred:
            return 1
        return max(1, min(job.options.max_sources, MOST_SOURCES))

    def _max_streams(self, job: _Job) -> int:
        """How many streams may run at once: one per peer, and a peer's second ones while
        fewer peers than that send (one peer named with --from may send on two).
        """
        return max(self._max_sources(job), STREAMS_PER_PEER)

    def _streams(self, job: _Job, target: _Target, left: int) -> int:
        """How many streams this download runs at most now, with `left` bytes to fetch: what
        the channels' windows share.
        """
        peers = len(target.candidates()) * streams_per_peer(left)
        return max(1, min(self._max_streams(job), peers))

    def _stream(self, job: _Job) -> Stream:
        return Stream(job.options.stall_timeout, job.cancel, self._limit, job.tally.add)

    def _attach_layer(self, job: _Job, part: PartFile, peer: str) -> None:
        """Get the piece layer from `peer`, check it against the root, and use it."""
        layer = fetch_layer(
            job.channels.piece_layer(peer), peer, part, timeout=job.options.stall_timeout
        )
        part.attach(layer)
        logger.info("%s: piece layer of %d pieces from %s", part.name, len(layer.hashes), peer)

    def _handle(
        self, failure: PeerError, target: _Target, reporter: Reporter, following: str | None
    ) -> None:
        """What the failure of `peer` means for this download; `following` is another peer
        that goes on (None when there is none).
        """
        peer = failure.peer
        target.failures[peer] = failure
        if failure.fault is PeerFault.REFUSED:
            target.to_back(peer)
            if failure.retry_after is not None:
                target.not_before[peer] = time.monotonic() + failure.retry_after
                logger.info("peer %s is busy; asking it again in %.1f s", peer, failure.retry_after)
            if following is not None:
                line = console.render(
                    console.REFUSED_TRYING_NEXT, {"peer": peer, "next": following}
                )
            elif failure.retry_after is not None:
                line = tr(
                    "peer {peer} refused the download (busy); no other peer has it, so asking "
                    "it again in {seconds} s",
                    peer=peer,
                    seconds=format(failure.retry_after, ".0f"),
                )
            else:
                line = tr(
                    "peer {peer} refused the download (busy); no other peer has it, so asking "
                    "it again shortly",
                    peer=peer,
                )
            reporter.note(line)
        elif failure.fault is PeerFault.UNREACHABLE:
            target.to_back(peer)
            if peer not in target.warned:  # once per peer: the path is chosen again later
                target.warned.add(peer)
                reporter.note(str(failure))
        elif failure.fault in (PeerFault.GONE, PeerFault.STALLED):
            target.to_back(peer)
            # Warn once per peer; a peer that stays down would fill the screen otherwise.
            level = logging.INFO if peer in target.warned else logging.WARNING
            target.warned.add(peer)
            if following is not None:
                logger.log(level, "%s; going on with peer %s", failure, following)
            else:
                logger.log(level, "%s", failure)
        elif failure.fault in (PeerFault.CHANGED, PeerFault.MISSING):
            target.dropped.add(peer)
            logger.warning("%s; not asking it again for this file", failure)
        else:
            target.banned.add(peer)
            if failure.fault is PeerFault.IMPOSTOR:
                target.impostors.add(peer)
            logger.warning("%s; not using it again for this file", failure)

    def _reject(self, part: PartFile, target: _Target) -> None:
        """The complete part fails verification: with pieces, check them again on disk and
        fetch the bad ones again (every piece was good when it arrived, so no peer is to
        blame); if every piece is still good, the peers list a sha256 and a pieces root that
        disagree, and this version cannot be had. Without pieces, ban whoever sent its bytes
        and start over.
        """
        if part.layer is not None:
            bad = part.recheck_pieces()
            if bad:
                logger.warning(
                    "%s: %d pieces on disk no longer match their hashes (the disk, or the part "
                    "was changed); fetching them again",
                    part.name,
                    bad,
                )
                return
            peers = target.candidates()
            target.banned.update(peers)
            raise VerificationFailedError(
                tr(
                    "verification failed: every piece of {name} matches its pieces root, but "
                    "not its sha256 {sha256}: {peers} list a sha256 and a pieces root that "
                    "disagree",
                    name=part.name,
                    sha256=target.sha256,
                    peers=" ".join(sorted(peers)),
                )
            )
        culprits = part.sources or target.candidates()
        target.banned.update(culprits)
        logger.warning(
            "%s failed sha256 verification; not using %s again for it",
            part.name,
            " ".join(culprits),
        )
        part.discard()

    def _more_sources(self, job: _Job, target: _Target, part: PartFile) -> None:
        """Look for peers that joined since; channels opened from now on share the window
        among as many streams as there are then (those open keep theirs).
        """
        self._refresh(job.name, target, job.channels)
        job.channels.streams = self._streams(job, target, target.size - part.have)

    def _refresh(self, name: str, target: _Target, channels: PeerChannels) -> None:
        """Add peers that joined since the search (keeping the old list if the tracker is down)."""
        try:
            sources = self._search(name).sources
        except Exception as error:
            logger.info("could not search the tracker again: %s", error)
            return
        same = [s for s in sources if target.has(s)]
        for source in same:
            if source.peer not in target.order:
                channels.pin(source.peer, source.certificate, reachable=source.reachable)
        listed = {s.peer for s in same}
        target.unlisted = {p for p in target.listed if p not in listed}
        target.listed |= listed
        target.add([s.peer for s in same])

    def _saved(self, name: str, sha256: str, pieces_root: str, layer: bytes) -> None:
        try:
            if pieces_root or sha256 == _EMPTY_SHA256:
                shared = self.folder.remember(name, Digests(sha256, pieces_root, layer))
            else:
                shared = self.folder.get(name)  # a peer without roots: compute ours
        except Exception as error:
            logger.warning("could not record the sha256 of %s: %s", name, error)
            return
        if self._on_saved is not None:
            self._on_saved(shared)


_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _exhausted(name: str, target: _Target) -> Exception:
    if target.unlisted:
        return NoPeerReachableError(
            tr(
                "nobody could be reached for {name}: the tracker no longer lists any peer that "
                "has it ({failures})",
                name=name,
                failures=_failures_text(
                    [target.failures[p] for p in sorted(target.unlisted) if p in target.failures]
                )
                or " ".join(sorted(target.unlisted)),
            )
        )
    if target.impostors and target.impostors == target.banned:
        return PeerIdentityError(
            tr(
                "refused to download {name}: {peers} showed another certificate than the one "
                "the tracker lists (someone may be in the middle); nothing was kept",
                name=name,
                peers=" ".join(sorted(target.impostors)),
            )
        )
    if target.banned:
        return VerificationFailedError(
            tr(
                "verification failed: the bytes of {name} from {peers} "
                "do not match its sha256 {sha256}",
                name=name,
                peers=" ".join(sorted(target.banned)),
                sha256=target.sha256,
            )
        )
    return NoPeerReachableError(
        tr(
            "no peer has {name} with sha256 {sha256} any more ({peers})",
            name=name,
            sha256=target.sha256,
            peers=" ".join(sorted(target.dropped)),
        )
    )


def _next_of(peers: list[str], index: int) -> str | None:
    """The peer after `peers[index]` (wrapping around), or None when it is the only one."""
    others = peers[index + 1 :] + peers[:index]
    return next((p for p in others if p != peers[index]), None)


def _failures_text(failures: list[PeerError]) -> str:
    """`peer A: why; peer B: why`, for a line about peers nobody could reach."""
    return "; ".join(f"{f.peer}: {f.detail}" for f in failures)


def _clock_time(monotonic: float) -> str:
    """The wall-clock time (HH:MM:SS) when time.monotonic() will be `monotonic`."""
    return time.strftime("%H:%M:%S", time.localtime(time.time() + monotonic - time.monotonic()))


def _nobody_reached(name: str, failures: list[PeerError]) -> NoPeerReachableError:
    return NoPeerReachableError(
        tr(
            "nobody could be reached for {name}: {failures}",
            name=name,
            failures=_failures_text(failures),
        )
    )


def _gave_up(name: str, target: _Target, seconds: float) -> NoPeerReachableError:
    down = target.down()
    if down:
        return NoPeerReachableError(
            tr(
                "gave up on {name}: nobody could be reached for {seconds} s ({failures})",
                name=name,
                seconds=format(seconds, "g"),
                failures=_failures_text(down),
            )
        )
    return NoPeerReachableError(
        tr(
            "gave up on {name}: no peer sent a good piece for {seconds} s ({peers})",
            name=name,
            seconds=format(seconds, "g"),
            peers=", ".join(target.candidates()),
        )
    )


def _sleep(delay: float, cancel: threading.Event | None, name: str) -> None:
    if cancel is None:
        time.sleep(delay)
    elif cancel.wait(delay):
        raise CancelledError(tr("download of {name} cancelled", name=name))
