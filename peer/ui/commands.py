"""What `napshare-peer serve`, `search` and `download` do, and the exit code of each failure."""

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from napshare.common import console, signals
from napshare.common.address import InvalidAddressError, format_address
from napshare.common.console import tr
from napshare.common.exitcodes import ExitCode
from napshare.common.metrics import Metrics, MetricsEndpoint
from napshare.common.names import InvalidNameError
from napshare.common.serving import PortInUseError
from napshare.peer.downloading.engine import Downloader, DownloadOptions
from napshare.peer.errors import CancelledError, ClientError
from napshare.peer.folder.store import FolderError, SharedFolder
from napshare.peer.node import Node, NodeConfig, downloaded_line, listen_address
from napshare.peer.ratelimit import TokenBucket
from napshare.peer.serving.server import peer_metrics
from napshare.peer.serving.slots import Fairness
from napshare.peer.tracker_client import TrackerClient
from napshare.peer.transport import Transport, known_trackers_file, read_tracker_cert
from napshare.peer.ui.progress import reporter_for

logger = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    """Run the parsed command; one line on stderr and an exit code for every failure."""
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "search":
            return _search(args)
        return _download(args)
    except ClientError as error:
        return _fail(console.localized(error), error.exit_code)
    except FolderError as error:
        return _fail(console.localized(error), ExitCode.FOLDER)
    except PortInUseError as error:
        return _fail(console.localized(error), ExitCode.PORT_IN_USE)
    except (InvalidNameError, InvalidAddressError) as error:
        return _fail(console.localized(error), ExitCode.USAGE)
    except OSError as error:
        return _fail(console.localized(error), ExitCode.OTHER)
    except KeyboardInterrupt:
        return _fail(tr("interrupted"), ExitCode.INTERRUPTED)
    except Exception as error:
        logger.debug("internal error", exc_info=True)
        message = tr(
            "internal error: {kind}: {error} (--log-level debug logs the traceback)",
            kind=type(error).__name__,
            error=error,
        )
        return _fail(message, ExitCode.OTHER)


def _fail(message: str, code: ExitCode) -> int:
    _notice(message)
    return code


def _transport(args: argparse.Namespace, root: Path | None) -> Transport:
    """What the flags say about TLS; first-seen tracker certificates kept under `root`."""
    if args.plaintext:
        return Transport(plaintext=True)
    return Transport(
        plaintext=False,
        tracker_cert=None if args.tracker_cert is None else read_tracker_cert(args.tracker_cert),
        tracker_fingerprint=args.tracker_fingerprint,
        known_trackers=None if root is None else known_trackers_file(root),
    )


def _search(args: argparse.Namespace) -> int:
    tracker = TrackerClient(args.tracker, transport=_transport(args, None))
    try:
        if args.query:
            found = tracker.find(query=args.name, limit=args.limit)
        else:
            found = tracker.find(name=args.name, limit=args.limit)
    finally:
        tracker.close()
    if args.query:
        for s in found.sources:
            console.show(s.peer, str(s.size), s.name)
    peers = list(dict.fromkeys(s.peer for s in found.sources))
    console.say(console.PEERS_WITH_FILE, peers=peers)
    if not found.sources and found.gathering:
        _notice(tr("the tracker started moments ago and its peers may still be joining"))
    if found.capped:
        _notice(
            tr(
                "more results match; listed the first {count}, this client's cap",
                count=len(found.sources),
            )
        )
    elif found.more:
        _notice(
            tr(
                "more results match; listed the first {count} (--limit 0 lists all)",
                count=args.limit,
            )
        )
    return ExitCode.OK


def _notice(message: str) -> None:
    console.show(f"napshare-peer: {message}", file=sys.stderr)


def _download(args: argparse.Namespace) -> int:
    folder = SharedFolder(Path(args.dir))
    tracker = TrackerClient(args.tracker, transport=_transport(args, folder.root))
    options = _download_options(args, preferred=args.source, force=args.force)
    cancel = _signals_cancel()
    try:
        downloader = Downloader(folder, tracker, limit=TokenBucket(args.max_download_rate))
        result = downloader.download(args.name, options, reporter_for(sys.stderr), cancel)
    except (KeyboardInterrupt, CancelledError):
        return _fail(
            tr(
                "download of {name} interrupted; run the same command again to resume it",
                name=args.name,
            ),
            ExitCode.INTERRUPTED,
        )
    finally:
        tracker.close()
    logger.info(
        "fetched %d bytes of %s (%d were already there) from %s",
        result.bytes_received,
        result.name,
        result.resumed_from,
        " ".join(result.sources) or "nobody (empty file)",
    )
    if len(result.received_from) > 1:
        logger.info(
            "bytes from each peer: %s",
            ", ".join(f"{peer} {count}" for peer, count in result.received_from),
        )
    console.show(downloaded_line(result, args.dir))
    return ExitCode.OK


def _download_options(args: argparse.Namespace, **extra: Any) -> DownloadOptions:
    """The download flags `serve` and `download` share, plus `extra` fields."""
    return DownloadOptions(
        stall_timeout=args.stall_timeout,
        give_up_after=args.give_up_after,
        wait_for_peers=args.wait_for_peers,
        max_sources=args.max_sources,
        **extra,
    )


def _serve(args: argparse.Namespace) -> int:
    folder = SharedFolder(Path(args.dir))
    config = NodeConfig(
        folder=folder,
        folder_label=args.dir,
        tracker=args.tracker,
        host=args.host,
        bind=args.bind,
        port=args.port,
        max_uploads=args.max_uploads,
        upload_stall_timeout=args.upload_stall_timeout,
        fairness=Fairness(
            per_address=args.max_uploads_per_address,
            min_rate=args.min_upload_rate * 1024,
            window=args.upload_rate_window,
            grace=args.upload_grace,
        ),
        chunk_size=args.chunk_size,
        rescan_interval=args.rescan_interval,
        download=_download_options(args),
        max_upload_rate=args.max_upload_rate,
        max_download_rate=args.max_download_rate,
        transport=_transport(args, folder.root),
    )

    metrics = None if args.metrics_port is None else peer_metrics()
    endpoint = None if metrics is None else metrics.serve(args.metrics_host, args.metrics_port)
    try:
        return _run_node(config, args, metrics, endpoint)
    finally:
        if endpoint is not None:
            endpoint.close()


def _run_node(
    config: NodeConfig,
    args: argparse.Namespace,
    metrics: Metrics | None,
    endpoint: MetricsEndpoint | None,
) -> int:
    """Run a node until SIGINT or SIGTERM (or the menu's quit); the exit code."""
    show: Callable[[str], None] = console.show  # the menu's own while it runs

    def joined(peer_id: str, names: list[str]) -> None:
        show(console.render(console.I_AM_PEER, {"peer": peer_id, "files": names}))

    def reachable(yes: bool) -> None:
        if yes:
            show(tr("the tracker reached this peer at its address: other peers can download"))
        else:
            show(
                tr(
                    "the tracker could not reach this peer at its address: other peers may "
                    "not be able to download from it (a firewall or NAT? see --host and --port)"
                )
            )

    # From here on SIGINT and SIGTERM both raise KeyboardInterrupt: a clean stop, exit 0.
    _signals_interrupt()
    try:
        node = Node(config, joined, metrics, on_reachable=reachable)
    except KeyboardInterrupt:
        return ExitCode.OK
    listening = format_address(listen_address(args.host, args.bind), node.port)
    console.show(tr("listening on {address}", address=listening))
    if endpoint is not None:
        console.show(endpoint.line())
    interactive = not args.no_menu and sys.stdin.isatty()
    try:
        node.start()
        if interactive:
            from napshare.peer.ui.menu import Menu  # noqa: PLC0415 - only a terminal needs it

            menu = Menu(node)
            show = menu.say
            menu.run()
        else:
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        logger.info("signalled; leaving the tracker and stopping")
    finally:
        node.stop()
    return ExitCode.OK


def _signals_cancel() -> threading.Event:
    """An event that the first SIGINT or SIGTERM sets; a second one interrupts at once.

    The download engine watches the event and stops at a safe point (its part closed, its
    hash thread ended); an exception raised by a signal handler could land anywhere, even
    inside a lock a cleanup step needs.
    """
    cancel = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()

    signals.handle((signal.SIGINT, signal.SIGTERM), stop)
    return cancel


def _signals_interrupt() -> None:
    """Make SIGTERM, and SIGINT even if inherited as ignored (`cmd &`), stop like Ctrl-C."""

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signals.handle((signal.SIGINT, signal.SIGTERM), interrupt)
