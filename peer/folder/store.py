"""The shared folder: which files a peer shares, their sha256 and pieces root (cached), their
piece layers, and safe access to them.

A file hashed here gets both digests from one read (digests_of). A download verified by its
pieces root is remembered with its root and layer before its sha256 is known; the sha256 is
computed (sha256_of, one more read) the first time the file is described, and until then the
file is described to nobody.
"""

import errno
import hashlib
import logging
import os
import queue
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from napshare.common import merkle, reasons
from napshare.common.console import N_, LocalizedError
from napshare.common.names import InvalidNameError, check_file_name, check_sha256
from napshare.peer.folder import beneath
from napshare.peer.folder.hash_cache import CachedHash, HashCache
from napshare.peer.folder.layers import LayerStore

logger = logging.getLogger(__name__)

HASH_BUFFER = 4 * 1024 * 1024
HASH_BUFFERS = 3  # read ahead of the tree's thread by at most two buffers
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# What opening a name that is not shared fails with: missing, a symlink on the way (or at the
# end), a file where a folder should be, not readable, a FIFO without a writer.
_NOT_THERE = frozenset(
    {errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.EACCES, errno.ENXIO, errno.ENAMETOOLONG}
)
# The clock the kernel stamps mtimes with; a file stamped in the tick its hash began may
# change again within that tick without its mtime moving, so such a digest is not cached.
_MTIME_CLOCK: int = getattr(time, "CLOCK_REALTIME_COARSE", time.CLOCK_REALTIME)


@dataclass(frozen=True)
class SharedFile:
    """One shared file as it is now: name (its path from the root), size in bytes, sha256,
    mtime, pieces root.

    `pieces_root` is the file's BEP 52 root in hex (napshare.common.merkle), "" for an empty
    file (or for a file described by another peer that does not compute it).
    """

    name: str
    size: int
    sha256: str
    mtime_ns: int
    pieces_root: str = ""


@dataclass(frozen=True)
class Digests:
    """What one read of a file gives: its sha256 and pieces root in hex, and its piece layer.

    `sha256` is "" for a download that its pieces root verified, until the sha256 is computed.
    """

    sha256: str
    pieces_root: str
    layer: bytes


class FolderError(LocalizedError):
    """The shared folder is missing, not a directory, or not readable."""

    reason = reasons.FOLDER_UNAVAILABLE


class NotSharedError(Exception):
    """No file of that name is shared."""

    reason = reasons.FILE_NOT_SHARED


class SharedFolder:
    """The regular files under `root`, at any depth, each named by its path from `root`
    (common.names); napshare's own files live in a folder there, which is never shared.

    Symlinks are never followed (neither shared nor entered), so nothing outside `root` is
    ever read; FIFOs, devices and sockets are not shared. The only thing written is the
    cache in `root/.napshare/`. Safe to use from several threads.
    """

    def __init__(self, root: Path) -> None:
        try:
            resolved = Path(root).expanduser().resolve(strict=True)
        except (OSError, RuntimeError) as error:
            raise FolderError(N_("shared folder {folder} does not exist"), folder=root) from error
        if not resolved.is_dir():
            raise FolderError(N_("shared folder {folder} is not a directory"), folder=root)
        if not os.access(resolved, os.R_OK | os.X_OK):
            raise FolderError(N_("shared folder {folder} is not readable"), folder=root)
        self.root = resolved
        self.hash_count = 0
        self._cache = HashCache(resolved)
        self._layers = LayerStore(resolved)
        self._hash_lock = threading.Lock()

    def scan(self) -> list[SharedFile]:
        """Every file shared now, at any depth, sorted by name; hashes only new or changed
        files.
        """
        try:
            root_fd = beneath.open_root(self.root)
        except OSError as error:
            raise FolderError(
                N_("cannot list shared folder {folder}: {error}"), folder=self.root, error=error
            ) from error
        files: list[SharedFile] = []
        try:
            for name, folder_fd, leaf in beneath.walk_files(root_fd, _not_listed):
                if not _is_shareable_name(name):
                    logger.info("not sharing %r: the protocol does not allow its name", name)
                    continue
                try:
                    fd = os.open(leaf, _OPEN_FLAGS, dir_fd=folder_fd)
                    info = self._described(name, fd, flush_soon=True)
                except (NotSharedError, OSError) as error:
                    logger.warning("not sharing %s: %s", name, error)
                    continue
                os.close(fd)
                files.append(info)
        finally:
            os.close(root_fd)
        files.sort(key=lambda info: info.name)
        self._cache.retain({info.name for info in files})
        self._cache.flush()
        self._layers.retain(self._cache.roots())
        return files

    def has(self, name: str) -> bool:
        """Whether the folder holds an entry named `name` (a path), of any kind, or something
        in the way of one (a symlink or a file where a folder of the name should be): what a
        download of that name would not put in place unless forced.
        """
        folders, leaf = beneath.split(check_file_name(name))
        try:
            root_fd = beneath.open_root(self.root)
        except OSError as error:
            raise FolderError(N_("shared folder {folder} is gone"), folder=self.root) from error
        try:
            folder_fd = beneath.open_folder(root_fd, folders)
        except FileNotFoundError:
            return False
        except OSError as error:
            if error.errno in beneath.NOT_A_FOLDER:
                return True
            raise
        finally:
            os.close(root_fd)
        try:
            os.stat(leaf, dir_fd=folder_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        finally:
            os.close(folder_fd)
        return True

    def get(self, name: str) -> SharedFile:
        """The shared file `name`; raises InvalidNameError or NotSharedError."""
        fd, info = self.open(name)
        os.close(fd)
        return info

    def open(self, name: str) -> tuple[int, SharedFile]:
        """A read-only descriptor of the regular file `name` (a path under root), and its info.

        The caller closes the descriptor. Raises InvalidNameError or NotSharedError.
        """
        return self._open(name, flush_soon=False)

    def _open(self, name: str, *, flush_soon: bool) -> tuple[int, SharedFile]:
        check_file_name(name)
        try:
            root_fd = beneath.open_root(self.root)
        except OSError as error:
            raise FolderError(N_("shared folder {folder} is gone"), folder=self.root) from error
        try:
            fd = beneath.open_beneath(root_fd, name, _OPEN_FLAGS)
        except OSError as error:
            if error.errno in _NOT_THERE:
                raise NotSharedError(f"file {name!r} is not shared") from error
            raise
        finally:
            os.close(root_fd)
        return fd, self._described(name, fd, flush_soon=flush_soon)

    def _described(self, name: str, fd: int, *, flush_soon: bool) -> SharedFile:
        """The info of the file `name` open at `fd` (closed if this fails)."""
        try:
            info = self._describe(name, fd)
            self._cache.flush(soon=flush_soon)
        except BaseException:
            os.close(fd)
            raise
        return info

    def piece_layer(self, name: str) -> tuple[SharedFile, bytes]:
        """The shared file `name` and its piece layer (napshare.common.merkle; b"" if empty).

        Read from the layer store, or computed again from the file (and kept) if it is not
        there. Raises InvalidNameError or NotSharedError.
        """
        fd, info = self.open(name)
        try:
            if info.size <= merkle.piece_size_for(info.size):
                return info, bytes.fromhex(info.pieces_root)
            layer = self._layers.get(info.pieces_root, info.size)
            if layer is not None:
                return info, layer
            before = os.fstat(fd)
            digests = self._hash_once(name, fd, before, reuse=False)
            return SharedFile(
                name, before.st_size, digests.sha256, before.st_mtime_ns, digests.pieces_root
            ), digests.layer
        finally:
            os.close(fd)

    def remember(self, name: str, digests: Digests) -> SharedFile:
        """Record the digests of a file just verified and put in place, so it is not hashed
        again (its layer, already checked against its root, kept as well). Without a sha256
        (""), only its root is known: `get` computes the sha256 alone, once.
        """
        check_file_name(name)
        if digests.sha256 or not digests.pieces_root:
            check_sha256(digests.sha256)
        else:
            check_sha256(digests.pieces_root)
        folders, leaf = beneath.split(name)
        try:
            root_fd = beneath.open_root(self.root)
            try:
                folder_fd = beneath.open_folder(root_fd, folders)
            finally:
                os.close(root_fd)
            try:
                info = os.stat(leaf, dir_fd=folder_fd, follow_symlinks=False)
            finally:
                os.close(folder_fd)
        except OSError as error:
            if error.errno in _NOT_THERE:
                raise NotSharedError(f"file {name!r} is not in {self.root}") from error
            raise
        if not stat.S_ISREG(info.st_mode):
            raise NotSharedError(f"{name!r} is not a regular file")
        self._keep(name, info, digests)
        self._cache.flush()
        return SharedFile(name, info.st_size, digests.sha256, info.st_mtime_ns, digests.pieces_root)

    def _describe(self, name: str, fd: int) -> SharedFile:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise NotSharedError(f"{name!r} is not a regular file")
        cached = self._cache.lookup(name, before.st_size, before.st_mtime_ns)
        if cached is None or not cached.sha256:
            digests = self._hash_once(name, fd, before)
            sha256, pieces_root = digests.sha256, digests.pieces_root
        else:
            sha256, pieces_root = cached.sha256, cached.pieces_root
        return SharedFile(name, before.st_size, sha256, before.st_mtime_ns, pieces_root)

    def _hash_once(
        self, name: str, fd: int, before: os.stat_result, *, reuse: bool = True
    ) -> Digests:
        with self._hash_lock:
            cached = self._cache.lookup(name, before.st_size, before.st_mtime_ns)
            if reuse and cached is not None and cached.sha256:
                return Digests(cached.sha256, cached.pieces_root, b"")
            started_ns = time.clock_gettime_ns(_MTIME_CLOCK)
            try:
                if reuse and cached is not None:  # a download its root verified: sha256 alone
                    logger.info("computing the sha256 of %s (%d bytes)", name, before.st_size)
                    digests = Digests(sha256_of(fd, before.st_size), cached.pieces_root, b"")
                else:
                    logger.info("hashing %s (%d bytes)", name, before.st_size)
                    digests = digests_of(fd, before.st_size)
            except EOFError as error:
                raise NotSharedError(f"file {name!r} shrank while being hashed") from error
            finally:
                self.hash_count += 1
            after = os.fstat(fd)
        if _unchanged(before, after) and before.st_mtime_ns < started_ns:
            self._keep(name, before, digests)
        return digests

    def _keep(self, name: str, info: os.stat_result, digests: Digests) -> None:
        self._cache.store(
            name, CachedHash(info.st_size, info.st_mtime_ns, digests.sha256, digests.pieces_root)
        )
        if digests.layer and info.st_size > merkle.piece_size_for(info.st_size):
            self._layers.put(digests.pieces_root, digests.layer)


def sha256_of(fd: int, size: int) -> str:
    """The sha256 (hex) of the first `size` bytes of `fd` (with pread); EOFError if it has
    fewer.
    """
    digest = hashlib.sha256()
    view = memoryview(bytearray(min(HASH_BUFFER, max(size, 1))))
    position = 0
    while position < size:
        count = os.preadv(fd, [view[: min(len(view), size - position)]], position)
        if count == 0:
            raise EOFError(f"the file ended at byte {position} of {size}")
        digest.update(view[:count])
        position += count
    return digest.hexdigest()


def digests_of(fd: int, size: int) -> Digests:
    """The sha256, pieces root and piece layer of the first `size` bytes of `fd`, in one read
    (with pread); EOFError if it has fewer.

    The tree is built on a thread of its own from the same buffers (hashlib releases the
    GIL), so on two cores hashing takes about as long as the sha256 alone.
    """
    digest = hashlib.sha256()
    tree = merkle.TreeBuilder(size)
    free: queue.Queue[memoryview] = queue.Queue()
    full: queue.Queue[tuple[memoryview, int] | None] = queue.Queue()
    for _ in range(HASH_BUFFERS):
        free.put(memoryview(bytearray(HASH_BUFFER)))

    def build() -> None:
        while (item := full.get()) is not None:
            buffer, count = item
            tree.update(buffer[:count])
            free.put(buffer)

    builder = threading.Thread(target=build, name="merkle-tree", daemon=True)
    builder.start()
    position = 0
    try:
        while position < size:
            view = free.get()
            count = os.preadv(fd, [view[: min(HASH_BUFFER, size - position)]], position)
            if count == 0:
                raise EOFError(f"the file ended at byte {position} of {size}")
            digest.update(view[:count])
            full.put((view, count))
            position += count
    finally:
        full.put(None)
        builder.join()
    root = tree.finish()
    layer = b"".join(tree.layer) if len(tree.layer) > 1 else b""
    return Digests(digest.hexdigest(), root.hex(), layer)


def _is_shareable_name(name: str) -> bool:
    try:
        check_file_name(name)
    except InvalidNameError:
        return False
    return True


def _not_listed(path: str, error: OSError) -> None:
    logger.warning("not sharing what is in %s: %s", path, error)


def _unchanged(before: os.stat_result, after: os.stat_result) -> bool:
    """True when nothing wrote to the file while it was being hashed."""
    return (before.st_size, before.st_mtime_ns, before.st_ctime_ns) == (
        after.st_size,
        after.st_mtime_ns,
        after.st_ctime_ns,
    )
