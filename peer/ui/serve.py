"""The `serve` command: a node sharing a folder until SIGINT or SIGTERM (or the menu's quit).

Apart from the other commands so that a download or a search never loads the serving stack
(metrics, upload slots, the node): about 5 MiB of a downloader's RSS.
"""

import argparse
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from napshare.common import console, signals
from napshare.common.address import format_address
from napshare.common.addresskey import address_key_from_args
from napshare.common.console import tr
from napshare.common.exitcodes import ExitCode
from napshare.common.metrics import Metrics, MetricsEndpoint
from napshare.common.serving import raise_open_files_limit
from napshare.peer.folder.store import SharedFolder
from napshare.peer.node import Node, NodeConfig, listen_address
from napshare.peer.serving.server import peer_metrics
from napshare.peer.serving.slots import Fairness, QueueLimits
from napshare.peer.ui import flags

logger = logging.getLogger(__name__)


def serve(args: argparse.Namespace) -> int:
    """Share `args.dir` as the flags say; the exit code."""
    raise_open_files_limit()  # a service's soft limit (often 1,024) holds few connections
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
            address_key=address_key_from_args(args),
        ),
        queue=QueueLimits(most=args.max_queued, per_address=args.max_queued_per_address),
        upload_slot_hold=args.upload_slot_hold,
        chunk_size=args.chunk_size,
        rescan_interval=args.rescan_interval,
        download=flags.download_options(args),
        max_upload_rate=args.max_upload_rate,
        max_download_rate=args.max_download_rate,
        transport=flags.transport(args, folder.root),
        max_dialbacks=args.max_dialbacks,
        dialback_rate=args.dialback_rate,
        local_addresses=() if args.no_local_addresses else None,
        max_connections=args.max_connections,
        max_connections_per_address=args.max_connections_per_address,
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
        show(reach_line(yes, plaintext=config.transport.plaintext))

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


def reach_line(reachable: bool, *, plaintext: bool) -> str:
    """The one line that says how other peers reach this one."""
    if reachable:
        return tr("reachable directly: the tracker reached this peer at its address")
    if plaintext:
        return tr(
            "not reachable directly (a NAT or firewall?): other peers reach this peer through "
            "the tracker, by reverse connections only (a plain text tracker offers no relay)"
        )
    return tr(
        "not reachable directly (a NAT or firewall?): other peers reach this peer through the "
        "tracker (reverse connections, or its relay)"
    )


def _signals_interrupt() -> None:
    """Make SIGTERM, and SIGINT even if inherited as ignored (`cmd &`), stop like Ctrl-C."""

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signals.handle((signal.SIGINT, signal.SIGTERM), interrupt)
