"""Files replaced whole inside a folder held by descriptor: never half written, never through a
symlink, owner-only. The one way the peer and the tracker write their small state files.
"""

import contextlib
import os
import secrets


def replace_at(dir_fd: int, name: str, data: bytes, *, sync: bool = True) -> None:
    """Make `name` in the folder `dir_fd` hold exactly `data` (mode 0600).

    `data` goes to a new temporary file first (O_EXCL, O_NOFOLLOW), fsynced when `sync`, and
    is renamed over `name`; on any failure the temporary file is removed and the OSError
    raised, and `name` is as it was.
    """
    temp = f".{name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temp, flags, 0o600, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)
        raise
