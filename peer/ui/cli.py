"""`napshare-peer`: the command line (serve a folder, search the tracker, download a file)."""

import argparse
from collections.abc import Sequence

from napshare.common import logsetup
from napshare.common.address import InvalidAddressError, check_host, format_address, parse_address
from napshare.common.cliargs import OneLineParser, int_in_range, positive_number
from napshare.common.exitcodes import epilog
from napshare.common.names import InvalidNameError, check_file_name
from napshare.peer.defaults import (
    DEFAULT_TRACKER,
    GIVE_UP_AFTER,
    MAX_RESULTS,
    MAX_UPLOADS,
    RESCAN_INTERVAL,
    SEARCH_LIMIT,
    STALL_TIMEOUT,
)
from napshare.peer.folder.layout import HASHES_FILE, PART_SUFFIX, PARTIAL_DIR, STATE_DIR
from napshare.peer.serving.uploads import DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE

# This module loads no gRPC: main() must set GRPC_VERBOSITY before gRPC's core starts.

EPILOG = (
    epilog()
    + f"""
the {STATE_DIR}/ folder:
  serve and download keep their own files in DIR/{STATE_DIR}/, which is never shared:
  {HASHES_FILE} holds the sha256 of each shared file (with its size and mtime), so a
  restart does not read every file again; {PARTIAL_DIR}/ holds one note per unfinished
  download (which file the {PART_SUFFIX} is the start of, and which peers sent it), so the same
  download resumes. Deleting it is safe: files are hashed again, and unfinished downloads
  start over.
"""
)


def _host(text: str) -> str:
    if not text:
        return ""
    try:
        return check_host(text)
    except InvalidAddressError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _address(text: str) -> str:
    try:
        return format_address(*parse_address(text))
    except InvalidAddressError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    common = OneLineParser(add_help=False)
    common.add_argument(
        "--log-level",
        type=str.lower,
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="how much to log on stderr (default: warning)",
    )
    tracker = OneLineParser(add_help=False)
    tracker.add_argument(
        "--tracker",
        type=_address,
        default=DEFAULT_TRACKER,
        metavar="HOST:PORT",
        help=f"the tracker's address (default: {DEFAULT_TRACKER})",
    )
    fetching = OneLineParser(add_help=False)
    fetching.add_argument(
        "--stall-timeout",
        type=positive_number,
        default=STALL_TIMEOUT,
        metavar="S",
        help="switch to another peer after S seconds without data (default: %(default)g)",
    )
    fetching.add_argument(
        "--give-up-after",
        type=positive_number,
        default=GIVE_UP_AFTER,
        metavar="S",
        help="fail after S seconds in which no peer sent a byte (default: %(default)g)",
    )

    parser = OneLineParser(
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
        "--host",
        type=_host,
        default="",
        help="the address to announce (default: what the tracker sees)",
    )
    serve.add_argument(
        "--bind",
        type=_host,
        default="",
        metavar="ADDR",
        help="the address to listen on (default: --host if it is loopback, else all)",
    )
    serve.add_argument(
        "--port",
        type=int_in_range(0, 65535),
        default=0,
        help="the port to listen on (default: a free one, printed)",
    )
    serve.add_argument(
        "--max-uploads",
        type=int_in_range(1, 1000),
        default=MAX_UPLOADS,
        metavar="N",
        help="uploads at once; more are refused (default: %(default)d)",
    )
    serve.add_argument(
        "--chunk-size",
        type=int_in_range(MIN_CHUNK_SIZE, MAX_CHUNK_SIZE),
        default=DEFAULT_CHUNK_SIZE,
        metavar="BYTES",
        help="bytes per message sent, 16 KiB to 2 MiB (default: %(default)d)",
    )
    serve.add_argument(
        "--rescan-interval",
        type=positive_number,
        default=RESCAN_INTERVAL,
        metavar="S",
        help=f"look for new files every S seconds (default: {RESCAN_INTERVAL:g})",
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
    search.add_argument(
        "--limit",
        type=int_in_range(0, MAX_RESULTS),
        default=SEARCH_LIMIT,
        metavar="N",
        help=f"list at most N results, 0 for all (at most {MAX_RESULTS:,}); a line on stderr "
        "says when more matched (default: %(default)d)",
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
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "download" or (args.command == "search" and not args.query):
        try:
            check_file_name(args.name)
        except InvalidNameError as error:
            parser.error(str(error))
    logsetup.configure(args.log_level)
    from napshare.peer.ui.commands import run  # noqa: PLC0415 - only now may gRPC load

    return run(args)
