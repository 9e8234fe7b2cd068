"""`napshare-peer`: serve a folder, search the tracker, download a file."""

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn

from common import console
from common.address import InvalidAddressError, format_address, parse_address
from common.names import InvalidNameError
from common.serving import PortInUseError, wait_for_signal
from peer.client_errors import CancelledError, ClientError
from peer.download import Downloader, DownloadOptions
from peer.node import Node, NodeConfig, downloaded_line, listen_address
from peer.progress import reporter_for
from peer.store import FolderError, SharedFolder
from peer.tracker_client import DEFAULT_TRACKER, TrackerClient
from peer.tracker_link import DEFAULT_RESCAN

logger = logging.getLogger(__name__)

EXIT_USAGE = 2
EXIT_FOLDER = 7
EXIT_PORT = 9
EXIT_INTERRUPTED = 130

EPILOG = """\
exit codes:
  0    success (a search that finds nothing is a success too)
  1    another error, such as the tracker refusing a request
  2    bad arguments: a malformed address, file name or option
  3    not found: no peer shares the file
  4    no peer reachable: peers share it but none sent it in time (the .part is kept)
  5    verification failed: every source's bytes failed the sha256 check
  6    the tracker is unreachable
  7    the folder is missing or unusable
  8    the file is already in the folder (use --force)
  9    the port is in use
  130  interrupted (Ctrl-C); run the same download again to resume it
"""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, not usage plus a line."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see --help)\n")


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _address(text: str) -> str:
    try:
        return format_address(*parse_address(text))
    except InvalidAddressError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    common = _Parser(add_help=False)
    common.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="how much to log on stderr (default: warning)",
    )
    tracker = _Parser(add_help=False)
    tracker.add_argument(
        "--tracker",
        type=_address,
        default=DEFAULT_TRACKER,
        metavar="HOST:PORT",
        help=f"the tracker's address (default: {DEFAULT_TRACKER})",
    )
    fetching = _Parser(add_help=False)
    fetching.add_argument(
        "--stall-timeout",
        type=_positive,
        default=30.0,
        metavar="S",
        help="switch to another peer after S seconds without data (default: 30)",
    )
    fetching.add_argument(
        "--give-up-after",
        type=_positive,
        default=120.0,
        metavar="S",
        help="fail after S seconds in which no peer sent a byte (default: 120)",
    )

    parser = _Parser(
        prog="napshare-peer",
        description="Share a folder with napshare peers and download files from them.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        parents=[common, tracker, fetching],
        help="share a folder: serve its files, join the tracker, open the menu",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--dir", required=True, help="the folder to share and download into")
    serve.add_argument(
        "--host", default="", help="the address to announce (default: what the tracker sees)"
    )
    serve.add_argument(
        "--bind",
        default="",
        metavar="ADDR",
        help="the address to listen on (default: --host if it is loopback, else all)",
    )
    serve.add_argument(
        "--port", type=int, default=0, help="the port to listen on (default: a free one)"
    )
    serve.add_argument(
        "--max-uploads", type=int, default=4, metavar="N", help="uploads at once (default: 4)"
    )
    serve.add_argument(
        "--chunk-size",
        type=int,
        default=1024 * 1024,
        metavar="BYTES",
        help="bytes per message sent, 16 KiB to 2 MiB (default: 1 MiB)",
    )
    serve.add_argument(
        "--rescan-interval",
        type=_positive,
        default=DEFAULT_RESCAN,
        metavar="S",
        help=f"look for new files every S seconds (default: {DEFAULT_RESCAN:g})",
    )
    serve.add_argument(
        "--no-menu", action="store_true", help="run as a daemon until SIGINT or SIGTERM"
    )

    search = commands.add_parser(
        "search",
        parents=[common, tracker],
        help="list the peers that share a file",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    search.add_argument("name", help="the exact file name, or keywords with --query")
    search.add_argument(
        "--query", action="store_true", help="match every file whose name holds all the words"
    )

    download = commands.add_parser(
        "download",
        parents=[common, tracker, fetching],
        help="download a file and exit",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    download.add_argument("name", help="the exact file name")
    download.add_argument("--dir", required=True, help="the folder to download into")
    download.add_argument(
        "--from", dest="source", type=_address, metavar="HOST:PORT", help="ask this peer first"
    )
    download.add_argument(
        "--force", action="store_true", help="replace the file if the folder has it already"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `napshare-peer`; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "search":
            return _search(args)
        return _download(args)
    except ClientError as error:
        return _fail(str(error), error.exit_code)
    except FolderError as error:
        return _fail(str(error), EXIT_FOLDER)
    except PortInUseError as error:
        return _fail(str(error), EXIT_PORT)
    except (InvalidNameError, InvalidAddressError, ValueError) as error:
        return _fail(str(error), EXIT_USAGE)


def _fail(message: str, code: int) -> int:
    print(f"napshare-peer: {message}", file=sys.stderr, flush=True)
    return code


def _search(args: argparse.Namespace) -> int:
    tracker = TrackerClient(args.tracker)
    try:
        sources = tracker.query(args.name) if args.query else tracker.search(args.name)
    finally:
        tracker.close()
    if args.query:
        for s in sources:
            print(f"{s.peer}\t{s.size}\t{s.name}")
    peers = list(dict.fromkeys(s.peer for s in sources))
    console.say(console.PEERS_WITH_FILE, peers=peers)
    return 0


def _download(args: argparse.Namespace) -> int:
    folder = SharedFolder(Path(args.dir))
    tracker = TrackerClient(args.tracker)
    options = DownloadOptions(
        preferred=args.source,
        force=args.force,
        stall_timeout=args.stall_timeout,
        give_up_after=args.give_up_after,
    )
    _sigterm_interrupts()
    try:
        result = Downloader(folder, tracker).download(args.name, options, reporter_for(sys.stderr))
    except (KeyboardInterrupt, CancelledError):
        return _fail(
            f"download of {args.name} interrupted; run the same command again to resume it",
            EXIT_INTERRUPTED,
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
    print(downloaded_line(result, args.dir), flush=True)
    return 0


def _serve(args: argparse.Namespace) -> int:
    config = NodeConfig(
        folder=SharedFolder(Path(args.dir)),
        folder_label=args.dir,
        tracker=args.tracker,
        host=args.host,
        bind=args.bind,
        port=args.port,
        max_uploads=args.max_uploads,
        chunk_size=args.chunk_size,
        rescan_interval=args.rescan_interval,
        download=DownloadOptions(
            stall_timeout=args.stall_timeout, give_up_after=args.give_up_after
        ),
    )

    def joined(peer_id: str, names: list[str]) -> None:
        console.say(console.I_AM_PEER, peer=peer_id, files=names)

    node = Node(config, joined)
    listening = format_address(listen_address(args.host, args.bind), node.port)
    print(f"listening on {listening}", flush=True)
    interactive = not args.no_menu and sys.stdin.isatty()
    try:
        node.start()
        if interactive:
            from peer.menu import Menu  # noqa: PLC0415 - only a terminal needs it

            _sigterm_interrupts()
            Menu(node).run()
        else:
            wait_for_signal()
    finally:
        node.stop()
    return 0


def _sigterm_interrupts() -> None:
    """Make SIGTERM stop the main thread the way Ctrl-C does."""

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
