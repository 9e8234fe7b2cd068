"""`napshare-peer`: the command line (serve a folder, search the tracker, download a file)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from napshare.common import arenas, logsetup
from napshare.common.address import InvalidAddressError, address_list, normal_address
from napshare.common.addresskey import add_ipv6_prefix_flag
from napshare.common.cliargs import (
    OneLineParser,
    add_metrics_flags,
    add_version,
    byte_rate,
    byte_size,
    host_name,
    int_in_range,
    non_negative_number,
    positive_number,
    usage_error,
)
from napshare.common.console import N_, localized, tr
from napshare.common.exitcodes import ExitCode, epilog
from napshare.common.names import SEPARATOR, InvalidNameError, check_file_name, check_folder
from napshare.peer.defaults import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_TRACKER,
    DIALBACK_RATE,
    GIVE_UP_AFTER,
    MAX_CHUNK_SIZE,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_ADDRESS,
    MAX_DIALBACKS,
    MAX_FILE_SIZE,
    MAX_QUEUED,
    MAX_RESULTS,
    MAX_SOURCES,
    MAX_UPLOADS,
    MIN_CHUNK_SIZE,
    MIN_UPLOAD_RATE,
    MOST_SOURCES,
    QUEUED_PER_ADDRESS,
    RESCAN_INTERVAL,
    SEARCH_LIMIT,
    STALL_TIMEOUT,
    UPLOAD_GRACE,
    UPLOAD_RATE_WINDOW,
    UPLOAD_SLOT_HOLD,
    UPLOAD_STALL_TIMEOUT,
    UPLOADS_PER_ADDRESS,
    WAIT_FOR_PEERS,
)
from napshare.peer.folder.layout import (
    HASHES_FILE,
    IDENTITY_DIR,
    KNOWN_TRACKERS_FILE,
    LAYERS_DIR,
    NOTE_SUFFIX,
    PART_SUFFIX,
    PARTIAL_DIR,
    STATE_DIR,
)

# This module loads no gRPC: main() must set GRPC_VERBOSITY before gRPC's core starts.

# The exit codes napshare-peer words its own way in --help.
EXIT_CODES_SAID = {ExitCode.OK: N_("success (for search, finding nothing is a success too)")}


def _epilog() -> str:
    """The exit codes and the state folder, in the user's language (after the locale is set)."""
    state = tr(
        """
the {state}/ folder:
  serve and download keep their own files in DIR/{state}/, which is never shared:
  {hashes} holds the sha256 and pieces root of each shared file (with its size and
  mtime), so a restart does not read every file again; {layers}/ the piece layer (a
  SHA-256 per piece) of each shared file larger than one piece. {partial}/ holds each
  unfinished download: its bytes (KEY{suffix}) and a note (KEY{note}: which file they are
  pieces of, which pieces are verified, and which peers sent them), so the same download
  resumes where it stopped. A download touches nothing else in DIR but the verified file
  it finally puts there. {identity}/ holds this peer's identity (key.pem, cert.pem,
  owner-only), made on the first serve; {known} the fingerprint of each
  tracker first seen. Deleting {state}/ is safe but for them: files are hashed again,
  unfinished downloads start over, and a new identity cannot take this peer's address at
  the tracker until the old one's lease ran out.
""",
        state=STATE_DIR,
        hashes=HASHES_FILE,
        layers=LAYERS_DIR,
        partial=PARTIAL_DIR,
        suffix=PART_SUFFIX,
        note=NOTE_SUFFIX,
        identity=IDENTITY_DIR,
        known=KNOWN_TRACKERS_FILE,
    )
    return epilog(said=EXIT_CODES_SAID) + state


def _host(text: str) -> str:
    return host_name(text) if text else ""


def _fingerprint(text: str) -> str:
    hex_digits = text.replace(":", "").lower()
    if len(hex_digits) != 64 or any(c not in "0123456789abcdef" for c in hex_digits):
        raise argparse.ArgumentTypeError(
            tr("{text!r} is not a SHA-256 fingerprint (64 hex digits)", text=text[:80])
        )
    return hex_digits


def _digest(text: str) -> str:
    """A sha256 or pieces root as the tracker lists them: 64 hex digits, lowercase."""
    digest = text.lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise argparse.ArgumentTypeError(
            tr("{text!r} is not a SHA-256 (64 hex digits)", text=text[:80])
        )
    return digest


def _address(text: str) -> str:
    try:
        return normal_address(text)
    except InvalidAddressError as error:
        raise argparse.ArgumentTypeError(localized(error)) from None


def peer_and_folder(text: str) -> tuple[str, str]:
    """`HOST:PORT`, or `HOST:PORT:FOLDER` (`[V6]:PORT:FOLDER` for IPv6): the peer id and the
    folder ("" for every file; `/` says so too). Raises InvalidAddressError or
    InvalidNameError.
    """
    start = text.find("]") + 1 if text.startswith("[") else 0
    port = text.find(":", start)
    cut = -1 if port < 0 else text.find(":", port + 1)
    peer, folder = (text, "") if cut < 0 else (text[:cut], text[cut + 1 :])
    peer = normal_address(peer)
    if folder == SEPARATOR:
        return peer, ""
    check_folder(folder)
    return peer, folder


def _peer_and_folder(text: str) -> tuple[str, str]:
    try:
        return peer_and_folder(text)
    except (InvalidAddressError, InvalidNameError) as error:
        raise argparse.ArgumentTypeError(localized(error)) from None


def _trackers(text: str) -> str:
    try:
        return ",".join(address_list(text))
    except InvalidAddressError as error:
        raise argparse.ArgumentTypeError(localized(error)) from None


@dataclass(frozen=True)
class _Parents:
    """The flags that several subcommands share, as parent parsers, and their epilog."""

    common: OneLineParser  # how much to log
    tracker: OneLineParser  # which tracker, and how it is trusted
    fetching: OneLineParser  # how files are fetched from peers
    epilog: str


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    parents = _Parents(_common_flags(), _tracker_flags(), _fetching_flags(), _epilog())
    parser = OneLineParser(
        prog="napshare-peer",
        description=tr("Share a folder with napshare peers and download files from them."),
        epilog=parents.epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(commands, parents)
    _add_search(commands, parents)
    _add_browse(commands, parents)
    _add_download(commands, parents)
    return parser


def _common_flags() -> OneLineParser:
    """--log-level, for every subcommand."""
    common = OneLineParser(add_help=False)
    common.add_argument(
        "--log-level",
        type=str.lower,
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help=tr("how much to log on stderr (default: %(default)s)"),
    )
    return common


def _tracker_flags() -> OneLineParser:
    """Which tracker (or replicas), plain text or not, and how its certificate is pinned."""
    tracker = OneLineParser(add_help=False)
    tracker.add_argument(
        "--tracker",
        type=_trackers,
        default=DEFAULT_TRACKER,
        metavar="HOST:PORT[,HOST:PORT...]",
        help=tr(
            "the tracker's address, or its replicas' separated by commas (a call goes to the "
            "next when one is unreachable; all must show the same certificate) (default: "
            "{tracker})",
            tracker=DEFAULT_TRACKER,
        ),
    )
    tracker.add_argument(
        "--plaintext",
        action="store_true",
        help=tr(
            "talk plain text to the tracker and to peers, and serve plain text, for a network "
            "you trust (the tracker must run with --plaintext too)"
        ),
    )
    pin = tracker.add_mutually_exclusive_group()
    pin.add_argument(
        "--tracker-cert",
        metavar="FILE",
        help=tr("trust only this PEM certificate for the tracker (its cert.pem)"),
    )
    pin.add_argument(
        "--tracker-fingerprint",
        type=_fingerprint,
        metavar="HEX",
        help=tr(
            "trust only a tracker certificate of this SHA-256 fingerprint (the tracker prints "
            "it at start); without either flag, the certificate first seen is kept in "
            "DIR/{state}/{known} and any other is refused",
            state=STATE_DIR,
            known=KNOWN_TRACKERS_FILE,
        ),
    )
    return tracker


def _fetching_flags() -> OneLineParser:
    """How a download fetches: stalls, give-up time, sources, rate, memory."""
    fetching = OneLineParser(add_help=False)
    fetching.add_argument(
        "--stall-timeout",
        type=positive_number,
        default=STALL_TIMEOUT,
        metavar="S",
        help=tr("switch to another peer after S seconds without data (default: %(default)g)"),
    )
    fetching.add_argument(
        "--give-up-after",
        type=positive_number,
        default=GIVE_UP_AFTER,
        metavar="S",
        help=tr("fail after S seconds in which no peer sent a byte (default: %(default)g)"),
    )
    fetching.add_argument(
        "--wait-for-peers",
        type=non_negative_number,
        default=WAIT_FOR_PEERS,
        metavar="S",
        help=tr(
            "when nobody shares the file and the tracker started moments ago, keep "
            "searching for up to S seconds while its peers join; 0: do not wait "
            "(default: %(default)g)"
        ),
    )
    fetching.add_argument(
        "--max-sources",
        type=int_in_range(1, MOST_SOURCES),
        default=MAX_SOURCES,
        metavar="N",
        help=tr(
            "draw pieces from up to N peers at once, 1 to {most} (default: %(default)s)",
            most=MOST_SOURCES,
        ),
    )
    fetching.add_argument(
        "--max-file-size",
        type=byte_size,
        default=MAX_FILE_SIZE,
        metavar="SIZE",
        help=tr(
            "refuse a file listed larger than SIZE, with K, M, G or T for 1024, 1024², ... "
            "(default: 1T): a peer can list any size, and a larger file has larger pieces, "
            "three of which each stream keeps on disk while they arrive"
        ),
    )
    fetching.add_argument(
        "--max-download-rate",
        type=byte_rate,
        default=0.0,
        metavar="RATE",
        help=tr(
            "receive at most RATE bytes per second, all downloads together: 500K, 30M "
            "(K, M, G: 1024, 1024², 1024³); 0 for no limit (default: 0)"
        ),
    )
    return fetching


def _add_serve(commands: argparse._SubParsersAction[OneLineParser], parents: _Parents) -> None:
    """serve: what is shared, how it is served and announced, its limits."""
    serve = commands.add_parser(
        "serve",
        parents=[parents.common, parents.tracker, parents.fetching],
        help=tr("share a folder: serve its files, join the tracker, open the menu"),
        epilog=parents.epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--dir", required=True, help=tr("the folder to share and download into"))
    serve.add_argument(
        "--host",
        type=_host,
        default="",
        help=tr("the address to announce (default: what the tracker sees)"),
    )
    serve.add_argument(
        "--bind",
        type=_host,
        default="",
        metavar="ADDR",
        help=tr("the address to listen on (default: --host if it is loopback, else all)"),
    )
    serve.add_argument(
        "--port",
        type=int_in_range(0, 65535),
        default=0,
        help=tr("the port to listen on (default: a free one, printed)"),
    )
    serve.add_argument(
        "--max-uploads",
        type=int_in_range(1, 1000),
        default=MAX_UPLOADS,
        metavar="N",
        help=tr("uploads at once; more wait (--max-queued) or are refused (default: %(default)d)"),
    )
    serve.add_argument(
        "--max-uploads-per-address",
        type=int_in_range(1, 1000),
        default=UPLOADS_PER_ADDRESS,
        metavar="N",
        help=tr("uploads at once to one IP address, whatever its ports (default: %(default)d)"),
    )
    serve.add_argument(
        "--max-connections",
        type=int_in_range(16, 1_000_000),
        default=MAX_CONNECTIONS,
        metavar="N",
        help=tr(
            "connections this peer's server holds at once, within its open files; more are "
            "closed at once (default: %(default)d)"
        ),
    )
    serve.add_argument(
        "--max-connections-per-address",
        type=int_in_range(1, 100_000),
        default=MAX_CONNECTIONS_PER_ADDRESS,
        metavar="N",
        help=tr(
            "connections from one IP address at once; past it, its newest are closed and it "
            "may open no more until it holds fewer (default: %(default)d)"
        ),
    )
    add_ipv6_prefix_flag(serve)
    serve.add_argument(
        "--max-queued",
        type=int_in_range(0, 1000),
        default=MAX_QUEUED,
        metavar="N",
        help=tr(
            "downloads that may wait for an upload slot, first come first served, when every "
            "slot is taken; more are refused, and 0 refuses at once (default: %(default)d)"
        ),
    )
    serve.add_argument(
        "--max-queued-per-address",
        type=int_in_range(1, 1000),
        default=QUEUED_PER_ADDRESS,
        metavar="N",
        help=tr("downloads from one IP address that may wait for a slot (default: %(default)d)"),
    )
    serve.add_argument(
        "--min-upload-rate",
        type=non_negative_number,
        default=MIN_UPLOAD_RATE,
        metavar="KIB_S",
        help=tr(
            "free the slot of an upload read at less than KIB_S KiB/s over the rate window, "
            "and give its address no new slot for one window; 0 turns this off "
            "(default: %(default)g)"
        ),
    )
    serve.add_argument(
        "--upload-rate-window",
        type=positive_number,
        default=UPLOAD_RATE_WINDOW,
        metavar="S",
        help=tr("the seconds over which an upload's rate is averaged (default: %(default)g)"),
    )
    serve.add_argument(
        "--upload-grace",
        type=non_negative_number,
        default=UPLOAD_GRACE,
        metavar="S",
        help=tr("seconds after an upload starts before its rate counts (default: %(default)g)"),
    )
    serve.add_argument(
        "--upload-slot-hold",
        type=non_negative_number,
        default=UPLOAD_SLOT_HOLD,
        metavar="S",
        help=tr(
            "keep a slot S seconds for the client whose download of a file sent all it asked "
            "for, so that its next part of the file does not queue again; 0 turns this off "
            "(default: %(default)g)"
        ),
    )
    serve.add_argument(
        "--upload-stall-timeout",
        type=positive_number,
        default=UPLOAD_STALL_TIMEOUT,
        metavar="S",
        help=tr("cancel an upload whose client took no data for S seconds (default: %(default)g)"),
    )
    serve.add_argument(
        "--max-upload-rate",
        type=byte_rate,
        default=0.0,
        metavar="RATE",
        help=tr(
            "send at most RATE bytes per second, all uploads together: 500K, 30M "
            "(K, M, G: 1024, 1024², 1024³); 0 for no limit (default: 0). Under a cap the "
            "minimum upload rate is at most half of each slot's share of it"
        ),
    )
    serve.add_argument(
        "--chunk-size",
        type=int_in_range(MIN_CHUNK_SIZE, MAX_CHUNK_SIZE),
        default=DEFAULT_CHUNK_SIZE,
        metavar="BYTES",
        help=tr("bytes per message sent, 16 KiB to 2 MiB (default: %(default)d)"),
    )
    serve.add_argument(
        "--rescan-interval",
        type=positive_number,
        default=RESCAN_INTERVAL,
        metavar="S",
        help=tr(
            "look for new files every S seconds (default: {seconds})",
            seconds=format(RESCAN_INTERVAL, "g"),
        ),
    )
    serve.add_argument(
        "--max-dialbacks",
        type=int_in_range(1, 1000),
        default=MAX_DIALBACKS,
        metavar="N",
        help=tr(
            "behind a NAT: connections this peer dials out at once for downloaders that "
            "cannot reach it (reverse, or through a relay); more requests are dropped "
            "(default: %(default)d)"
        ),
    )
    serve.add_argument(
        "--dialback-rate",
        type=positive_number,
        default=DIALBACK_RATE,
        metavar="N",
        help=tr("behind a NAT: such dials started per second at most (default: %(default)g)"),
    )
    serve.add_argument(
        "--no-local-addresses",
        action="store_true",
        help=tr(
            "do not tell the tracker this peer's addresses on its own network (peers behind "
            "the same NAT then reach it through the tracker, like everyone else)"
        ),
    )
    add_metrics_flags(serve)
    serve.add_argument(
        "--no-menu", action="store_true", help=tr("run as a daemon until SIGINT or SIGTERM")
    )


def _add_search(commands: argparse._SubParsersAction[OneLineParser], parents: _Parents) -> None:
    """search: by name, keywords or content, and how many results."""
    search = commands.add_parser(
        "search",
        parents=[parents.common, parents.tracker],
        help=tr("list the peers that share a file"),
        epilog=parents.epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    search.add_argument("name", nargs="?", help=tr("the exact file name, or keywords with --query"))
    search.add_argument(
        "--query", action="store_true", help=tr("match every file whose name holds all the words")
    )
    search.add_argument(
        "--sha256",
        type=_digest,
        metavar="HEX",
        help=tr("every peer that shares a file with this sha256, whatever its name"),
    )
    search.add_argument(
        "--root",
        type=_digest,
        metavar="HEX",
        help=tr("every peer that shares a file with this pieces root, whatever its name"),
    )
    search.add_argument(
        "--limit",
        type=int_in_range(0, MAX_RESULTS),
        default=SEARCH_LIMIT,
        metavar="N",
        help=tr(
            "list at most N results, 0 for all (at most {most}); a line on stderr "
            "says when more matched (default: %(default)d)",
            most=format(MAX_RESULTS, ","),
        ),
    )


def _add_browse(commands: argparse._SubParsersAction[OneLineParser], parents: _Parents) -> None:
    """browse: one peer's shares, or one of its folders."""
    browse = commands.add_parser(
        "browse",
        parents=[parents.common, parents.tracker],
        help=tr("list what one peer shares, as a tree"),
        epilog=parents.epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    browse.add_argument(
        "peer",
        type=_peer_and_folder,
        metavar="HOST:PORT[:FOLDER]",
        help=tr(
            "the peer, as search lists it; with :FOLDER (such as 127.0.0.1:8776:semana1/), "
            "only the files under that folder"
        ),
    )


def _add_download(commands: argparse._SubParsersAction[OneLineParser], parents: _Parents) -> None:
    """download: a file (which version, from whom) or a peer's folder, and where to."""
    download = commands.add_parser(
        "download",
        parents=[parents.common, parents.tracker, parents.fetching],
        help=tr("download a file, or a peer's folder, and exit"),
        epilog=parents.epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    download.add_argument(
        "name",
        nargs="?",
        help=tr("the exact file name, with its folders if it has any (semana1/aula1.mp4)"),
    )
    download.add_argument("--dir", required=True, help=tr("the folder to download into"))
    download.add_argument(
        "--folder",
        type=_peer_and_folder,
        metavar="HOST:PORT:FOLDER",
        help=tr(
            "instead of one file, every file under FOLDER of the peer HOST:PORT (as browse "
            "lists them), each verified and put under its own name in --dir; run again, it "
            "resumes where it stopped"
        ),
    )
    download.add_argument(
        "--from",
        dest="source",
        type=_address,
        metavar="HOST:PORT",
        help=tr("fetch from this peer alone; the others only if it fails"),
    )
    download.add_argument(
        "--force",
        action="store_true",
        help=tr("replace the file (with --folder, its files) if the folder has it already"),
    )
    download.add_argument(
        "--sha256",
        type=_digest,
        metavar="HEX",
        help=tr(
            "when peers share several versions of the file, the one with this sha256 "
            "(`search NAME` lists them)"
        ),
    )
    download.add_argument(
        "--root",
        type=_digest,
        metavar="HEX",
        help=tr("the version with this pieces root (`search NAME` lists them)"),
    )
    download.add_argument(
        "--verify-sha256",
        action="store_true",
        help=tr(
            "also check the whole file's sha256 against the listed one before keeping it "
            "(every piece is checked against the pieces root anyway; --sha256 implies this)"
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run `napshare-peer`; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    by_content = args.command == "search" and (args.sha256 or args.root)
    if args.command == "search" and not by_content and not args.name:
        usage_error(
            "napshare-peer search",
            tr(
                "say what to look for: a file name (napshare-peer search aula1.mp4), "
                'keywords (napshare-peer search --query "aula mp4") or the bytes '
                "(napshare-peer search --sha256 HEX)"
            ),
        )
    if by_content and (args.name or args.query or (args.sha256 and args.root)):
        usage_error(
            "napshare-peer search",
            tr("search by one thing: a name, --query words, --sha256 or --root"),
        )
    if args.command == "download" and (args.folder is None) == (args.name is None):
        usage_error(
            "napshare-peer download",
            tr(
                "say what to download: a file name (napshare-peer download aula1.mp4 --dir D) "
                "or a peer's folder (napshare-peer download --folder HOST:PORT:FOLDER --dir D)"
            ),
        )
    if (
        args.command == "download"
        and args.folder is not None
        and (args.source is not None or args.sha256 is not None or args.root is not None)
    ):
        usage_error(
            "napshare-peer download",
            tr(
                "--folder fetches each file from the peer it names, in the version that peer "
                "lists; leave out --from, --sha256 and --root"
            ),
        )
    if (args.command == "download" and args.folder is None) or (
        args.command == "search" and not args.query and not by_content
    ):
        try:
            check_file_name(args.name)
        except InvalidNameError as error:
            parser.error(localized(error))
    logsetup.configure(args.log_level)
    arenas.limit_arenas()  # before gRPC and the download's threads start
    from napshare.peer.ui.commands import run  # noqa: PLC0415 - only now may gRPC load

    return run(args)
