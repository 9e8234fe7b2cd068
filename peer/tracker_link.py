"""Keeps a serving peer registered at the tracker: Join, Heartbeat, re-Join, Update, Leave.

Two threads: one joins and heartbeats (joining again whenever the tracker forgot this peer
or could not be reached), one rescans the folder and sends the tracker what changed (new or
changed files, and names that left the folder) through Update. When the channel to the tracker
connects again after losing it (a restart), the heartbeat goes at once rather than at the next
interval, so a restarted tracker hears NOT_FOUND's re-join within moments.
"""

import logging
import socket
import threading
from collections.abc import Callable, Iterable, Sequence

from napshare.common.address import canonical_ip
from napshare.common.console import tr
from napshare.common.identity import Identity
from napshare.common.protocol import HEARTBEAT_INTERVAL
from napshare.peer.backoff import Backoff
from napshare.peer.defaults import RESCAN_INTERVAL, TRACKER_RETRY_CAP
from napshare.peer.errors import (
    ClientError,
    LeaseLostError,
    TrackerBusyError,
    TrackerUnreachableError,
)
from napshare.peer.folder.store import FolderError, SharedFile, SharedFolder
from napshare.peer.tracker_client import Registration, TrackerClient

logger = logging.getLogger(__name__)

SUPERVISOR_PAUSE = 1.0  # seconds before a loop that failed by a bug starts again

Joined = Callable[[str, list[str]], None]


class TrackerLink:
    """This peer's registration at one tracker, kept alive in the background.

    `on_joined(peer_id, file_names)` is called after every successful Join, and
    `on_reachable(reachable)` after every Join whose reachability differs from the last one's
    (the first Join's, always), and `on_registered(registration)` after every Join. Joins
    carry `identity` when given, and the addresses `local_addresses()` returns then.
    """

    def __init__(
        self,
        tracker: TrackerClient,
        folder: SharedFolder,
        *,
        host: str,
        port: int,
        rescan_interval: float = RESCAN_INTERVAL,
        on_joined: Joined | None = None,
        identity: Identity | None = None,
        on_reachable: Callable[[bool], None] | None = None,
        on_registered: Callable[[Registration], None] | None = None,
        local_addresses: Callable[[], list[str]] = list,
    ) -> None:
        self.tracker = tracker
        self.folder = folder
        self.host = host
        self.port = port
        self.rescan_interval = rescan_interval
        self.on_joined = on_joined
        self.identity = identity
        self.on_reachable = on_reachable
        self.on_registered = on_registered
        self.local_addresses = local_addresses
        self._reachable: bool | None = None
        self.join_count = 0
        self._registration: Registration | None = None
        self._announced: dict[str, tuple[int, str]] = {}
        self._lock = threading.RLock()  # one Join/Update at a time, and the state above
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._reconnected = threading.Event()  # heartbeat (or join) now, not at the interval
        self._threads: list[threading.Thread] = []
        self._retry = Backoff(TRACKER_RETRY_CAP)  # between Joins that fail
        self._failing = False  # a failed Join was told, and none succeeded since
        self._wait_first = 0.0  # seconds the heartbeat thread waits before its first Join

    @property
    def peer_id(self) -> str:
        """This peer's id at the tracker, or "" while not registered."""
        registration = self._registration
        return registration.peer_id if registration is not None else ""

    def join(self) -> Registration:
        """Join now with every shared file (again, if already joined). Raises ClientError."""
        with self._lock:
            files = self.folder.scan()
            registration = self.tracker.join(
                announced_host(self.host),
                self.port,
                files,
                identity=self.identity,
                local_addresses=self.local_addresses(),
            )
            told = self._reachable
            self._reachable = registration.reachable
            self._registration = registration
            self._announced = {f.name: (f.size, f.sha256) for f in files}
            self.join_count += 1
            self._reconnected.clear()  # this Join is the check a reconnection asks for
        self._wake.set()  # the heartbeat thread times its next heartbeat from this Join
        logger.info(
            "joined %s as %s with %d files (heartbeat every %g s)",
            self.tracker.address,
            registration.peer_id,
            len(files),
            registration.heartbeat_interval,
        )
        if self.on_joined is not None:
            self.on_joined(registration.peer_id, [f.name for f in files])
        if self.on_reachable is not None and told is not registration.reachable:
            self.on_reachable(registration.reachable)
        if self.on_registered is not None:
            self.on_registered(registration)
        return registration

    def failed(self, error: ClientError) -> None:
        """A Join made outside the link (the first, at start) failed with `error`: say so
        once; the link's loop joins again after the delay the failure asks for.
        """
        self._wait_first = self._after_failure(error)

    def start(self) -> None:
        """Start heartbeating and rescanning (joining first, in the background, if needed)."""
        self.tracker.watch_reconnects(self._on_reconnect)
        for target, name in ((self._heartbeats, "heartbeat"), (self._rescans, "rescan")):
            thread = threading.Thread(
                target=self._supervised, args=(target,), name=f"tracker-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def announce(self, file: SharedFile) -> None:
        """Tell the tracker this peer now shares `file` (a finished download)."""
        self._update([file])

    def lost(self, registration: Registration) -> None:
        """The tracker no longer knows `registration` (its Listen stream said so): join again
        now, unless a Join replaced it already.
        """
        self._forget(registration)

    def stop(self, *, leave: bool = True) -> None:
        """Stop the threads, then Leave (best effort) so the tracker drops this peer at once."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join()
        with self._lock:
            registration, self._registration = self._registration, None
        if leave and registration is not None:
            try:
                self.tracker.leave(registration)
                logger.info("left %s", self.tracker.address)
            except ClientError as error:
                logger.warning("could not leave the tracker: %s", error)

    def _supervised(self, loop: Callable[[], None]) -> None:
        """Run `loop` until stopping; a bug in it is logged and the loop starts again."""
        while not self._stop.is_set():
            try:
                loop()
            except Exception:
                logger.exception(
                    "the tracker link's %s loop failed; starting it again", loop.__name__
                )
                self._stop.wait(SUPERVISOR_PAUSE)

    def _after_failure(self, error: ClientError | FolderError) -> float:
        """Say once that Joins fail (and how long this peer waits when the tracker is busy);
        the seconds to wait before the next Join: the backoff, or longer if the tracker asks.
        """
        delay = self._retry.next()
        if isinstance(error, TrackerBusyError):
            delay = max(delay, error.retry_after)
        if not self._failing:
            if isinstance(error, TrackerBusyError):
                logger.warning(
                    tr(
                        "{error}; joining again in {seconds:.0f} s, and as often as it asks",
                        error=error,
                        seconds=max(1.0, delay),
                    )
                )
            else:
                logger.warning(tr("{error}; will keep trying", error=error))
        self._failing = True
        return delay

    def _heartbeats(self) -> None:
        if self._wait_first:
            self._sleep(self._wait_first)
        while not self._stop.is_set():
            registration = self._registration
            if registration is None:
                try:
                    self.join()
                except (ClientError, FolderError) as error:
                    self._sleep(self._after_failure(error))
                    continue
                if self._failing:
                    logger.warning(
                        tr("tracker {tracker} is back; joined again", tracker=self.tracker.address)
                    )
                self._retry.reset()
                self._failing = False
                continue
            interval = registration.heartbeat_interval or HEARTBEAT_INTERVAL
            woken = self._sleep(interval)
            if self._stop.is_set() or self._registration is not registration:
                continue  # a Join, a lost lease: look again at what is current
            if woken and not self._reconnected.is_set():
                continue  # the wake of this thread's own Join: time the heartbeat from it
            self._reconnected.clear()
            try:
                self.tracker.heartbeat(registration)
            except LeaseLostError as error:
                # A Join meanwhile (the menu's) replaced the token this heartbeat carried.
                if self._forget(registration):
                    logger.warning("%s; joining again", error)
            except ClientError as error:
                if self._forget(registration):
                    logger.warning("heartbeat failed: %s; will join again when it answers", error)
                    self._failing = isinstance(error, TrackerUnreachableError)

    def _rescans(self) -> None:
        while not self._stop.wait(self.rescan_interval):
            try:
                files = self.folder.scan()
            except FolderError as error:
                logger.warning("%s", error)
                continue
            # One hold of the lock from comparing to announcing: a Join meanwhile (the menu's,
            # or a re-join) would replace what was announced under the comparison's feet.
            with self._lock:
                if self._registration is None:
                    continue
                names = {f.name for f in files}
                removed = [name for name in self._announced if name not in names]
                changed = [f for f in files if self._announced.get(f.name) != (f.size, f.sha256)]
                if changed or removed:
                    self._update(changed, removed)

    def _update(self, files: list[SharedFile], removed: Sequence[str] = ()) -> None:
        """Send the tracker what changed: new or changed `files`, and `removed` names."""
        with self._lock:
            registration = self._registration
            if registration is None:
                return  # the next Join lists them
            try:
                self.tracker.update(registration, files, removed)
            except LeaseLostError as error:
                logger.warning("could not update the tracker: %s; joining again", error)
                self._forget(registration)
                return
            except ClientError as error:
                # The lease still holds: the next rescan sends what was not announced again.
                logger.warning("could not update the tracker: %s", error)
                return
            for f in files:
                self._announced[f.name] = (f.size, f.sha256)
            for name in removed:
                self._announced.pop(name, None)
        logger.info("announced %s; withdrew %s", _few(f.name for f in files), _few(removed))

    def _on_reconnect(self) -> None:
        """The channel to the tracker is up again: it may have restarted and forgotten us."""
        self._reconnected.set()
        self._wake.set()

    def _forget(self, registration: Registration) -> bool:
        """Drop `registration` and wake the heartbeat thread to join again; False if not current."""
        with self._lock:
            if self._registration is not registration:
                return False
            self._registration = None
        self._wake.set()
        return True

    def _sleep(self, seconds: float) -> bool:
        """Wait `seconds`, or less when woken; True when woken or stopping."""
        woken = self._wake.wait(seconds)
        self._wake.clear()
        return woken or self._stop.is_set()


def announced_host(host: str) -> str:
    """What a Join announces for `host` (--host): "" (the address the tracker sees), an IP
    literal as it is, or the IP address a name resolves to now, since the tracker takes only
    addresses (two names of one machine would be two peers). Raises ClientError when the name
    does not resolve.
    """
    if not host or canonical_ip(host) is not None:
        return host
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as error:
        raise ClientError(
            tr("cannot resolve --host {host}: {error}", host=host, error=error.strerror or error)
        ) from None
    return str(found[0][4][0])


def _few(names: Iterable[str], shown: int = 5) -> str:
    """Up to `shown` names, and how many more, for a log line of bounded length."""
    listed = list(names)
    text = " ".join(listed[:shown]) or "nothing"
    return text if len(listed) <= shown else f"{text} and {len(listed) - shown} more"
