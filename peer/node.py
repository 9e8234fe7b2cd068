"""A running peer: serves its folder, stays joined to the tracker, downloads in the background."""

import dataclasses
import ipaddress
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from grpc_health.v1.health import HealthServicer
from napshare.common import console
from napshare.common.console import tr
from napshare.common.metrics import Metrics
from napshare.common.names import InvalidNameError, check_folder
from napshare.common.ratelimit import TokenBucket
from napshare.common.serving import stop_gracefully
from napshare.peer.defaults import (
    DEFAULT_CHUNK_SIZE,
    DIALBACK_RATE,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_ADDRESS,
    MAX_DIALBACKS,
    MAX_QUEUED,
    MAX_UPLOADS,
    MIN_UPLOAD_RATE,
    QUEUED_PER_ADDRESS,
    RESCAN_INTERVAL,
    UPLOAD_GRACE,
    UPLOAD_RATE_WINDOW,
    UPLOAD_SLOT_HOLD,
    UPLOAD_STALL_TIMEOUT,
    UPLOADS_PER_ADDRESS,
)
from napshare.peer.downloading.engine import Downloader, DownloadOptions, DownloadResult
from napshare.peer.downloading.folder_job import FolderPlan, download_folder, plan_folder
from napshare.peer.downloading.reporting import StatusReporter
from napshare.peer.errors import ClientError, TrackerBusyError, TrackerUnreachableError
from napshare.peer.folder.store import SharedFolder
from napshare.peer.reach.addresses import local_addresses
from napshare.peer.reach.listener import ReachListener
from napshare.peer.reach.paths import Path, PathCounts
from napshare.peer.serving.callers import Callers
from napshare.peer.serving.server import create_server
from napshare.peer.serving.slots import Fairness, QueueLimits
from napshare.peer.tracker_client import TrackerClient
from napshare.peer.tracker_link import TrackerLink
from napshare.peer.transport import PLAINTEXT, Transport, peer_identity

logger = logging.getLogger(__name__)


DEFAULT_FAIRNESS = Fairness(
    per_address=UPLOADS_PER_ADDRESS,
    min_rate=MIN_UPLOAD_RATE * 1024,
    window=UPLOAD_RATE_WINDOW,
    grace=UPLOAD_GRACE,
)
DEFAULT_QUEUE = QueueLimits(most=MAX_QUEUED, per_address=QUEUED_PER_ADDRESS)


@dataclass(frozen=True)
class NodeConfig:
    """What `napshare-peer serve` is told."""

    folder: SharedFolder
    folder_label: str  # the folder as the user named it, for the console lines
    tracker: str
    host: str = ""  # the address announced; "" lets the tracker use the one it sees
    port: int = 0
    bind: str = ""  # the address listened on; "" means `host` if loopback, else all
    max_uploads: int = MAX_UPLOADS
    upload_stall_timeout: float = UPLOAD_STALL_TIMEOUT
    fairness: Fairness = DEFAULT_FAIRNESS
    queue: QueueLimits = DEFAULT_QUEUE
    upload_slot_hold: float = UPLOAD_SLOT_HOLD
    chunk_size: int = DEFAULT_CHUNK_SIZE
    rescan_interval: float = RESCAN_INTERVAL
    download: DownloadOptions = field(default_factory=DownloadOptions)
    # Bytes per second for all uploads together, and for all background downloads; 0: no cap.
    max_upload_rate: float = 0
    max_download_rate: float = 0
    transport: Transport = PLAINTEXT
    max_dialbacks: int = MAX_DIALBACKS  # behind a NAT: connections dialled out at once
    dialback_rate: float = DIALBACK_RATE  # ... and started per second
    # Where peers behind the same NAT reach this one (`ip:port`); None: this host's address
    # on the way to the tracker (or the bound one), found at each Join.
    local_addresses: tuple[str, ...] | None = None
    max_connections: int = MAX_CONNECTIONS  # held by the server at once
    max_connections_per_address: int = MAX_CONNECTIONS_PER_ADDRESS


@dataclass
class BackgroundDownload:
    """A download running in its own thread, as the menu starts them."""

    name: str
    reporter: StatusReporter
    cancel: threading.Event
    thread: threading.Thread
    result: DownloadResult | None = None
    error: str | None = None
    failure: Exception | None = None  # what `error` says, for the menu to act on
    # A folder's download (`name` is the folder, `reporter` tells of its current file): what
    # it found to do once listed, and its files downloaded so far, in order.
    plan: FolderPlan | None = None
    fetched: list[DownloadResult] = field(default_factory=list)
    folder: bool = False

    @property
    def running(self) -> bool:
        """True until the download ended, either way."""
        return self.thread.is_alive()


class Node:
    """Server, tracker link and downloader of one peer, started and stopped together."""

    def __init__(
        self,
        config: NodeConfig,
        on_joined: Callable[[str, list[str]], None],
        metrics: Metrics | None = None,
        on_reachable: Callable[[bool], None] | None = None,
    ) -> None:
        """With `metrics` (serving.server.peer_metrics()), uploads and downloads count there.

        The peer's identity is kept in its folder's `.napshare/identity/` (made on the first
        start); it serves TLS with it unless the transport is plain text. Raises
        IdentityFilesError when the identity files are there but unusable.
        """
        self.config = config
        self.identity = peer_identity(config.folder.root)
        self.tracker = TrackerClient(config.tracker, transport=config.transport)
        self.health = HealthServicer()
        self.callers = Callers()
        bound = listen_address(config.host, config.bind)
        self.server: grpc.Server
        self.server, self.port = create_server(
            config.folder,
            host=bound,
            port=config.port,
            max_uploads=config.max_uploads,
            chunk_size=config.chunk_size,
            stall_timeout=config.upload_stall_timeout,
            fairness=config.fairness,
            queue=config.queue,
            slot_hold=config.upload_slot_hold,
            max_upload_rate=config.max_upload_rate,
            health=self.health,
            metrics=metrics,
            tls=None if config.transport.plaintext else self.identity,
            callers=self.callers,
            max_connections=config.max_connections,
            max_connections_per_address=config.max_connections_per_address,
            own_host=own_server_host(bound),
        )
        self.dialled = PathCounts()  # connections dialled out and spliced in, by path
        self.reach = ReachListener(
            self.tracker,
            (own_server_host(bound), self.port),
            self.callers,
            max_dialbacks=config.max_dialbacks,
            dialback_rate=config.dialback_rate,
            on_lost=lambda registration: self.link.lost(registration),  # noqa: PLW0108 - made below
            on_dialled=self.dialled.add,
        )
        self.link = TrackerLink(
            self.tracker,
            config.folder,
            host=config.host,
            port=self.port,
            rescan_interval=config.rescan_interval,
            on_joined=on_joined,
            identity=self.identity,
            on_reachable=on_reachable,
            on_registered=self.reach.registered,
            local_addresses=lambda: self._local_addresses(bound),
        )
        self.downloader = Downloader(
            config.folder,
            self.tracker,
            asker=lambda: self.link.peer_id,
            on_saved=self.link.announce,
            rate=TokenBucket(config.max_download_rate),
        )
        self.downloads: list[BackgroundDownload] = []
        self._received = _ByteCount()
        if metrics is not None:
            metrics.labelled_reading(
                "counter",
                "connections",
                "Connections this peer's downloads opened to other peers, by path (direct, "
                "local, reverse, relay).",
                "path",
                self.downloader.connections.snapshot,
            )
            metrics.labelled_reading(
                "counter",
                "dialbacks",
                "Connections this peer dialled out and served for downloaders that cannot "
                "reach it, by path (reverse, relay).",
                "path",
                lambda: {
                    path: count
                    for path, count in self.dialled.snapshot().items()
                    if path in (Path.REVERSE.value, Path.RELAY.value)
                },
            )
            metrics.reading(
                "gauge",
                "listening",
                "1 while this peer holds its Listen stream at the tracker (it is not reachable "
                "directly), else 0.",
                lambda: float(self.reach.listening),
            )
            metrics.reading(
                "counter",
                "received_bytes",
                "File bytes received by background downloads.",
                lambda: self._received.total,
            )
            metrics.reading(
                "gauge",
                "downloads_active",
                "Background downloads running now.",
                lambda: sum(job.running for job in self.downloads),
            )

    def _local_addresses(self, bound: str) -> list[str]:
        if self.config.local_addresses is not None:
            return list(self.config.local_addresses)
        return local_addresses(self.config.tracker, self.port, bound)

    def start(self) -> None:
        """Join (or keep trying in the background when the tracker is down), then heartbeat;
        while the tracker cannot reach this peer, hold a Listen stream to be dialled through.
        """
        self.reach.start()
        try:
            self.link.join()
        except (TrackerUnreachableError, TrackerBusyError) as error:
            self.link.failed(error)  # said once; the link joins again when it may
        self.link.start()

    def download_in_background(
        self,
        name: str,
        preferred: str | None,
        done: Callable[[BackgroundDownload], None],
        on_note: Callable[[str], None] | None = None,
        *,
        force: bool = False,
    ) -> BackgroundDownload:
        """Start downloading `name` in a thread; `done` is called with it when it ends.

        `on_note` shows the download's console lines (stdout when None); `force` replaces a
        file of that name already in the folder.
        """
        options = dataclasses.replace(self.config.download, preferred=preferred, force=force)
        reporter = _CountingReporter(on_note or console.show, self._received)
        cancel = threading.Event()

        def run() -> None:
            try:
                job.result = self.downloader.download(name, options, reporter, cancel)
            except (ClientError, InvalidNameError) as error:
                job.error = console.localized(error)
                job.failure = error
            except Exception as error:
                logger.debug("download of %s hit an internal error", name, exc_info=True)
                job.error = tr(
                    "internal error: {kind}: {error}", kind=type(error).__name__, error=error
                )
            done(job)

        thread = threading.Thread(target=run, name=f"download-{name}", daemon=True)
        job = BackgroundDownload(name, reporter, cancel, thread)
        self.downloads.append(job)
        thread.start()
        return job

    def download_folder_in_background(
        self,
        peer: str,
        folder: str,
        done: Callable[[BackgroundDownload], None],
        on_note: Callable[[str], None] | None = None,
        *,
        on_file: Callable[[DownloadResult], None] | None = None,
        force: bool = False,
    ) -> BackgroundDownload:
        """Start downloading every file under `folder` of `peer` in a thread, one file after
        another (peer.downloading.folder_job); `on_file` is called with each file once it is
        in place, `done` with the job when it ends. `on_note` shows the lines of each file's
        download (stdout when None); `force` replaces files of the folder that this peer's
        folder holds with other contents.
        """
        options = dataclasses.replace(self.config.download, force=force)
        reporter = _CountingReporter(on_note or console.show, self._received)
        cancel = threading.Event()

        def run() -> None:
            try:
                job.plan = plan_folder(self.downloader, peer, folder, force=force)
                for result in download_folder(
                    self.downloader, job.plan, options, lambda _at, _file: reporter, cancel
                ):
                    job.fetched.append(result)
                    if on_file is not None:
                        on_file(result)
            except (ClientError, InvalidNameError) as error:
                job.error = console.localized(error)
                job.failure = error
            except Exception as error:
                logger.debug("download of folder %s hit an internal error", folder, exc_info=True)
                job.error = tr(
                    "internal error: {kind}: {error}", kind=type(error).__name__, error=error
                )
            done(job)

        name = check_folder(folder) or "/"
        thread = threading.Thread(target=run, name=f"download-{name}", daemon=True)
        job = BackgroundDownload(name, reporter, cancel, thread, folder=True)
        self.downloads.append(job)
        thread.start()
        return job

    def stop(self) -> None:
        """Cancel downloads (their .part stays), Leave, health NOT_SERVING, stop gracefully."""
        for job in self.downloads:
            job.cancel.set()
        for job in self.downloads:
            job.thread.join()
        self.downloader.close()
        self.link.stop(leave=True)
        stop_gracefully(self.server, self.health)  # spliced connections finish too
        self.reach.stop()
        self.tracker.close()


class _ByteCount:
    """A total that many download threads add to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0

    def add(self, count: int) -> None:
        with self._lock:
            self.total += count


class _CountingReporter(StatusReporter):
    """A StatusReporter that also adds every byte that arrives to a node-wide count."""

    def __init__(self, on_note: Callable[[str], None], received: _ByteCount) -> None:
        super().__init__(on_note)
        self._received = received

    def advance(self, count: int) -> None:
        """Count `count` more bytes, here and node-wide."""
        super().advance(count)
        self._received.add(count)


def own_server_host(bound: str) -> str:
    """Where this host reaches its own server listening on `bound`: loopback for all addresses."""
    if bound in ("0.0.0.0", ""):
        return "127.0.0.1"
    if bound == "::":
        return "::1"
    return bound.strip("[]")


def listen_address(host: str, bind: str) -> str:
    """Where to listen: `bind` if given, `host` if it is a loopback address, else everywhere."""
    if bind:
        return bind
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return host.strip("[]")
    except ValueError:
        pass
    return "0.0.0.0"
