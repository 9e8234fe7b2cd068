"""What `napshare-peer serve`, `search`, `browse` and `download` do, and the exit code of each
failure.
"""

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from napshare.common import console, signals
from napshare.common.address import InvalidAddressError
from napshare.common.console import tr
from napshare.common.exitcodes import ExitCode
from napshare.common.names import InvalidNameError
from napshare.common.ratelimit import TokenBucket
from napshare.common.serving import PortInUseError
from napshare.peer.downloading.engine import Downloader
from napshare.peer.downloading.folder_job import FolderPlan, download_folder, plan_folder
from napshare.peer.downloading.reporting import Reporter
from napshare.peer.downloading.versions import versions_of
from napshare.peer.errors import CancelledError, ClientError
from napshare.peer.folder.store import FolderError, SharedFolder
from napshare.peer.tracker_client import Source, TrackerClient
from napshare.peer.ui import flags
from napshare.peer.ui.folders import (
    checking_line,
    file_of_line,
    folder_done_line,
    folder_plan_line,
    folder_stopped_line,
    shares_line,
)
from napshare.peer.ui.progress import downloaded_line, reporter_for, resumed_line
from napshare.peer.ui.tree import TreeLines

logger = logging.getLogger(__name__)

MAX_PEERS_SHOWN = 20  # peers listed on one version's line (and names said to have several)
MAX_CONTENT_SEARCHES = 4  # versions of a name whose other names `search NAME` looks up


def run(args: argparse.Namespace) -> int:
    """Run the parsed command; one line on stderr and an exit code for every failure."""
    try:
        if args.command == "serve":
            # Only `serve` loads the serving stack (metrics, upload slots, the node).
            from napshare.peer.ui.serve import serve  # noqa: PLC0415

            return serve(args)
        if args.command == "search":
            return _search(args)
        if args.command == "browse":
            return _browse(args)
        if args.folder is not None:
            return _download_folder(args)
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


def _search(args: argparse.Namespace) -> int:
    tracker = TrackerClient(args.tracker, transport=flags.transport(args, None))
    others: list[Source] = []
    try:
        if args.sha256 or args.root:
            found = tracker.find(
                sha256=args.sha256 or "", pieces_root=args.root or "", limit=args.limit
            )
        elif args.query:
            found = tracker.find(query=args.name, limit=args.limit)
        else:
            found = tracker.find(name=args.name, limit=args.limit)
            others = _other_names(tracker, args.name, found.sources)
    finally:
        tracker.close()
    _tell_trust(args, tracker)
    if args.sha256 or args.root:
        for s in found.sources:
            console.show(s.peer, str(s.size), s.name)
        _tell_holders(found.sources)
    elif args.query:
        for s in _by_content(found.sources):
            console.show(s.peer, str(s.size), s.name)
        _tell_versions(found.sources)
        _tell_holders(found.sources, renamed_only=True)
    else:
        peers = list(dict.fromkeys(s.peer for s in found.sources))
        console.say(console.PEERS_WITH_FILE, peers=peers)
        _show_versions(args.name, found.sources)
        _tell_other_names(args.name, found.sources, others)
    if not found.sources and found.gathering:
        _notice(tr("the tracker started moments ago and its peers may still be joining"))
    elif not found.sources and args.query:
        _notice(tr("no shared file's name holds every word of {query}", query=repr(args.name)))
    if found.timed_out:
        _notice(
            tr(
                "the tracker kept sending pages past this search's time; listed the "
                "{count} results it sent by then",
                count=len(found.sources),
            )
        )
    elif found.capped:
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


def _show_versions(name: str, sources: list[Source]) -> None:
    """When the peers list several versions of `name`, each of them on stdout, in the order
    a download tries them, with the address blocks that share it and its peers.
    """
    versions = versions_of(sources)
    if len(versions) < 2:
        return
    console.show(
        tr(
            "{count} versions of {name} are shared; a download tries them in this order "
            "(download --sha256 HEX picks one):",
            count=len(versions),
            name=name,
        )
    )
    for number, version in enumerate(versions, 1):
        console.show(
            tr(
                "  {number}. sha256 {sha256}, pieces root {root}, {size} bytes: {blocks} "
                "address blocks ({reached} reached the tracker), {listings} listings: {peers}",
                number=number,
                sha256=version.sha256,
                root=version.pieces_root or "-",
                size=format(version.size, ","),
                blocks=version.blocks,
                reached=version.reached_blocks,
                listings=len(version.sources),
                peers=" ".join(version.peers[:MAX_PEERS_SHOWN])
                + (" …" if len(version.sources) > MAX_PEERS_SHOWN else ""),
            )
        )


def _tell_versions(sources: list[Source]) -> None:
    """For a --query search: say which names are shared in several versions."""
    by_name: dict[str, set[tuple[int, str, str]]] = {}
    for s in sources:
        by_name.setdefault(s.name, set()).add((s.size, s.sha256, s.pieces_root))
    several = [name for name, versions in by_name.items() if len(versions) > 1]
    for name in several[:MAX_PEERS_SHOWN]:
        _notice(
            tr(
                "{count} versions of {name} are shared; `napshare-peer search {name}` shows them",
                count=len(by_name[name]),
                name=name,
            )
        )


def _by_content(sources: list[Source]) -> list[Source]:
    """`sources` with the rows of the same bytes together, each group where its first row
    was (the tracker's order otherwise).
    """
    groups: dict[tuple[int, str], list[Source]] = {}
    for s in sources:
        groups.setdefault((s.size, s.sha256), []).append(s)
    return [s for group in groups.values() for s in group]


def _tell_holders(sources: list[Source], *, renamed_only: bool = False) -> None:
    """Say, for each content that several peers share, how many have it and under how many
    names: `4 peers have the bytes of aula1.mp4 (sha256 …), under 3 names`; with
    `renamed_only`, only for the contents shared under several names (the same name on
    several peers is what a search by name shows already).
    """
    groups: dict[tuple[int, str], list[Source]] = {}
    for s in sources:
        groups.setdefault((s.size, s.sha256), []).append(s)
    shared = [
        group
        for group in groups.values()
        if len({s.peer for s in group}) > 1
        and (not renamed_only or len({s.name for s in group}) > 1)
    ]
    for group in shared[:MAX_PEERS_SHOWN]:
        names = list(dict.fromkeys(s.name for s in group))
        _notice(
            tr(
                "{count} peers have the bytes of {name} (sha256 {sha256}), under {names} "
                "names; a download of any of these names uses them all",
                count=len({s.peer for s in group}),
                name=names[0],
                sha256=group[0].sha256,
                names=len(names),
            )
            if len(names) > 1
            else tr(
                "{count} peers have the bytes of {name} (sha256 {sha256})",
                count=len({s.peer for s in group}),
                name=names[0],
                sha256=group[0].sha256,
            )
        )


def _tell_trust(args: argparse.Namespace, tracker: TrackerClient) -> None:
    """For a command that keeps no folder (search, browse): without a pin, which certificate
    it trusted, and how to pin it.
    """
    if not args.plaintext and args.tracker_cert is None and args.tracker_fingerprint is None:
        _notice(
            tr(
                "no --tracker-cert or --tracker-fingerprint: trusted whatever certificate "
                "tracker {tracker} showed (SHA-256 fingerprint {fingerprint}); pin it with "
                "--tracker-fingerprint {fingerprint}",
                tracker=tracker.address,
                fingerprint=tracker.tracker_identity,
            )
        )


def _other_names(tracker: TrackerClient, name: str, sources: list[Source]) -> list[Source]:
    """The sources of the bytes of `name`'s versions under other names (a search by content
    for each of the first MAX_CONTENT_SEARCHES versions).
    """
    others: list[Source] = []
    for version in versions_of(sources)[:MAX_CONTENT_SEARCHES]:
        found = tracker.find(sha256=version.sha256)
        others += [s for s in found.sources if s.name != name and version.matches(s.sha256)]
    return others


def _tell_other_names(name: str, sources: list[Source], others: list[Source]) -> None:
    """Say which peers have the bytes of `name` under other names (a download uses them)."""
    for version in versions_of(sources)[:MAX_CONTENT_SEARCHES]:
        mine = {s.peer for s in version.sources}
        extra = [s for s in others if s.sha256 == version.sha256 and s.peer not in mine]
        if not extra:
            continue
        peers = list(dict.fromkeys(s.peer for s in extra))
        names = list(dict.fromkeys(s.name for s in extra))
        _notice(
            tr(
                "{count} peers have these bytes (sha256 {sha256}): {more} more under other names "
                "({names}); a download uses them too",
                count=len(mine | set(peers)),
                sha256=version.sha256,
                more=len(peers),
                names=", ".join(names[:MAX_PEERS_SHOWN])
                + (" …" if len(names) > MAX_PEERS_SHOWN else ""),
            )
        )


def _browse(args: argparse.Namespace) -> int:
    peer, folder = args.peer
    tracker = TrackerClient(args.tracker, transport=flags.transport(args, None))
    tree = TreeLines()
    try:
        for number, page in enumerate(tracker.browse(peer, folder)):
            if number == 0:
                _tell_trust(args, tracker)
            for line in tree.feed((f.name, f.size) for f in page):
                console.show(line)
    finally:
        tracker.close()
    console.show(shares_line(peer, folder, tree.files, tree.size))
    return ExitCode.OK


def _notice(message: str) -> None:
    console.show(f"napshare-peer: {message}", file=sys.stderr)


def _download(args: argparse.Namespace) -> int:
    folder = SharedFolder(Path(args.dir))
    tracker = TrackerClient(args.tracker, transport=flags.transport(args, folder.root))
    options = flags.download_options(
        args,
        preferred=args.source,
        force=args.force,
        sha256=args.sha256 or "",
        pieces_root=args.root or "",
        verify_sha256=args.verify_sha256,
    )
    cancel = _signals_cancel()
    downloader = Downloader(folder, tracker, rate=TokenBucket(args.max_download_rate))
    try:
        reporter = reporter_for(sys.stderr, on_notice=_notice)
        result = downloader.download(args.name, options, reporter, cancel)
    except (KeyboardInterrupt, CancelledError):
        return _fail(
            tr(
                "download of {name} interrupted; run the same command again to resume it",
                name=args.name,
            ),
            ExitCode.INTERRUPTED,
        )
    finally:
        downloader.close()
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
    if options.verify_sha256 or options.sha256:
        console.show(tr("sha256 {sha256}: checked, the whole file has it", sha256=result.sha256))
    resumed = resumed_line(result)
    if resumed is not None:
        _notice(resumed)
    return ExitCode.OK


def _download_folder(args: argparse.Namespace) -> int:
    peer, folder = args.folder
    destination = SharedFolder(Path(args.dir))
    tracker = TrackerClient(args.tracker, transport=flags.transport(args, destination.root))
    options = flags.download_options(args, force=args.force)
    cancel = _signals_cancel()
    downloader = Downloader(destination, tracker, rate=TokenBucket(args.max_download_rate))
    plan: FolderPlan | None = None
    done = 0
    try:
        plan = plan_folder(
            downloader,
            peer,
            folder,
            force=args.force,
            on_checking=lambda count: _notice(checking_line(count, args.dir)),
        )
        _notice(folder_plan_line(plan, args.dir))
        count = len(plan.files)

        def reporter(position: int, file: Source) -> Reporter:
            _notice(file_of_line(position, count, file.name))
            return reporter_for(sys.stderr, on_notice=_notice)

        for result in download_folder(downloader, plan, options, reporter, cancel):
            done += 1
            console.show(downloaded_line(result, args.dir))
            resumed = resumed_line(result)
            if resumed is not None:
                _notice(resumed)
    except (KeyboardInterrupt, CancelledError):
        return _fail(folder_stopped_line(plan, folder, done, None), ExitCode.INTERRUPTED)
    except ClientError as error:
        if plan is None:
            raise
        return _fail(folder_stopped_line(plan, folder, done, error), error.exit_code)
    finally:
        downloader.close()
        tracker.close()
    console.show(folder_done_line(plan, args.dir))
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
