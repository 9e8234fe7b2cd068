"""Download every file under one folder of one peer's shares as one job: the tracker lists
them (Browse), then each is fetched and verified in turn, as Downloader.download fetches any
file, under its own name (its path) in the destination.

The job keeps no state of its own, so it resumes as a whole: run again, it lists the folder
again, skips the files already in the destination with the sha256 listed, and the file that
was cut short resumes from its part.
"""

import dataclasses
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from napshare.common.console import tr
from napshare.common.names import check_folder
from napshare.peer.downloading.engine import Downloader, DownloadOptions, DownloadResult
from napshare.peer.downloading.reporting import Reporter
from napshare.peer.errors import AlreadyExistsError, NotFoundError
from napshare.peer.folder.store import NotSharedError
from napshare.peer.tracker_client import Source

# Names of files in the way that an error message lists; it says how many more there are.
SHOWN_IN_THE_WAY = 5


@dataclass(frozen=True)
class FolderPlan:
    """What a folder download will do: every file the peer lists under the folder, in name
    order, and those of them already in the destination with the sha256 listed.
    """

    peer: str
    prefix: str  # the folder's names start with it: "semana1/", or "" for every file
    files: list[Source]
    present: frozenset[str]

    @property
    def missing(self) -> list[Source]:
        """The files still to download, in name order."""
        return [f for f in self.files if f.name not in self.present]

    @property
    def size(self) -> int:
        """The bytes of every file listed."""
        return sum(f.size for f in self.files)


def plan_folder(
    downloader: Downloader,
    peer: str,
    folder: str,
    *,
    force: bool = False,
    on_checking: Callable[[int], None] | None = None,
) -> FolderPlan:
    """List what `peer` shares under `folder` and see which files the destination has.

    `on_checking(count)` is called before the files already in the destination are looked
    at (a file hashed for the first time takes a while). Raises NotFoundError when the peer
    shares nothing there, AlreadyExistsError when files of the folder are in the destination
    with other contents (unless `force`: then they are downloaded again and replaced), or
    another ClientError.
    """
    prefix = check_folder(folder)
    files = [file for page in downloader.tracker.browse(peer, prefix) for file in page]
    if not files:
        raise NotFoundError(
            tr("peer {peer} shares no file under {folder}", peer=peer, folder=prefix or "/")
        )
    destination = downloader.folder
    there = [f for f in files if destination.has(f.name)]
    if there and on_checking is not None:
        on_checking(len(there))
    present: set[str] = set()
    in_the_way: list[str] = []
    for file in there:
        try:
            held = destination.get(file.name)
        except NotSharedError:
            in_the_way.append(file.name)  # a folder, a symlink, a FIFO...
            continue
        if held.sha256 == file.sha256:
            present.add(file.name)
        else:
            in_the_way.append(file.name)
    if in_the_way and not force:
        shown = " ".join(in_the_way[:SHOWN_IN_THE_WAY])
        if len(in_the_way) > SHOWN_IN_THE_WAY:
            shown += " " + tr("and {count} more", count=len(in_the_way) - SHOWN_IN_THE_WAY)
        raise AlreadyExistsError(
            tr(
                "{count} files of {folder} are in {destination} with other contents ({names}); "
                "use --force to download them again and replace them",
                count=len(in_the_way),
                folder=prefix or "/",
                destination=destination.root,
                names=shown,
            )
        )
    return FolderPlan(peer, prefix, files, frozenset(present))


def download_folder(
    downloader: Downloader,
    plan: FolderPlan,
    options: DownloadOptions,
    reporter_for: Callable[[int, Source], Reporter],
    cancel: threading.Event | None = None,
) -> Iterator[DownloadResult]:
    """Download the plan's missing files in name order, yielding each once it is verified and
    in place; the first failure ends the job (a ClientError, the unfinished file's part kept).

    `reporter_for(position, file)` gives the reporter of the file at `position` (from 1) of
    all the plan's files. Each file is the version the peer listed (its sha256 and pieces
    root), whatever other peers share under the same name; the peer is asked first, and the
    others that share that version only when it fails.
    """
    for position, file in enumerate(plan.files, start=1):
        if file.name not in plan.present:
            pinned = dataclasses.replace(
                options, preferred=plan.peer, sha256=file.sha256, pieces_root=file.pieces_root
            )
            yield downloader.download(file.name, pinned, reporter_for(position, file), cancel)
