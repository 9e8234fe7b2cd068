"""Download a file by name: search the tracker, stream from every peer at once, verify, keep.

The bytes land in a part under `<dir>/.napshare/partial/`; a later attempt resumes from it.
When the tracker lists a pieces root, the piece layer is fetched from a peer and checked
against it first; then up to `max_sources` peers send pieces at once (peer.downloading.swarm),
and every piece is checked as it arrives: a bad piece bans the one peer that sent it (for
that file) and is fetched again from another. The pieces root is the file's identity: the
file gets its final name once every piece matched it. Its whole sha256 (an attribute, what
`sha256sum` prints) is checked before that only when asked for (`verify_sha256`, or a version
picked by its sha256) or for a file without a root; otherwise it is computed afterwards, off
the receiving path (peer.downloading.sha256_later), and the file is announced only once it is. A
source whose listed sha256 is not the sha256 of the bytes its root verified is reported and
not used again for that version. Peers that refuse, die or stall leave their pieces to the
others and are asked again later.
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
    GIVE_UP_AFTER,
    MAX_FILE_SIZE,
    MAX_SOURCES,
    MOST_SOURCES,
    SOURCES_REFRESH,
    STALL_TIMEOUT,
    STREAMS_PER_PEER,
    WAIT_FOR_PEERS,
)
from napshare.peer.downloading.failures import (
    check_size,
    clock_time,
    exhausted,
    failures_text,
    final_failure,
    gave_up,
    listed,
    no_such_version,
    nobody_reached,
    several_versions,
)
from napshare.peer.downloading.fetch import PeerChannels, Stream, fetch_in_order, fetch_layer
from napshare.peer.downloading.notes import noted_version
from napshare.peer.downloading.partfile import PartFile
from napshare.peer.downloading.reporting import Reporter, SilentReporter
from napshare.peer.downloading.sha256_later import Disagreements, finish_later
from napshare.peer.downloading.sources import Sources, add_sources, sleep
from napshare.peer.downloading.swarm import Swarm, streams_per_peer
from napshare.peer.downloading.target import Target, following
from napshare.peer.downloading.versions import matching, versions_of
from napshare.peer.errors import (
    CancelledError,
    ClientError,
    FileTooLargeError,
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
from napshare.peer.tracker_client import TrackerClient

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DownloadOptions:
    """How hard and from whom to try.

    `preferred` is a peer (`host:port`) asked first, as the original's DOWNLOAD named one.
    `sha256` and `pieces_root` (hex, "" for any) pick one version of the file when several
    are shared. `give_up_after` counts seconds without any new byte, not the whole download's
    time; each version tried gets that long. `wait_for_peers` is how long to keep searching
    when nobody shares the file yet but the tracker is gathering (it restarted moments ago and
    its peers are re-joining); 0: never. `max_sources` is how many peers send pieces at once;
    one at a time when `preferred` is set, or for a file without a pieces root. While fewer
    send, the tracker is searched again every `refresh_every` seconds for peers that joined
    since. A version listed larger than `max_file_size` bytes is refused before anything is
    allocated for it. `verify_sha256` checks the whole file's sha256 against the listed one
    before the file gets its name (a version asked for by `sha256` always is); otherwise
    every piece is checked against the pieces root, and the sha256 is computed afterwards.
    """

    preferred: str | None = None
    force: bool = False
    stall_timeout: float = STALL_TIMEOUT
    give_up_after: float = GIVE_UP_AFTER
    max_backoff: float = DOWNLOAD_BACKOFF_CAP
    wait_for_peers: float = WAIT_FOR_PEERS
    max_sources: int = MAX_SOURCES
    refresh_every: float = SOURCES_REFRESH
    sha256: str = ""
    pieces_root: str = ""
    max_file_size: int = MAX_FILE_SIZE
    verify_sha256: bool = False


@dataclass(frozen=True)
class DownloadResult:
    """A finished, verified download.

    `sha256` is the version's sha256 as the tracker listed it; `sha256_checked` says whether
    the file's bytes were hashed and found to have it (else every piece matched
    `pieces_root`, and the sha256 is computed afterwards).
    """

    name: str
    path: Path
    size: int
    sha256: str
    resumed_from: int
    bytes_received: int
    sources: tuple[str, ...]
    received_from: tuple[tuple[str, int], ...] = ()  # (peer, bytes kept) in this run, most first
    pieces_root: str = ""
    sha256_checked: bool = True


# How many failed peers of one version are told on the console (and logged as warnings) by
# name; the others only in the log's info lines, so that a tracker listing thousands of dead
# or hostile peers cannot flood the screen.
TOLD_FAILURES = 8


class _DeferredError(Exception):
    """Every source of a version failed once without a byte of it kept: try the other
    versions first, and this one again after them.
    """


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
    the reporter one call at a time; and when a byte last came from any peer.
    """

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter
        self._lock = threading.Lock()
        self._by_peer: Counter[str] = Counter()
        self.last = 0.0  # monotonic time of the last byte received (or piece kept), 0: none

    def add(self, peer: str, count: int) -> None:
        with self._lock:
            self._by_peer[peer] += count
            self._reporter.advance(count)
        self.last = time.monotonic()

    def touch(self) -> None:
        """Bytes arrived (not yet checked): the download is not stuck."""
        self.last = time.monotonic()

    def queued(self, peer: str, position: int, waiting: int, estimate: int) -> None:
        """A stream waits in `peer`'s upload queue (position 0: no longer): told to the
        reporter; a place the peer keeps telling is not a stuck download either.
        """
        with self._lock:
            self._reporter.queued(peer, position, waiting, estimate)
        if position:
            self.last = time.monotonic()

    def by_peer(self) -> tuple[tuple[str, int], ...]:
        with self._lock:
            return tuple(self._by_peer.most_common())


class Downloader:
    """Downloads files into one folder; safe to run several downloads at once from threads.

    `asker` is this peer's id when it serves too (so it never asks itself), and `on_saved`
    is called with each file kept, to announce it to the tracker, once its sha256 is known (for
    a file its pieces root verified, computed afterwards in a thread of low priority; without
    `on_saved`, the first time the folder describes the file). `rate` caps the bytes per
    second of all its downloads together (`--max-download-rate`; None: no cap).
    `disagreements` holds the sources whose listed sha256 the bytes disproved: not asked again
    for that version.
    """

    def __init__(
        self,
        folder: SharedFolder,
        tracker: TrackerClient,
        *,
        asker: Callable[[], str] = lambda: "",
        on_saved: Callable[[SharedFile], None] | None = None,
        rate: TokenBucket | None = None,
    ) -> None:
        self.folder = folder
        self.tracker = tracker
        self._asker = asker
        self._on_saved = on_saved
        self._rate = rate
        self.disagreements = Disagreements()
        self._sources = Sources(tracker, asker, self.disagreements)
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
            self.tracker,
            self._reverse_listener,
            note=reporter.note,
            counts=self.connections,
            cancel=cancel,
        )
        channels = PeerChannels(plaintext=self.tracker.plaintext, routes=routes)
        try:
            targets, options = self._targets(name, options, reporter, cancel, channels)
            job = _Job(name, options, reporter, channels, cancel, _Tally(reporter))
            return self._fetch_versions(job, targets)
        finally:
            channels.close()
            routes.close()
            reporter.end()

    def _fetch_versions(self, job: _Job, targets: list[Target]) -> DownloadResult:
        """Try the versions in order until one is kept. A version whose sources all showed
        another certificate, lied, are gone or cannot be reached is given up for the next; one
        whose sources all refused (or failed otherwise) once, before a byte of it was kept, is
        tried again after the others. A version that holds bytes is the one to resume: no other
        is tried after it (that would start the part over).
        """
        pending = list(targets)
        deferred: set[int] = set()
        failures: dict[int, ClientError] = {}  # by the version's rank
        while pending:
            target = pending.pop(0)
            rank = targets.index(target)
            try:
                return self._fetch_target(
                    job, target, may_defer=bool(pending) and rank not in deferred
                )
            except _DeferredError:
                deferred.add(rank)
                pending.append(target)
                logger.info(
                    "every source of %s with sha256 %s failed once; trying the other versions "
                    "first",
                    job.name,
                    target.sha256,
                )
                continue
            except (
                NoPeerReachableError,
                VerificationFailedError,
                PeerIdentityError,
                FileTooLargeError,
            ) as error:
                failures[rank] = error
                if target.kept or not pending:
                    break
                job.reporter.notice(
                    tr(
                        "{error}; trying another version of {name} (sha256 {sha256})",
                        error=console.localized(error),
                        name=job.name,
                        sha256=pending[0].sha256,
                    )
                )
        raise final_failure(job.name, [failures[rank] for rank in sorted(failures)])

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
    ) -> tuple[list[Target], DownloadOptions]:
        """The versions of the file on offer, in the order to try them: the one asked for
        (--sha256, --root) alone, else the one an unfinished part holds, the preferred peer's,
        then the best ranked (peer.downloading.versions); each source's certificate is pinned
        in `channels`. With them, `options`, without the preferred peer if the tracker does not
        list it over TLS (a peer that cannot be checked).
        """
        found = self._sources.search(name, options.give_up_after, cancel)
        if not found.sources and found.gathering and options.wait_for_peers > 0:
            found = self._sources.await_peers(
                name, options.give_up_after, options.wait_for_peers, reporter, cancel
            )
        sources = self._sources.credible(found.sources)
        if not sources and found.timed_out:
            raise NotFoundError(
                tr(
                    "tracker {tracker} listed no peer that shares {name} before the search's "
                    "time ran out (it kept sending pages)",
                    tracker=self.tracker.address,
                    name=name,
                )
            )
        if not sources:
            raise NotFoundError(tr("no peer shares {name}", name=name))
        ranked = versions_of(sources)
        versions = matching(ranked, options.sha256, options.pieces_root)
        if not versions:
            raise NotFoundError(no_such_version(name, options.sha256, options.pieces_root, ranked))
        for source in sources:
            if any(v.matches(source.sha256, source.pieces_root) for v in versions):
                channels.pin(source.peer, source.certificate, reachable=source.reachable)
        first = [v for v in versions if v.key == noted_version(self.folder.root, name)]
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
            first += [v for v in versions if preferred in v.peers]
        if first:
            versions.remove(first[0])
            versions.insert(0, first[0])
        if len(ranked) > 1 and not (options.sha256 or options.pieces_root):
            reporter.notice(several_versions(name, ranked, versions[0]))
        targets = []
        for version in versions:
            peers = version.peers
            random.shuffle(peers)
            if preferred is not None:
                peers = [preferred] + [p for p in peers if p != preferred]
            target = Target(version.size, version.sha256, version.pieces_root, peers)
            target.listed.update(version.peers)
            targets.append(target)
        return targets, options

    def _fetch_target(self, job: _Job, target: Target, *, may_defer: bool) -> DownloadResult:
        """Fetch one version; raise _DeferredError (if `may_defer`) when every source failed once
        before a byte of it was kept.
        """
        name, options, reporter = job.name, job.options, job.reporter
        check_size(name, target, options.max_file_size)
        found = self._sources.by_content(name, target, options.give_up_after, job.cancel)
        if found is not None:
            add_sources(name, target, found.sources, job.channels)
        job.channels.streams = self._streams(job, target, target.size)
        part = PartFile(
            self.folder.root,
            name,
            target.size,
            target.sha256,
            force=options.force,
            pieces_root=target.pieces_root,
            whole_sha256=options.verify_sha256 or bool(options.sha256),
        )
        started = time.monotonic()

        def until() -> float:
            """When this version is given up unless a byte comes first."""
            return max(started, job.tally.last) + options.give_up_after

        try:
            reporter.begin(name, target.size, part.have)
            backoff = Backoff(options.max_backoff)
            told_down = False  # the user was told that no source can be reached now
            while True:
                if part.have == target.size:
                    if part.verify():
                        break
                    self._reject(part, target)
                    reporter.restart(part.have)
                    continue
                if not target.candidates():
                    raise exhausted(name, target)
                _check_cancel(job.cancel, name)
                before = part.have
                if target.any_ready(time.monotonic()):
                    self._round(job, part, target, until)
                if part.have == target.size:
                    continue
                now = time.monotonic()
                if part.have > before:
                    backoff.reset()
                    target.failures.clear()
                    told_down = False
                    continue
                _check_cancel(job.cancel, name)
                down = target.down()
                if down and all(f.fault is PeerFault.UNREACHABLE for f in down):
                    raise nobody_reached(name, down)
                if may_defer and part.empty and target.all_failed():
                    raise _DeferredError
                if now >= until():
                    raise gave_up(name, target, options.give_up_after)
                if down and not told_down:
                    told_down = True
                    reporter.note(
                        tr(
                            "no peer with {name} can be reached now ({failures}); trying again "
                            "until {time} (--give-up-after), or until the tracker lists none",
                            name=name,
                            failures=failures_text(down),
                            time=clock_time(until()),
                        )
                    )
                # Busy peers said when to ask again; they are not asked before that.
                delay = max(backoff.next(), target.wait(now))
                delay = min(delay, max(0.0, until() - now))
                logger.info("no peer could send %s now; asking again in %.1f s", name, delay)
                sleep(delay, job.cancel, name)
                self._refresh(job, target)
            part.commit(replace=options.force)
        except VerificationFailedError:
            # Verified pieces are kept for a later run (every peer is banned now, but others
            # may come); bytes nothing can check, or a version whose pieces and sha256
            # disagree, are not.
            if part.layer is None or part.empty or part.have == part.size:
                part.remove()
            target.kept = not part.finished
            part.close()
            raise
        except BaseException:
            if part.empty:
                part.remove()  # nothing to resume
            target.kept = not part.finished
            part.close()
            raise
        part.close()
        layer = part.layer
        serialized = layer.serialized() if layer else b""
        self._saved(name, target, serialized, checked=part.whole_sha256)
        return DownloadResult(
            name,
            self.folder.root / name,
            target.size,
            target.sha256,
            part.resumed_from,
            part.have - part.resumed_from,
            tuple(part.sources),
            job.tally.by_peer(),
            target.pieces_root,
            part.whole_sha256,
        )

    def _round(self, job: _Job, part: PartFile, target: Target, until: Callable[[], float]) -> None:
        """One try of the peers that may be asked now, until the part is complete, none of
        them can send more, the download is cancelled, or no byte came before `until()`.
        """
        if part.needs_layer:
            self._layer_round(job, part, target, until)
            if part.needs_layer:
                return
        if part.layer is None:
            self._in_order(job, part, target, until)
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
            until=until,
        )
        swarm.run()

    def _layer_round(
        self, job: _Job, part: PartFile, target: Target, until: Callable[[], float]
    ) -> None:
        """Ask the ready peers in turn for the piece layer until one sends a good one (or the
        round is over: see _round).
        """
        for peer in list(target.ready(time.monotonic())):
            if _over(job, until):
                return
            if not target.usable(peer):
                continue
            try:
                self._attach_layer(job, part, peer)
            except PeerError as failure:
                self._handle(failure, target, job.reporter, following(target, peer))
                continue
            job.tally.touch()
            if part.have:
                job.reporter.restart(part.have)  # pieces an earlier run left, checked on disk
            return

    def _in_order(
        self, job: _Job, part: PartFile, target: Target, until: Callable[[], float]
    ) -> None:
        """A file without a pieces root: one stream at a time, each ready peer in turn (until
        the round is over: see _round).
        """
        how = self._stream(job)
        for peer in list(target.ready(time.monotonic())):
            if _over(job, until):
                return
            if not target.usable(peer):
                continue
            before = part.have
            job.reporter.sources(1)
            try:
                # Waiting in the peer's queue is worth it only when no other peer is to ask.
                fetch_in_order(
                    job.channels.download(peer),
                    peer,
                    part,
                    how,
                    name=job.channels.shared_name(peer, part.name),
                    wait=following(target, peer) is None,
                )
            except PeerError as failure:
                self._handle(failure, target, job.reporter, following(target, peer))
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

    def _streams(self, job: _Job, target: Target, left: int) -> int:
        """How many streams this download runs at most now, with `left` bytes to fetch: what
        the channels' windows share.
        """
        peers = len(target.candidates()) * streams_per_peer(left)
        return max(1, min(self._max_streams(job), peers))

    def _stream(self, job: _Job) -> Stream:
        return Stream(
            job.options.stall_timeout,
            job.cancel,
            self._rate,
            job.tally.add,
            on_data=job.tally.touch,
            on_queued=job.tally.queued,
        )

    def _attach_layer(self, job: _Job, part: PartFile, peer: str) -> None:
        """Get the piece layer from `peer`, check it against the root, and use it."""
        layer = fetch_layer(
            job.channels.piece_layer(peer),
            peer,
            part,
            timeout=job.options.stall_timeout,
            cancel=job.cancel,
            name=job.channels.shared_name(peer, part.name),
        )
        part.attach(layer)
        logger.info("%s: piece layer of %d pieces from %s", part.name, len(layer.hashes), peer)

    def _handle(
        self, failure: PeerError, target: Target, reporter: Reporter, following: str | None
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
                _tell(target, reporter, str(failure), on_console=True)
        elif failure.fault in (PeerFault.GONE, PeerFault.STALLED):
            target.to_back(peer)
            # Warn once per peer; a peer that stays down would fill the screen otherwise.
            if peer in target.warned:
                logger.info("%s", failure)
            else:
                target.warned.add(peer)
                if following is not None:
                    _tell(target, reporter, f"{failure}; going on with peer {following}")
                else:
                    _tell(target, reporter, str(failure))
        elif failure.fault in (PeerFault.CHANGED, PeerFault.MISSING):
            target.dropped.add(peer)
            target.to_back(peer)
            _tell(target, reporter, f"{failure}; not asking it again for this file")
        else:
            target.banned.add(peer)
            target.to_back(peer)
            if failure.fault is PeerFault.IMPOSTOR:
                target.impostors.add(peer)
            _tell(target, reporter, f"{failure}; not using it again for this file")

    def _reject(self, part: PartFile, target: Target) -> None:
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
            self.disagreements.add((target.size, target.sha256, target.pieces_root), peers)
            raise VerificationFailedError(
                tr(
                    "verification failed: every piece of {name} matches its pieces root, but "
                    "not its sha256 {sha256}: {peers} list a sha256 and a pieces root that "
                    "disagree",
                    name=part.name,
                    sha256=target.sha256,
                    peers=listed(peers),
                )
            )
        culprits = part.sources or target.candidates()
        target.banned.update(culprits)
        logger.warning(
            "%s failed sha256 verification; not using %s again for it",
            part.name,
            listed(culprits),
        )
        part.discard()

    def _more_sources(self, job: _Job, target: Target, part: PartFile) -> None:
        """Look for peers that joined since; channels opened from now on share the window
        among as many streams as there are then (those open keep theirs).
        """
        self._refresh(job, target)
        job.channels.streams = self._streams(job, target, target.size - part.have)

    def _refresh(self, job: _Job, target: Target) -> None:
        self._sources.refresh(job.name, target, job.options.give_up_after, job.cancel, job.channels)

    def _saved(self, name: str, target: Target, layer: bytes, *, checked: bool) -> None:
        """Record the file just put in place (and announce it, with `on_saved`): with its
        listed sha256 if `checked`, else with its root alone, its sha256 computed afterwards
        (finish_later) and announced only then.
        """
        sha256, pieces_root = target.sha256, target.pieces_root
        try:
            if pieces_root and not checked:
                self.folder.remember(name, Digests("", pieces_root, layer))
                if self._on_saved is not None:
                    version = (target.size, sha256, pieces_root)
                    finish_later(
                        self.folder,
                        name,
                        version,
                        sources=lambda: target.order,
                        disagreements=self.disagreements,
                        on_done=self._on_saved,
                    )
                return
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


def _check_cancel(cancel: threading.Event | None, name: str) -> None:
    if cancel is not None and cancel.is_set():
        raise CancelledError(tr("download of {name} cancelled", name=name))


def _over(job: _Job, until: Callable[[], float]) -> bool:
    """Whether a round must end now: cancelled (raises), or no byte came before `until()`."""
    _check_cancel(job.cancel, job.name)
    return time.monotonic() >= until()


def _tell(target: Target, reporter: Reporter, line: str, *, on_console: bool = False) -> None:
    """Say that a source of `target` failed: the first TOLD_FAILURES ones as warnings (and
    on the console if `on_console`), the rest only in the log's info lines, with one line
    saying so.
    """
    target.told += 1
    if target.told <= TOLD_FAILURES:
        if on_console:
            reporter.note(line)
        else:
            logger.warning("%s", line)
        return
    if target.told == TOLD_FAILURES + 1:
        reporter.notice(
            tr(
                "more sources of this version failed; not telling each of them "
                "(--log-level info lists them)"
            )
        )
    logger.info("%s", line)
