"""Names of the protocol (relative paths, common.names) inside a folder held by descriptor:
opened one segment at a time, never through a symlink, so nothing outside the folder is
ever read or written whatever a name says or whoever changes the folder meanwhile.
"""

import contextlib
import errno
import os
from collections.abc import Callable, Iterator, Sequence

from napshare.common.names import (
    MAX_DEPTH,
    SEPARATOR,
    STATE_DIR,
    InvalidNameError,
    check_file_name,
)

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FOLDER_MODE = 0o755  # folders a download makes (less the umask)
# What opening a path through something that is not a plain folder fails with: a symlink
# (ELOOP; O_NOFOLLOW on the last segment), a file (ENOTDIR).
NOT_A_FOLDER = frozenset({errno.ELOOP, errno.ENOTDIR})


def open_root(root: "os.PathLike[str] | str") -> int:
    """A descriptor of the folder `root` itself (which may be reached through symlinks)."""
    return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def open_folder(root_fd: int, folders: Sequence[str], *, create: bool = False) -> int:
    """A descriptor of the folder `folders` (segments, outermost first) inside `root_fd`,
    opened segment by segment without following a symlink; with `create`, folders that are
    missing are made. Raises OSError whose `filename` is the folder at fault (from the
    root): ELOOP or ENOTDIR when it is a symlink or no folder, ENOENT when it is missing
    (without `create`).
    """
    fd = os.dup(root_fd)
    try:
        for depth, segment in enumerate(folders, start=1):
            try:
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(segment, FOLDER_MODE, dir_fd=fd)
                inner = os.open(segment, DIR_FLAGS, dir_fd=fd)
            except OSError as error:
                # Name the folder at fault, from the root: `semana1`, not the whole name.
                raise OSError(
                    error.errno, error.strerror, SEPARATOR.join(folders[:depth])
                ) from None
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def split(name: str) -> tuple[list[str], str]:
    """The folders of a valid name, outermost first, and its last segment."""
    *folders, leaf = name.split(SEPARATOR)
    return folders, leaf


def open_beneath(root_fd: int, name: str, flags: int, mode: int = 0o644) -> int:
    """Open the valid name `name` inside `root_fd` with `flags` (O_NOFOLLOW added), through
    folders opened as open_folder does. Raises OSError.
    """
    folders, leaf = split(name)
    if not folders:
        return os.open(leaf, flags | os.O_NOFOLLOW, mode, dir_fd=root_fd)
    folder_fd = open_folder(root_fd, folders)
    try:
        return os.open(leaf, flags | os.O_NOFOLLOW, mode, dir_fd=folder_fd)
    finally:
        os.close(folder_fd)


def is_state_dir(segment: str) -> bool:
    """Whether `segment` names napshare's own folder (in any case): never shared or entered."""
    return segment.lower() == STATE_DIR


ErrorHandler = Callable[[str, OSError], None]


def walk_files(root_fd: int, on_error: ErrorHandler) -> Iterator[tuple[str, int, str]]:
    """Every regular file below `root_fd` that may be shared, as (name, the descriptor of its
    folder, its last segment), folder by folder; the descriptor is valid until the next item.

    Symlinks are neither shared nor entered, nor are FIFOs, devices, sockets or napshare's
    own folder; folders whose names the protocol does not allow, or deeper than MAX_DEPTH
    segments, are not entered. A folder that cannot be listed is passed to
    `on_error(path, error)` and skipped. The names are not checked: the caller does.
    """
    stack: list[tuple[str, int]] = [("", os.dup(root_fd))]
    try:
        while stack:
            prefix, fd = stack.pop()
            try:
                yield from _files_in(prefix, fd, stack, on_error)
            finally:
                os.close(fd)
    finally:
        for _, fd in stack:
            os.close(fd)


def _files_in(
    prefix: str, fd: int, stack: list[tuple[str, int]], on_error: ErrorHandler
) -> Iterator[tuple[str, int, str]]:
    depth = prefix.count(SEPARATOR)
    try:
        with os.scandir(fd) as listing:
            entries = list(listing)
    except OSError as error:
        on_error(prefix or ".", error)
        return
    for entry in entries:
        if is_state_dir(entry.name):
            continue
        try:
            if entry.is_symlink():
                continue
            if entry.is_dir(follow_symlinks=False):
                if depth + 1 < MAX_DEPTH and _allowed(prefix + entry.name):
                    try:
                        inner = os.open(entry.name, DIR_FLAGS, dir_fd=fd)
                    except OSError as error:
                        on_error(prefix + entry.name, error)
                        continue
                    stack.append((prefix + entry.name + SEPARATOR, inner))
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
        except OSError:
            continue  # gone meanwhile
        yield prefix + entry.name, fd, entry.name


def _allowed(path: str) -> bool:
    try:
        check_file_name(path)
    except InvalidNameError:
        return False
    return True
