"""Streaming writeback of a part: each window's writeback started, the ones behind it waited
for and their pages dropped, so a download holds a few windows of page cache, not the file.
"""

import ctypes
import errno
import os
from collections.abc import Callable

# Writeback is started every WINDOW bytes written. 8, 32 and 128 MiB gave the same times
# (tests/bench/NOTES.md, "writeback window"); 32 MiB makes few calls and keeps about two
# windows of page cache.
WINDOW = 32 * 1024 * 1024

# linux/fs.h: SYNC_FILE_RANGE_WAIT_BEFORE, _WRITE, _WAIT_AFTER
_WAIT_BEFORE, _WRITE, _WAIT_AFTER = 1, 2, 4
_UNSUPPORTED = frozenset({errno.ENOSYS, errno.EPERM})  # no such call here (or a filter denies it)

SyncFileRange = Callable[[int, int, int, int], int]  # fd, offset, length, flags: 0, or -1 and errno


def libc_sync_file_range() -> SyncFileRange | None:
    """The C library's sync_file_range (Python's os lacks it), or None when there is none."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_LIBC_SYNC_FILE_RANGE = libc_sync_file_range()


class Writeback:
    """The writeback of one file written from `start` on, mostly in order.

    `wrote` starts writeback of each new window without waiting (the disk works while the
    next bytes arrive), then waits for the windows before it and drops their pages, but only
    those a reader still to come (the whole-file hash) is done with. Dropped pages go back to
    the allocator and take the next window's bytes; without that, each window takes pages
    the kernel must first find (reclaim), and in a VM whose host took freed pages back
    (free page reporting) each first touch of one costs a fault on the host, billed as this
    process's system time. Without sync_file_range, POSIX_FADV_DONTNEED starts the writeback
    (Linux's starts it for dirty pages) and drops behind only what is written by then.
    """

    def __init__(
        self,
        fd: int,
        start: int = 0,
        *,
        window: int | None = None,
        sync_file_range: SyncFileRange | None = None,
    ) -> None:
        """`window` defaults to WINDOW, `sync_file_range` to the C library's."""
        self._fd = fd
        self._window = WINDOW if window is None else window
        self._sync = _LIBC_SYNC_FILE_RANGE if sync_file_range is None else sync_file_range
        self.started = start  # writeback was started for the bytes before this
        self._dropped = start  # the pages before this are on disk and out of the page cache

    def restart(self, at: int) -> None:
        """The bytes from `at` on are to be written again (or for the first time)."""
        self.started = at
        self._dropped = min(self._dropped, at)

    def wrote(self, end: int, done_with: int) -> None:
        """The bytes before `end` are written; a later reader needs none before `done_with`.
        Raises OSError when writing back failed (a full disk, say).
        """
        if end - self.started < self._window:
            return
        if not self._call(self.started, end - self.started, _WRITE):
            os.posix_fadvise(self._fd, self.started, end - self.started, os.POSIX_FADV_DONTNEED)
        behind = min(self.started, done_with)
        if behind > self._dropped:
            length = behind - self._dropped
            self._call(self._dropped, length, _WAIT_BEFORE | _WRITE | _WAIT_AFTER)
            os.posix_fadvise(self._fd, self._dropped, length, os.POSIX_FADV_DONTNEED)
            self._dropped = behind
        self.started = end

    def _call(self, offset: int, length: int, flags: int) -> bool:
        """sync_file_range; False when there is none (from now on, for this file)."""
        if self._sync is None:
            return False
        if self._sync(self._fd, offset, length, flags) == 0:
            return True
        code = ctypes.get_errno()
        if code in _UNSUPPORTED:
            self._sync = None
            return False
        raise OSError(code, os.strerror(code))
