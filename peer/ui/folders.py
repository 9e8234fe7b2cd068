"""The lines `browse` and a folder download print, in the command line and the menu alike."""

from napshare.common.console import localized, tr
from napshare.common.names import check_folder
from napshare.peer.downloading.folder_job import FolderPlan
from napshare.peer.errors import ClientError
from napshare.peer.units import human


def shown_folder(folder: str) -> str:
    """A folder as the lines show it: `semana1/`, or `/` for the top of a peer's shares."""
    return check_folder(folder) or "/"


def files_count(count: int) -> str:
    """`1 file`, `3 files`."""
    return tr("1 file") if count == 1 else tr("{count} files", count=count)


def shares_line(peer: str, folder: str, files: int, size: int) -> str:
    """The last line of a browse: how many files, how many bytes, whose."""
    if not files and not folder:
        return tr("peer {peer} shares no file", peer=peer)
    if not files:
        return tr(
            "peer {peer} shares no file under {folder}", peer=peer, folder=shown_folder(folder)
        )
    if not folder:
        return tr(
            "{files}, {size}, shared by {peer}",
            files=files_count(files),
            size=human(size),
            peer=peer,
        )
    return tr(
        "{files}, {size}, under {folder} of {peer}",
        files=files_count(files),
        size=human(size),
        folder=shown_folder(folder),
        peer=peer,
    )


def checking_line(count: int, destination: str) -> str:
    """Said before the files already in the destination are looked at (hashed if new)."""
    return tr(
        "checking the {files} of the folder already in {destination}",
        files=files_count(count),
        destination=destination,
    )


def file_of_line(position: int, count: int, name: str) -> str:
    """Said before each file of a folder download."""
    return tr("file {position} of {count}: {name}", position=position, count=count, name=name)


def folder_plan_line(plan: FolderPlan, destination: str) -> str:
    """What a folder download is about to do."""
    folder = shown_folder(plan.prefix)
    missing = plan.missing
    size = human(sum(f.size for f in missing))
    if not plan.present:
        return tr(
            "downloading {files} ({size}) of {folder} from {peer} into {destination}",
            files=files_count(len(missing)),
            size=size,
            folder=folder,
            peer=plan.peer,
            destination=destination,
        )
    if not missing:
        return tr(
            "all {count} files of {folder} are already in {destination}",
            count=len(plan.files),
            folder=folder,
            destination=destination,
        )
    return tr(
        "{present} of {count} files of {folder} are already in {destination}; downloading "
        "the other {missing} ({size}) from {peer}",
        present=len(plan.present),
        count=len(plan.files),
        folder=folder,
        destination=destination,
        missing=len(missing),
        size=size,
        peer=plan.peer,
    )


def folder_stopped_line(
    plan: FolderPlan | None, folder: str, done: int, error: ClientError | None
) -> str:
    """Why a folder download stopped (interrupted when `error` is None), how far it got, and
    how to go on.
    """
    shown = shown_folder(folder)
    if plan is None:
        return tr("download of folder {folder} interrupted", folder=shown)
    count = len(plan.missing)
    if error is None:
        return tr(
            "download of folder {folder} interrupted after {done} of {count} files; run the "
            "same command again to resume it",
            folder=shown,
            done=done,
            count=count,
        )
    return tr(
        "download of folder {folder} stopped after {done} of {count} files: {error}; run the "
        "same command again to resume it",
        folder=shown,
        done=done,
        count=count,
        error=localized(error),
    )


def folder_done_line(plan: FolderPlan, destination: str) -> str:
    """The last line of a folder download, after the original's line for each file."""
    return tr(
        "Folder {folder} downloaded successfully into folder {destination}: {files}, {size}",
        folder=shown_folder(plan.prefix),
        destination=destination,
        files=files_count(len(plan.files)),
        size=human(plan.size),
    )
