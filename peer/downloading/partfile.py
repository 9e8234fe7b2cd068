"""A download in progress: its bytes and note in `<dir>/.napshare/partial/`, and its hash.

The part (`<key>.part`) and its note (`<key>.json`, which file (size, sha256, pieces root) the
part holds the beginning of, how many of its bytes are verified pieces, and which peers sent
its bytes) share a key made from the name, so they never take a name the user's files could
have; a later run resumes the part only when the sources still have that file. A file with a
pieces root is checked piece by piece as it arrives (peer.downloading.pieces): a bad piece
is never kept, and only whole verified pieces count, so a resume fetches only what is missing.
The only change made to the user's files is the final link of the verified part to
`<dir>/<name>`, on the same file system, so atomic. Every path is
opened relative to a directory descriptor without following symlinks, so nothing is ever
written outside the folder.
"""

import contextlib
import errno
import fcntl
import json
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from napshare.common.console import tr
from napshare.common.files import replace_at
from napshare.common.names import check_file_name
from napshare.peer.downloading.pieces import BadPieceError, PieceCheck, PieceLayer
from napshare.peer.downloading.trailing_hash import TrailingHash
from napshare.peer.errors import (
    AlreadyExistsError,
    DiskFullError,
    DownloadInProgressError,
    FolderProblemError,
)
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
WRITEBACK_WINDOW = 32 * 1024 * 1024
# The note records the verified bytes this often (after the part's bytes reach the disk), so
# a crash loses little; a clean stop records them exactly.
NOTE_INTERVAL = 64 * 1024 * 1024
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


@dataclass
class Note:
    """What a .part holds the beginning of, how much of it is verified, who sent its bytes.

    `verified` counts bytes from the start that are whole pieces checked against the layer
    of `pieces_root` and on disk; "" for a file without one (only its sha256 is checked).
    """

    name: str
    size: int
    sha256: str
    sources: list[str] = field(default_factory=list)
    pieces_root: str = ""
    verified: int = 0


class PartFile:
    """The open .part of one file: write chunks at their offsets, then verify and commit.

    `have` is how many bytes from the start are there (resumed from an earlier run, or
    written since). With a `pieces_root`, `verified` (a piece boundary) is how many of them
    are whole pieces that matched their hash; the rest is the piece being received, thrown
    away by `rollback`. The layer must be given (`attach`) before the first write, unless
    the file has one piece or less. Without a root, every byte counts as verified.
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
    ) -> None:
        self.name = check_file_name(name)
        key = partial_key(name)
        self.part_name = key + PART_SUFFIX  # in the partial folder, as the note is
        self._note_name = key + NOTE_SUFFIX
        self.size = size
        self.sha256 = sha256
        self.pieces_root = pieces_root
        self.layer: PieceLayer | None = None
        self.verified = 0
        self._check: PieceCheck | None = None
        self._pending: list[tuple[int, memoryview]] = []  # the received piece's unchecked bytes
        self._on_disk = 0  # bytes in the part from an earlier run, not yet checked
        self._noted = 0  # the note says this many bytes are verified
        self._finished = False  # committed or removed: the note is gone for good
        self.resumed_from = 0  # the bytes an earlier run left that are kept (once checked)
        self._root = root
        self._root_fd = _open_dir(root)
        self.have = 0
        self._flushed = 0  # writeback was started for bytes before this
        self._fd = -1
        self._partial_fd = -1
        self._hash: TrailingHash | None = None
        try:
            if not force and _exists(self.name, self._root_fd):
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
        """Record that `peer` is about to send bytes of this part."""
        if peer not in self.note.sources:
            self.note.sources.append(peer)
            self._save_note()

    @property
    def needs_layer(self) -> bool:
        """Whether the piece layer must be attached before bytes may be written."""
        return bool(self.pieces_root) and self.layer is None

    def attach(self, layer: PieceLayer) -> None:
        """Check pieces with `layer` (already checked against the root) from now on.

        Bytes an earlier run left in the part past the note's verified ones are checked on
        disk, piece by piece, and kept as far as they are good.
        """
        self.layer = layer
        if self._on_disk > self.verified:
            self._recheck(layer)
        self._on_disk = self.verified
        self.resumed_from = self.verified
        try:
            if os.fstat(self._fd).st_size > self.verified:
                os.ftruncate(self._fd, self.verified)
        except OSError as error:
            raise self._failure(error, self.verified) from None
        self.rollback()

    def rollback(self) -> None:
        """Throw away the bytes of the piece being received: `have` goes back to `verified`."""
        self.have = self.verified
        self._pending.clear()
        if self.layer is not None:
            self._check = PieceCheck(self.layer, self.verified)

    def write(self, offset: int, data: bytes | memoryview) -> None:
        """Write `data` at `offset`, which must be where the part ends now.

        Raises BadPieceError (after `rollback`) when a piece it completes is bad.
        """
        if self.needs_layer:
            raise RuntimeError("the piece layer must be attached before writing")
        done = 0
        length = len(data)
        view = memoryview(data)
        try:
            while done < length:
                done += os.pwrite(self._fd, view[done:], offset + done)
            removed = os.fstat(self._fd).st_nlink == 0
        except OSError as error:
            raise self._failure(
                error, offset + done if self._check is None else self.verified
            ) from None
        if removed:
            raise self._removed()
        self.have = offset + length
        assert self._hash is not None
        if self._check is None:
            self._hash.feed(offset, view)
            self.verified = self.have
        else:
            self._check_pieces(offset, view)
        if self.have - self._flushed >= WRITEBACK_WINDOW:
            self._start_writeback()
        if self._check is not None and self.verified - self._noted >= NOTE_INTERVAL:
            self._note_verified()

    def _check_pieces(self, offset: int, view: memoryview) -> None:
        assert self._check is not None
        assert self.layer is not None
        assert self._hash is not None
        piece_size = self.layer.piece_size
        position = offset
        while position < self.have:
            end = min(self.have, (position // piece_size + 1) * piece_size)
            piece = view[position - offset : end - offset]
            self._pending.append((position, piece))
            for index, good in self._check.feed(piece):
                if not good:
                    start = index * piece_size
                    self.rollback()
                    raise BadPieceError(self.name, index, start, self.layer.end_of(index))
                for at, chunk in self._pending:
                    self._hash.feed(at, chunk)
                self._pending.clear()
                self.verified = end
            position = end

    def _note_verified(self) -> None:
        """Record `verified` in the note once those bytes are on disk."""
        try:
            os.fdatasync(self._fd)
        except OSError as error:
            raise self._failure(error, self.verified) from None
        self.note.verified = self._noted = self.verified
        self._save_note()

    def _recheck(self, layer: PieceLayer) -> None:
        """Keep the whole good pieces an earlier run left past the verified bytes."""
        start = self.verified
        index = start // layer.piece_size
        buffer = bytearray(layer.piece_size)
        while index < len(layer.hashes) and layer.end_of(index) <= self._on_disk:
            length = layer.end_of(index) - index * layer.piece_size
            view = memoryview(buffer)[:length]
            try:
                count = os.preadv(self._fd, [view], index * layer.piece_size)
            except OSError as error:
                raise self._failure(error, self.verified) from None
            if count != length or not layer.good(index, view):
                break
            self.verified = layer.end_of(index)
            index += 1
        logger.info(
            "%s: %d bytes found on disk past the note, %d of them good pieces",
            self.name,
            self._on_disk - start,
            self.verified - start,
        )

    def _start_writeback(self) -> None:
        """Start writing the bytes just written to disk, without waiting for it.

        Linux's POSIX_FADV_DONTNEED starts writeback of dirty pages in the range (and only
        drops pages already clean): what sync_file_range(SYNC_FILE_RANGE_WRITE) does, which
        Python lacks. The disk then works while the rest arrives, and the fsync before the
        rename has little left to write instead of the whole file.
        """
        os.posix_fadvise(self._fd, self._flushed, self.have - self._flushed, os.POSIX_FADV_DONTNEED)
        self._flushed = self.have

    def verify(self) -> bool:
        """True when the part is complete and its sha256 is the expected one."""
        assert self._hash is not None
        if self.verified != self.size:
            return False
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
        try:
            os.fsync(self._fd)
            if os.fstat(self._fd).st_nlink == 0:
                raise self._removed()
            if replace:
                os.replace(
                    self.part_name, self.name, src_dir_fd=self._partial_fd, dst_dir_fd=self._root_fd
                )
            else:
                self._rename_without_replacing()
            os.fsync(self._root_fd)
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

    def _rename_without_replacing(self) -> None:
        partial, root = self._partial_fd, self._root_fd
        try:
            os.link(
                self.part_name,
                self.name,
                src_dir_fd=partial,
                dst_dir_fd=root,
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
            if _exists(self.name, root):
                raise AlreadyExistsError(
                    tr("{path} appeared during the download; kept it", path=self._root / self.name)
                ) from None
            os.replace(self.part_name, self.name, src_dir_fd=partial, dst_dir_fd=root)
            return
        os.unlink(self.part_name, dir_fd=partial)

    def discard(self) -> None:
        """Throw the part's bytes away and start it again from zero, for the same file."""
        self._stop_hash()
        os.ftruncate(self._fd, 0)
        self.have = self._flushed = self.verified = self._noted = self._on_disk = 0
        self.note.sources.clear()
        self.note.verified = 0
        self._save_note()
        self._hash = TrailingHash(self._fd)
        self.rollback()

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

    def close(self) -> None:
        """Stop hashing and close descriptors; the part stays for a later resume. Idempotent.

        The note then records exactly the verified bytes, and the part holds only those.
        """
        self._stop_hash()
        if self._fd >= 0 and not self._finished and self.layer is not None:
            try:
                os.ftruncate(self._fd, self.verified)
                if self.verified != self._noted:
                    self._note_verified()
            except (OSError, FolderProblemError) as error:
                logger.warning("could not record the verified pieces of %s: %s", self.name, error)
        for attribute in ("_fd", "_partial_fd", "_root_fd"):
            fd = getattr(self, attribute, -1)
            if fd >= 0:
                os.close(fd)
                setattr(self, attribute, -1)

    def _start(self) -> Note:
        note = self._load_note()
        wanted = Note(self.name, self.size, self.sha256, pieces_root=self.pieces_root)
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        # A note of an earlier version has no root: its bytes are checked once the layer is in.
        same = (
            note is not None
            and (note.name, note.size, note.sha256) == (self.name, self.size, self.sha256)
            and note.pieces_root in ("", self.pieces_root)
        )
        if same and note is not None and note.pieces_root != self.pieces_root:
            note.pieces_root, note.verified = self.pieces_root, 0
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
        info = os.fstat(self._fd)
        if not stat.S_ISREG(info.st_mode):
            raise FolderProblemError(tr("{path} is not a regular file", path=self._part_path))
        self.have = info.st_size if same else 0
        if self.have > self.size:
            self.have = 0
        if self.have < info.st_size:
            os.ftruncate(self._fd, self.have)
            note.sources.clear()
        if self.pieces_root:
            # Trust the note for what it says is verified; check the rest once the layer is in.
            self._on_disk = self.have
            self.verified = self._noted = max(0, min(note.verified, self.have))
            self.have = self.verified
        else:
            self.verified = self.have
        self.resumed_from = self.have
        if self.have or self._on_disk:
            logger.info(
                "%s: resuming after %d bytes already in %s (%d more to check)",
                self.name,
                self.have,
                self.part_name,
                self._on_disk - self.have,
            )
        self.note = note
        self._flushed = self.have
        self._hash = TrailingHash(self._fd)
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

    def _stop_hash(self) -> None:
        if self._hash is not None:
            self._hash.stop()
            self._hash = None


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
