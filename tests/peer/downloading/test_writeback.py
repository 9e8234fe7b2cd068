"""Writeback behind a download: the pages written are dropped once on disk and read, a missing
sync_file_range falls back, and a failed writeback is never trusted later."""

import ctypes
import errno
import hashlib
import mmap
import os
from pathlib import Path

import pytest
from napshare.peer.downloading import writeback
from napshare.peer.downloading.partfile import PartFile
from napshare.peer.downloading.pieces import PieceLayer
from napshare.peer.downloading.writeback import SyncFileRange, Writeback
from napshare.peer.errors import FolderProblemError
from napshare.peer.folder.store import digests_of

from tests.support.downloads import part_path
from tests.support.files import MIB
from tests.support.waiting import wait_until

KIB = 1024
PAGE = mmap.PAGESIZE
WINDOW = 256 * KIB

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int64,
]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


def resident(path: Path) -> bytes:
    """Per page of the file, 1 when it is in the page cache (mincore of a mapping)."""
    size = path.stat().st_size
    fd = os.open(path, os.O_RDONLY)
    try:
        address = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert address not in (None, ctypes.c_void_p(-1).value)
        try:
            pages = (size + PAGE - 1) // PAGE
            vector = (ctypes.c_ubyte * pages)()
            assert _libc.mincore(address, size, vector) == 0
            return bytes(flag & 1 for flag in vector)
        finally:
            _libc.munmap(address, size)
    finally:
        os.close(fd)


def pages_of(path: Path, start: int, end: int) -> bytes:
    return resident(path)[start // PAGE : end // PAGE]


@pytest.fixture
def drops_pages(tmp_path: Path) -> None:
    """Skip where the file system keeps clean pages DONTNEED asks to drop (tmpfs)."""
    probe = tmp_path / "probe"
    probe.write_bytes(os.urandom(64 * KIB))
    fd = os.open(probe, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    if any(resident(probe)):
        pytest.skip("this file system keeps clean pages in memory")


def write_in_windows(path: Path, windows: int, writer: Writeback, fd: int, reader_at: int) -> int:
    """Write `windows` windows in 64 KiB chunks, telling `writer` after each; the size."""
    chunk = os.urandom(64 * KIB)
    end = 0
    while end < windows * WINDOW:
        os.pwrite(fd, chunk, end)
        end += len(chunk)
        writer.wrote(end, min(end, reader_at))
    return end


@pytest.mark.usefixtures("drops_pages")
def test_pages_behind_the_writeback_leave_the_page_cache(tmp_path: Path) -> None:
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        writer = Writeback(fd, window=WINDOW)
        size = write_in_windows(path, 8, writer, fd, reader_at=8 * WINDOW)
        assert size == writer.started
        assert not any(pages_of(path, 0, size - 2 * WINDOW))  # waited for, then dropped
        assert all(pages_of(path, size - WINDOW, size))  # its writeback only just started
    finally:
        os.close(fd)


@pytest.mark.usefixtures("drops_pages")
def test_pages_a_reader_still_needs_stay(tmp_path: Path) -> None:
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        writer = Writeback(fd, window=WINDOW)
        reader_at = 3 * WINDOW
        size = write_in_windows(path, 8, writer, fd, reader_at=reader_at)
        assert not any(pages_of(path, 0, reader_at))
        assert all(pages_of(path, reader_at, size))
    finally:
        os.close(fd)


def _failing(code: int, calls: list[int]) -> SyncFileRange:
    def sync_file_range(fd: int, offset: int, length: int, flags: int) -> int:
        calls.append(flags)
        ctypes.set_errno(code)
        return -1

    return sync_file_range


@pytest.mark.usefixtures("drops_pages")
def test_without_sync_file_range_it_falls_back_to_fadvise(tmp_path: Path) -> None:
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    calls: list[int] = []
    try:
        writer = Writeback(fd, window=WINDOW, sync_file_range=_failing(errno.ENOSYS, calls))
        chunk = os.urandom(WINDOW)
        for number in range(6):
            os.pwrite(fd, chunk, number * WINDOW)
            os.fsync(fd)  # so that the drop behind, which no longer waits, finds clean pages
            writer.wrote((number + 1) * WINDOW, (number + 1) * WINDOW)
        assert len(calls) == 1  # tried once, then never again
        assert not any(pages_of(path, 0, 4 * WINDOW))
        assert path.read_bytes() == chunk * 6
    finally:
        os.close(fd)


def test_a_failed_writeback_is_an_error(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        writer = Writeback(fd, window=WINDOW, sync_file_range=_failing(errno.ENOSPC, []))
        os.pwrite(fd, os.urandom(WINDOW), 0)
        with pytest.raises(OSError, match="No space left") as raised:
            writer.wrote(WINDOW, WINDOW)
        assert raised.value.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_the_part_is_never_committed_after_a_failed_writeback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Waiting for a writeback that failed clears the error the fsync before the commit
    # would have reported: the part must remember it.
    monkeypatch.setattr(writeback, "WINDOW", WINDOW)
    monkeypatch.setattr(writeback, "_LIBC_SYNC_FILE_RANGE", _failing(errno.EIO, []))
    data = os.urandom(2 * WINDOW)
    part = PartFile(tmp_path, "f.bin", len(data), hashlib.sha256(data).hexdigest(), force=False)
    try:
        with pytest.raises(FolderProblemError, match="Input/output error"):
            part.write(0, data)
        with pytest.raises(FolderProblemError, match="Input/output error"):
            part.commit(replace=False)
        assert not (tmp_path / "f.bin").exists()
    finally:
        part.close()


@pytest.mark.usefixtures("drops_pages")
def test_a_download_does_not_keep_the_whole_file_in_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each page kept is a page the next download must take from elsewhere (reclaim, or on a
    # VM a fault on the host): only the last few windows may stay.
    monkeypatch.setattr(writeback, "WINDOW", WINDOW)
    data = os.urandom(64 * WINDOW)
    part = PartFile(tmp_path, "f.bin", len(data), hashlib.sha256(data).hexdigest(), force=False)
    try:
        for offset in range(0, len(data), 64 * KIB):
            # The hash thread is let keep up, as it does at a network's pace; the pages it
            # has not read yet are kept, so a lagging one would keep more.
            def caught_up(at: int = offset) -> bool:
                return part._hash is not None and part._hash.hashed >= at

            wait_until(caught_up)
            part.write(offset, data[offset : offset + 64 * KIB])
        assert part.verify()
        part.commit(replace=False)
    finally:
        part.close()
    kept = sum(resident(tmp_path / "f.bin")) * PAGE
    assert kept <= len(data) // 2


@pytest.mark.usefixtures("drops_pages")
def test_two_streams_filling_a_part_from_two_places_each_leave_only_their_last_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the whole-file hash, nothing reads the part back: the writeback follows each
    # run of pieces, not only the verified prefix, so the second stream's half does not stay
    # in the page cache until the first stream reaches it.
    monkeypatch.setattr(writeback, "WINDOW", WINDOW)
    size = 32 * MIB
    source = tmp_path / "source"
    source.write_bytes(os.urandom(size))
    fd = os.open(source, os.O_RDONLY)
    try:
        digests = digests_of(fd, size)
    finally:
        os.close(fd)
    data = memoryview(source.read_bytes())
    layer = PieceLayer.checked(size, digests.pieces_root, MIB, digests.layer)
    target = tmp_path / "target"
    target.mkdir()
    part = PartFile(
        target, "f.bin", size, digests.sha256, force=False, pieces_root=digests.pieces_root
    )
    try:
        part.attach(layer)
        half = size // MIB // 2
        kept = 0  # the most pages of the part in the page cache at once
        for index in range(half):
            for piece in (index, half + index):
                assert part.put_piece(piece, [data[piece * MIB : (piece + 1) * MIB]])
            kept = max(kept, sum(resident(part_path(target, "f.bin"))) * PAGE)
        assert part.verify()
        part.commit(replace=False)
    finally:
        part.close()
    assert kept <= size // 4
