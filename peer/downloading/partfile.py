"""A download in progress: its bytes and note in `<dir>/.napshare/partial/`, and its hash.

The part (`<key>.part`) and its note (`<key>.json`: which file (size, sha256, pieces root)
the part holds pieces of, which of its pieces are verified, and which peers sent them) share
a key made from the name, so they never take a name the user's files could have; a later run
resumes the part only when the sources still have that file. A file with a pieces root is
kept piece by piece, in any order (peer.downloading.pieces): a piece is written only once its
bytes match its hash, so a resume fetches only what is missing, and several streams may fill
one part at once; the part is complete and good once every piece is. The pieces root is the
file's identity, so its whole sha256 is not computed here unless asked for (`whole_sha256`):
it is left for afterwards, off the receiving path. A file without a root is appended to in
order, and only its sha256 says whether it is good. The only change made to the user's files
is the final link of the verified part to `<dir>/<name>`, on the same file system, so atomic.
Every path is opened relative to a directory descriptor without following symlinks, so
nothing is ever written outside the folder.
"""

import base64
import contextlib
import errno
import fcntl
import json
import logging
import os
import secrets
import stat
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from napshare.common import merkle
from napshare.common.console import tr
from napshare.common.files import replace_at
from napshare.common.names import check_file_name
from napshare.peer.downloading.pieces import BadPieceError, PieceLayer
from napshare.peer.downloading.trailing_hash import TrailingHash
from napshare.peer.downloading.writeback import Writeback
from napshare.peer.errors import (
    AlreadyExistsError,
    DiskFullError,
    DownloadInProgressError,
    FolderProblemError,
)
from napshare.peer.folder import beneath
from napshare.peer.folder.layout import (
    NOTE_SUFFIX,
    PART_SUFFIX,
    PARTIAL_DIR,
    STATE_DIR,
    partial_key,
)

logger = logging.getLogger(__name__)

_PARTIAL_PATH = (STATE_DIR, PARTIAL_DIR)  # the folder of parts and notes, from the root down
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_NOTE_BYTES = 1024 * 1024
# The note records the verified pieces this often (after their bytes reach the disk), so a
# crash loses little; a clean stop records them exactly.
NOTE_INTERVAL = 64 * 1024 * 1024
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_IOV_MAX = 1024  # Linux's limit on the buffers of one pwritev (sysconf SC_IOV_MAX)
# Bytes read at once where a piece is checked or copied on disk: memory does not grow with
# the piece size, which a peer's listing decides.
DISK_BUFFER = 1024 * 1024
SCRATCH_SUFFIX = ".scratch"  # in PARTIAL_DIR, only where O_TMPFILE is not supported
_READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


@dataclass(frozen=True)
class Spilled:
    """A whole piece received into a scratch file (PartFile.scratch): `length` bytes at
    `offset` of `fd`, which hash to `digest` (the receiver hashed them on the way).
    """

    fd: int
    offset: int
    length: int
    digest: bytes


@dataclass
class Note:
    """What a .part holds pieces of, which of them are verified, who sent its bytes.

    `pieces` is a bitmap (base64, piece i in bit 7 - i % 8 of byte i // 8) of the pieces
    checked against the layer of `pieces_root` and on disk. `verified` is what notes of
    earlier versions kept instead: the bytes from the start that are such pieces. A file
    without a root has neither (only its sha256 is checked).
    """

    name: str
    size: int
    sha256: str
    sources: list[str] = field(default_factory=list)
    pieces_root: str = ""
    verified: int = 0
    pieces: str | None = None


class PartFile:
    """The open .part of one file: put verified pieces in it (or append, without a root),
    then verify the whole and commit.

    The whole-file sha256 follows the bytes as they are written (a TrailingHash) only for a
    file without a root, or with `whole_sha256`; a file with a root is whole once each of its
    pieces matched the layer.

    `have` is how many of the file's bytes are kept: the verified pieces (resumed from an
    earlier run, or put since); without a root, the bytes from the start. The layer must be
    given (`attach`) before the first piece, unless the file has one piece or less.
    `put_piece` may be called from several threads at once.
    """

    def __init__(
        self,
        root: Path,
        name: str,
        size: int,
        sha256: str,
        *,
        force: bool,
        pieces_root: str = "",
        whole_sha256: bool = False,
    ) -> None:
        self.name = check_file_name(name)
        key = partial_key(name)
        self.part_name = key + PART_SUFFIX  # in the partial folder, as the note is
        self._note_name = key + NOTE_SUFFIX
        self.size = size
        self.sha256 = sha256
        self.pieces_root = pieces_root
        # Whether verify() checks the whole file's sha256 (always without a root).
        self.whole_sha256 = whole_sha256 or not pieces_root
        self.layer: PieceLayer | None = None
        self.have = 0
        self.resumed_from = 0  # the bytes an earlier run left that are kept (once checked)
        self._done = bytearray()  # per piece, once the layer is in: 1 when verified
        self._frontier = 0  # the first piece not verified: the whole-file hash follows it
        self._on_disk = 0  # bytes in the part from an earlier run (legacy notes: unchecked)
        self._noted_pieces: bytearray | None = None  # what the note said, until `attach`
        self._unnoted = 0  # bytes verified since the note last recorded the pieces
        self._finished = False  # committed or removed: the note is gone for good
        self._lock = threading.Lock()  # the pieces, the frontier, the hash feed
        self._note_lock = threading.Lock()  # one note write at a time
        self._writeback_lock = threading.Lock()  # one thread at a time waits for the disk
        self._root = root
        self._root_fd = _open_dir(root)
        self._writeback: Writeback  # once the part is open: behind the frontier
        # Without the whole-file hash, writeback follows each run of pieces put one after the
        # other (a stream's), by the index of the piece that would extend it.
        self._runs: dict[int, Writeback] = {}
        self._writeback_error: OSError | None = None  # writing back failed: nothing more noted
        self._fd = -1
        self._partial_fd = -1
        self._hash: TrailingHash | None = None
        try:
            if self._taken() and not force:
                raise AlreadyExistsError(
                    tr("{path} already exists; use --force to download it again", path=root / name)
                )
            self._partial_fd = self._open_partial_dir()
            self.note = self._start()
            if pieces_root:
                layer = PieceLayer.of_root(size, pieces_root)
                if layer is not None:
                    self.attach(layer)
        except BaseException:
            self.close()
            raise

    @property
    def _part_path(self) -> Path:
        return self._root.joinpath(*_PARTIAL_PATH, self.part_name)

    @property
    def sources(self) -> list[str]:
        """Every peer that sent bytes of this part, in this run or an earlier one."""
        return list(self.note.sources)

    def add_source(self, peer: str) -> None:
        """Record that `peer` is about to send bytes of this part (or just did)."""
        with self._note_lock:
            if peer in self.note.sources:
                return
            self.note.sources.append(peer)
            self._save_note()

    @property
    def needs_layer(self) -> bool:
        """Whether the piece layer must be attached before pieces may be put."""
        return bool(self.pieces_root) and self.layer is None

    def verified_pieces(self) -> bytearray:
        """Per piece, 1 when it is verified (a copy), once the layer is in."""
        with self._lock:
            return bytearray(self._done)

    def attach(self, layer: PieceLayer) -> None:
        """Check pieces with `layer` (already checked against the root) from now on.

        The pieces that hold bytes on disk (an earlier run wrote them) are checked there, and
        kept if good. Where the whole sha256 is checked too, the pieces the note lists are
        trusted (that check would catch one gone bad on disk) and only the others are read.
        """
        self.layer = layer
        count = len(layer.hashes)
        noted = self._noted_pieces or bytearray(count)
        prefix = min(self.note.verified, self._on_disk)  # what notes of earlier versions say
        if not self.whole_sha256:
            noted, prefix = bytearray(count), 0  # nothing after this checks them again
        self._done = bytearray(
            1 if (i < len(noted) and noted[i]) or layer.end_of(i) <= prefix else 0
            for i in range(count)
        )
        for index in range(count):
            if self._done[index] and layer.end_of(index) > self._on_disk:
                self._done[index] = 0  # the part was cut shorter than the note says
        rechecked = self._recheck(layer)
        self.have = sum(
            layer.end_of(i) - i * layer.piece_size for i in range(count) if self._done[i]
        )
        self.resumed_from = self.have
        self._frontier = self._done.find(0)
        if self._frontier < 0:
            self._frontier = count
        self._writeback.restart(self._frontier * layer.piece_size)
        self._runs.clear()
        self._on_disk = 0
        self._noted_pieces = None
        if rechecked:
            self._note_pieces()

    def put_piece(self, index: int, data: Sequence[memoryview] | Spilled) -> bool:
        """Keep piece `index`, whose bytes are `data` in order (or in a scratch file), if it
        is good and not kept yet.

        True when it was kept now; False when it was already there (another stream's).
        Raises BadPieceError when the bytes do not match the piece's hash (nothing written).
        """
        layer = self.layer
        if layer is None:
            raise RuntimeError("the piece layer must be attached before putting pieces")
        if self._done[index]:
            return False
        start = index * layer.piece_size
        length = layer.end_of(index) - start
        if isinstance(data, Spilled):
            good = data.length == length and data.digest == layer.hashes[index]
        else:
            good = layer.good(index, data)
        if not good:
            raise BadPieceError(self.name, index, start, layer.end_of(index))
        with self._lock:
            if self._done[index]:
                return False
            if isinstance(data, Spilled):
                self._copy_in(data, start)
                data = []  # the whole-file hash reads it back from the part
            else:
                self._write(start, data)
            self._done[index] = 1
            self.have += length
            self._unnoted += length
            followed = self._follow(index, data)
            run = None if self._hash is not None else self._run_of(index, start)
            note_now = self._unnoted >= NOTE_INTERVAL
            if note_now:
                self._unnoted = 0
        if run is None:
            self._write_back(followed)
        else:
            self._write_back(start + length, run)
        if note_now:
            self._note_pieces()
        return True

    def _run_of(self, index: int, start: int) -> Writeback:
        """The writeback of the run of pieces that piece `index` (at `start`) extends, or of
        a new one it starts. Called with the lock held.
        """
        run = self._runs.pop(index, None)
        if run is None:
            run = Writeback(self._fd, start)
        self._runs[index + 1] = run
        return run

    def scratch(self) -> int:
        """A new scratch file beside the part, read-write, already unlinked (O_TMPFILE where
        the file system has it): where a stream assembles pieces too large for memory.
        """
        try:
            return os.open(
                ".", os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600, dir_fd=self._partial_fd
            )
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                raise self._failure(error, self.have) from None
        name = f"{self.part_name}.{secrets.token_hex(8)}{SCRATCH_SUFFIX}"
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, 0o600, dir_fd=self._partial_fd)
            os.unlink(name, dir_fd=self._partial_fd)
        except OSError as error:
            raise self._failure(error, self.have) from None
        return fd

    def write_scratch(self, fd: int, offset: int, data: memoryview) -> None:
        """Write `data` at `offset` of the scratch file `fd` (FolderProblemError, such as
        DiskFullError, if it cannot be).
        """
        try:
            while data:
                count = os.pwrite(fd, data, offset)
                offset += count
                data = data[count:]
        except OSError as error:
            raise self._failure(error, self.have) from None

    def _copy_in(self, piece: Spilled, start: int) -> None:
        """Copy `piece` from its scratch file into the part at `start`, in the kernel where it
        can (copy_file_range), else through a bounded buffer; on failure, what was copied of
        it at the end of the part is cut off again (as _write does).
        """
        done = 0
        try:
            try:
                while done < piece.length:
                    count = os.copy_file_range(
                        piece.fd, self._fd, piece.length - done, piece.offset + done, start + done
                    )
                    if count == 0:
                        raise OSError(errno.EIO, "the scratch file ended early")
                    done += count
            except OSError as error:
                if error.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                buffer = memoryview(bytearray(min(DISK_BUFFER, piece.length)))
                while done < piece.length:
                    wanted = buffer[: min(len(buffer), piece.length - done)]
                    count = os.preadv(piece.fd, [wanted], piece.offset + done)
                    if count == 0:
                        raise OSError(errno.EIO, "the scratch file ended early") from None
                    self._write(start + done, [wanted[:count]])
                    done += count
            removed = os.fstat(self._fd).st_nlink == 0
        except OSError as error:
            with contextlib.suppress(OSError):
                if done and os.fstat(self._fd).st_size <= start + done:
                    os.ftruncate(self._fd, start)
            raise self._failure(error, self.have) from None
        if removed:
            raise self._removed()

    def _follow(self, index: int, data: Sequence[memoryview]) -> int:
        """Move the whole-file hash's frontier past `index` if it was there; the bytes before
        the new frontier (0 when it did not move) may be written back. Called with the lock
        held.
        """
        assert self.layer is not None
        if index != self._frontier:
            return 0  # read back from the part once the frontier reaches it
        at = index * self.layer.piece_size
        if self._hash is not None:
            for view in data:
                self._hash.feed(at, view)
                at += len(view)
        frontier = self._done.find(0, index)
        self._frontier = len(self._done) if frontier < 0 else frontier
        end = min(self.size, self._frontier * self.layer.piece_size)
        if self._hash is not None and end > at:
            self._hash.feed(end, memoryview(b""))  # the pieces there are read back
        return end

    def write(self, offset: int, data: bytes | memoryview) -> None:
        """Append `data` at `offset`, where the part ends now: a file without a pieces root."""
        if self.pieces_root:
            raise RuntimeError("a file with a pieces root is kept piece by piece (put_piece)")
        if offset != self.have:
            raise RuntimeError(f"writing at {offset}, but the part ends at {self.have}")
        view = memoryview(data)
        self._write(offset, [view])
        self.have = offset + len(view)
        assert self._hash is not None
        self._hash.feed(offset, view)
        self._write_back(self.have)

    def _write(self, offset: int, data: Sequence[memoryview]) -> None:
        """Write `data` in order from `offset`, all of it; on failure, what was written of it
        at the end of the part is cut off again (a full disk gets its space back).
        """
        views = [v for v in data if len(v)]
        at = offset
        try:
            while views:
                count = os.pwritev(self._fd, views[:_IOV_MAX], at)
                at += count
                while views and count >= len(views[0]):
                    count -= len(views[0])
                    views.pop(0)
                if count:
                    views[0] = views[0][count:]
            removed = os.fstat(self._fd).st_nlink == 0
        except OSError as error:
            with contextlib.suppress(OSError):
                if at > offset and os.fstat(self._fd).st_size <= at:
                    os.ftruncate(self._fd, offset)
            raise self._failure(error, self.have) from None
        if removed:
            raise self._removed()

    def _note_pieces(self) -> None:
        """Record the verified pieces in the note once their bytes are on disk."""
        with self._lock:
            done = bytes(self._done)
        self._check_writeback()
        try:
            os.fdatasync(self._fd)
        except OSError as error:
            raise self._failure(error, self.have) from None
        with self._note_lock:
            self.note.pieces = _bitmap(done)
            self.note.verified = 0
            self._save_note()

    def _recheck(self, layer: PieceLayer) -> bool:
        """Keep the good pieces an earlier run left on disk that the note does not list;
        whether any was found.
        """
        found = checked = 0
        for index in range(len(layer.hashes)):
            start, end = index * layer.piece_size, layer.end_of(index)
            if self._done[index] or not self._holds_data(start, end):
                continue
            checked += end - start
            if self._good_on_disk(layer, index, 0):
                self._done[index] = 1
                found += end - start
        if checked:
            logger.info(
                "%s: %d bytes an earlier run left checked on disk, %d of them good pieces",
                self.name,
                checked,
                found,
            )
        return found > 0

    def recheck_pieces(self) -> int:
        """Check every verified piece again on disk (the whole file failed its sha256): the
        bad ones go back to missing and the whole-file hash starts over; how many were bad.
        """
        layer = self.layer
        assert layer is not None
        bad = 0
        for index in range(len(layer.hashes)):
            if not self._done[index]:
                continue
            if not self._good_on_disk(layer, index, self.have):
                self._done[index] = 0
                self.have -= layer.end_of(index) - index * layer.piece_size
                bad += 1
        self._stop_hash()
        self._hash = self._new_hash()
        frontier = self._done.find(0)
        self._frontier = len(self._done) if frontier < 0 else frontier
        self._writeback.restart(min(self._writeback.started, self._frontier * layer.piece_size))
        self._runs.clear()
        if bad:
            self._note_pieces()
        return bad

    def _good_on_disk(self, layer: PieceLayer, index: int, kept: int) -> bool:
        """Whether piece `index` is whole in the part and matches its hash, read DISK_BUFFER
        bytes at a time (`kept`: the bytes to report as kept if reading fails).
        """
        start, end = index * layer.piece_size, layer.end_of(index)
        tree = merkle.TreeBuilder(layer.size, start)
        buffer = memoryview(bytearray(min(DISK_BUFFER, end - start)))
        at = start
        while at < end:
            wanted = buffer[: min(len(buffer), end - at)]
            try:
                count = os.preadv(self._fd, [wanted], at)
            except OSError as error:
                raise self._failure(error, kept) from None
            if count == 0:
                return False
            tree.update(wanted[:count])
            at += count
        return tree.layer == [layer.hashes[index]]

    def _holds_data(self, start: int, end: int) -> bool:
        """Whether the part may hold bytes of [start, end): written, not a hole."""
        if self._noted_pieces is not None:
            if end > self._on_disk:
                return False
            try:
                return os.lseek(self._fd, start, os.SEEK_DATA) < end
            except OSError:
                return False  # ENXIO: only a hole from `start` on
        return end <= self._on_disk  # a note of an earlier version: the bytes it left

    def _write_back(self, end: int, run: Writeback | None = None) -> None:
        """Let writeback follow the bytes before `end` (peer.downloading.writeback), keeping
        the pages the whole-file hash has not read yet; `run`: a run of pieces' own writeback
        instead of the frontier's. Without the lock, so that waiting for the disk holds up no
        other stream's pieces; a thread that finds another one waiting goes on, and a later
        piece catches up.
        """
        if not self._writeback_lock.acquire(blocking=False):
            return
        try:
            if run is not None:
                run.wrote(end, end)
            else:
                hashed = end if self._hash is None else self._hash.hashed
                self._writeback.wrote(end, hashed)
        except OSError as error:
            # Waiting for the writeback reported (and so cleared) the error a later fsync
            # would have seen: keep it, so no note or commit trusts these bytes.
            self._writeback_error = error
            raise self._failure(error, self.have) from None
        finally:
            self._writeback_lock.release()

    def _check_writeback(self) -> None:
        if self._writeback_error is not None:
            raise self._failure(self._writeback_error, self.have)

    def verify(self) -> bool:
        """True when the part is complete (so every piece matched the layer of its root)
        and, where it is checked (`whole_sha256`), its sha256 is the expected one.
        """
        if self.have != self.size:
            return False
        if self._hash is None:
            return True
        try:
            digest = self._hash.hexdigest(self.size)
        except OSError as error:
            raise FolderProblemError(
                tr("cannot read {path}: {error}", path=self._part_path, error=error)
            ) from None
        if digest != self.sha256:
            logger.warning("%s: got sha256 %s, expected %s", self.name, digest, self.sha256)
        return digest == self.sha256

    def commit(self, *, replace: bool) -> None:
        """Make the verified part durable and give it its final name, atomically.

        Without `replace`, a file that appeared under the final name meanwhile is kept and
        AlreadyExistsError raised.
        """
        self._check_writeback()
        try:
            os.fsync(self._fd)
            if os.fstat(self._fd).st_nlink == 0:
                raise self._removed()
            folders, leaf = beneath.split(self.name)
            try:
                folder_fd = beneath.open_folder(self._root_fd, folders, create=True)
            except OSError as error:
                if error.errno in beneath.NOT_A_FOLDER:
                    raise self._in_the_way(error) from None
                raise
            try:
                if replace:
                    os.replace(
                        self.part_name, leaf, src_dir_fd=self._partial_fd, dst_dir_fd=folder_fd
                    )
                else:
                    self._rename_without_replacing(folder_fd, leaf)
                os.fsync(folder_fd)
            finally:
                os.close(folder_fd)
            if folders:
                os.fsync(self._root_fd)  # the folders made on the way
            self._finished = True
        except OSError as error:
            if error.errno in _DISK_FULL | _READ_ONLY | {errno.ENOENT}:
                raise self._failure(error, self.have) from None
            raise FolderProblemError(
                tr(
                    "cannot put {name} in place in {folder}: {error}",
                    name=self.name,
                    folder=self._root,
                    error=error.strerror,
                )
            ) from None
        self._remove_note()

    def _rename_without_replacing(self, folder_fd: int, leaf: str) -> None:
        partial = self._partial_fd
        try:
            os.link(
                self.part_name,
                leaf,
                src_dir_fd=partial,
                dst_dir_fd=folder_fd,
                follow_symlinks=False,
            )
        except FileExistsError:
            raise AlreadyExistsError(
                tr(
                    "{path} appeared during the download; kept it, use --force to replace it",
                    path=self._root / self.name,
                )
            ) from None
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            # No hard links on this file system: check, then rename (a small race).
            if _exists(leaf, folder_fd):
                raise AlreadyExistsError(
                    tr("{path} appeared during the download; kept it", path=self._root / self.name)
                ) from None
            os.replace(self.part_name, leaf, src_dir_fd=partial, dst_dir_fd=folder_fd)
            return
        os.unlink(self.part_name, dir_fd=partial)

    def _taken(self) -> bool:
        """Whether a file (or anything) has the final name already; FolderProblemError when
        a folder on its way is a symlink or a file, through which nothing is ever written.
        """
        folders, leaf = beneath.split(self.name)
        try:
            folder_fd = beneath.open_folder(self._root_fd, folders)
        except FileNotFoundError:
            return False
        except OSError as error:
            if error.errno in beneath.NOT_A_FOLDER:
                raise self._in_the_way(error) from None
            raise self._failure(error, 0) from None
        try:
            return _exists(leaf, folder_fd)
        finally:
            os.close(folder_fd)

    def _in_the_way(self, error: OSError) -> FolderProblemError:
        """The error for a folder of the name that is a symlink or a file."""
        return FolderProblemError(
            tr(
                "cannot put {name} in {folder}: {path} is a symlink or a file, not a folder, "
                "and nothing is written through it; move it away and run the same download "
                "again (what was downloaded is kept)",
                name=self.name,
                folder=self._root,
                path=error.filename,
            )
        )

    def discard(self) -> None:
        """Throw the part's bytes away and start it again from zero, for the same file."""
        self._stop_hash()
        os.ftruncate(self._fd, 0)
        self.have = self._frontier = self._unnoted = self._on_disk = 0
        self._writeback.restart(0)
        self._runs.clear()
        if self.layer is not None:
            self._done = bytearray(len(self._done))
        with self._note_lock:
            self.note.sources.clear()
            self.note.verified = 0
            self.note.pieces = "" if self.layer is not None else None
            self._save_note()
        self._hash = self._new_hash()

    def remove(self) -> None:
        """Delete the part and its note (a download that cannot succeed)."""
        self._finished = True
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.part_name, dir_fd=self._partial_fd)
        self._remove_note()

    @property
    def empty(self) -> bool:
        """True when the part holds nothing worth resuming."""
        return self.have == 0 and self._on_disk == 0

    @property
    def finished(self) -> bool:
        """True once the part was committed or removed."""
        return self._finished

    def close(self) -> None:
        """Stop hashing and close descriptors; the part stays for a later resume. Idempotent.

        The note then records exactly the verified pieces.
        """
        self._stop_hash()
        if self._fd >= 0 and not self._finished and self.layer is not None:
            try:
                self._note_pieces()
            except (OSError, FolderProblemError) as error:
                logger.warning("could not record the verified pieces of %s: %s", self.name, error)
        for attribute in ("_fd", "_partial_fd", "_root_fd"):
            fd = getattr(self, attribute, -1)
            if fd >= 0:
                os.close(fd)
                setattr(self, attribute, -1)

    def _start(self) -> Note:
        note = self._load_note()
        wanted = Note(
            self.name,
            self.size,
            self.sha256,
            pieces_root=self.pieces_root,
            pieces="" if self.pieces_root else None,
        )
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        # A note of an earlier version has no root: its bytes are checked once the layer is in.
        same = (
            note is not None
            and (note.name, note.size, note.sha256) == (self.name, self.size, self.sha256)
            and note.pieces_root in ("", self.pieces_root)
        )
        if same and note is not None and note.pieces_root != self.pieces_root:
            note.pieces_root, note.verified, note.pieces = self.pieces_root, 0, None
        if not same:
            # Write the note before the part exists, so a part never lacks one.
            note = wanted
            self.note = note
            self._save_note()
        assert note is not None
        try:
            self._fd = os.open(self.part_name, flags, 0o644, dir_fd=self._partial_fd)
        except OSError as error:
            raise self._failure(error, 0) from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DownloadInProgressError(
                f"{self.name} is already being downloaded into {self._root} by another "
                "process; wait for it to finish, or stop it first"
            ) from None
        self._writeback = Writeback(self._fd)
        info = os.fstat(self._fd)
        if not stat.S_ISREG(info.st_mode):
            raise FolderProblemError(tr("{path} is not a regular file", path=self._part_path))
        kept = info.st_size if same else 0
        if kept > self.size:
            kept = 0
        if kept < info.st_size:
            os.ftruncate(self._fd, kept)
            note.sources.clear()
        self.note = note
        if self.pieces_root:
            # Trust the note for the pieces it lists; check the rest once the layer is in.
            self._on_disk = kept
            self._noted_pieces = _pieces_of(note.pieces) if note.pieces is not None else None
            if kept:
                logger.info("%s: resuming from %s", self.name, self.part_name)
        else:
            self.have = self.resumed_from = kept
            self._writeback.restart(kept)
            if kept:
                logger.info(
                    "%s: resuming after %d bytes already in %s", self.name, kept, self.part_name
                )
        self._hash = self._new_hash()
        return note

    def _open_partial_dir(self) -> int:
        fd = os.dup(self._root_fd)
        try:
            for part in _PARTIAL_PATH:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o700, dir_fd=fd)
                inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = inner
        except OSError as error:
            os.close(fd)
            if error.errno in _READ_ONLY | _DISK_FULL:
                raise self._failure(error, 0) from None
            raise FolderProblemError(
                tr(
                    "cannot keep download notes in {path}: {error}",
                    path=self._root / _PARTIAL_PATH[0],
                    error=error,
                )
            ) from None
        return fd

    def _load_note(self) -> Note | None:
        try:
            fd = os.open(
                self._note_name,
                os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                dir_fd=self._partial_fd,
            )
        except FileNotFoundError:
            return None
        except OSError as error:
            logger.warning("ignoring the note of %s: %s", self.part_name, error)
            return None
        try:
            with os.fdopen(fd, "rb") as source:
                document = json.loads(source.read(_MAX_NOTE_BYTES))
            return Note(
                str(document["name"]),
                int(document["size"]),
                str(document["sha256"]),
                [str(peer) for peer in document["sources"]],
                str(document.get("pieces_root", "")),
                int(document.get("verified", 0)),
                None if document.get("pieces") is None else str(document["pieces"]),
            )
        except (OSError, ValueError, TypeError, KeyError) as error:
            logger.warning("ignoring the note of %s: %s", self.part_name, error)
            return None

    def _save_note(self) -> None:
        payload = json.dumps(self.note.__dict__).encode()
        try:
            replace_at(self._partial_fd, self._note_name, payload)
        except OSError as error:
            raise self._failure(error, self.have) from None

    def _remove_note(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._note_name, dir_fd=self._partial_fd)

    def _failure(self, error: OSError, kept: int) -> FolderProblemError:
        """The one line that `error`, met while writing the part or its note, means."""
        if error.errno in _DISK_FULL:
            return DiskFullError(
                tr(
                    "the disk of {folder} is full: kept {kept} of {size} bytes of {name}; "
                    "free some space and run the same download again to resume it",
                    folder=self._root,
                    kept=kept,
                    size=self.size,
                    name=self.name,
                )
            )
        if error.errno in _READ_ONLY:
            return FolderProblemError(
                tr(
                    "cannot download into {folder}: it is read-only ({error})",
                    folder=self._root,
                    error=error.strerror,
                )
            )
        if error.errno == errno.ENOENT:
            return self._removed()
        return FolderProblemError(
            tr("cannot write {path}: {error}", path=self._part_path, error=error.strerror)
        )

    def _removed(self) -> FolderProblemError:
        return FolderProblemError(
            tr(
                "folder {folder} (or its {state}/) was removed during the download of {name}; "
                "stopped, nothing was kept",
                folder=self._root,
                state=STATE_DIR,
                name=self.name,
            )
        )

    def _new_hash(self) -> TrailingHash | None:
        """A whole-file sha256 that follows the part from its start, where it is checked."""
        return TrailingHash(self._fd) if self.whole_sha256 else None

    def _stop_hash(self) -> None:
        if self._hash is not None:
            self._hash.stop()
            self._hash = None


def noted_version(root: Path, name: str) -> tuple[int, str, str] | None:
    """The (size, sha256, pieces root) that the unfinished download of `name` into `root`
    holds pieces of, if there is one: read only, without following a symlink.
    """
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        for part in _PARTIAL_PATH:
            inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
        note = os.open(
            partial_key(name) + NOTE_SUFFIX, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
        )
        with os.fdopen(note, "rb") as source:
            document = json.loads(source.read(_MAX_NOTE_BYTES))
        return (
            int(document["size"]),
            str(document["sha256"]),
            str(document.get("pieces_root", "")),
        )
    except (OSError, ValueError, TypeError, KeyError):
        return None
    finally:
        os.close(fd)


def _open_dir(root: Path) -> int:
    try:
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise FolderProblemError(
            tr("folder {folder} cannot be opened: {error}", folder=root, error=error.strerror)
        ) from None


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _bitmap(done: bytes) -> str:
    """The note's form of per-piece flags: a bitmap, base64."""
    bits = bytearray((len(done) + 7) // 8)
    for index, flag in enumerate(done):
        if flag:
            bits[index // 8] |= 0x80 >> (index % 8)
    return base64.b64encode(bits).decode()


def _pieces_of(text: str) -> bytearray:
    """Per-piece flags from the note's bitmap (as many as it has bits); empty when unreadable."""
    try:
        bits = base64.b64decode(text, validate=True)
    except ValueError:
        return bytearray()
    return bytearray(1 if bits[i // 8] & (0x80 >> (i % 8)) else 0 for i in range(len(bits) * 8))
