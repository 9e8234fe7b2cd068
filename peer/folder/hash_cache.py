"""The shared folder's sha256 and pieces-root cache, in `<root>/.napshare/hashes.json`."""

import contextlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from napshare.common.files import replace_at
from napshare.common.names import InvalidNameError, check_sha256
from napshare.peer.folder.layout import HASHES_FILE, STATE_DIR

logger = logging.getLogger(__name__)

# 2 added the pieces root; a cache of another version is ignored (every file hashed again).
_VERSION = 2
_MAX_CACHE_BYTES = 256 * 1024 * 1024
# While a long scan hashes many files, save at most this often, so a crash loses little work.
SAVE_INTERVAL = 5.0


@dataclass(frozen=True)
class CachedHash:
    """The digests of a file as it was when hashed: valid while size and mtime stay the same.

    `pieces_root` is its BEP 52 root in hex (napshare.common.merkle), "" for an empty file.
    `sha256` is "" for a download its pieces root verified, until its sha256 is computed.
    """

    size: int
    mtime_ns: int
    sha256: str
    pieces_root: str


class HashCache:
    """Digests by file name, loaded from and saved to the hidden cache folder under `root`.

    Every path is opened relative to a directory descriptor with O_NOFOLLOW, so a symlink
    planted at `.napshare` or `hashes.json` can never make the cache read or write outside root.
    A folder where the cache cannot be written (read-only media) keeps the cache in memory.
    """

    def __init__(self, root: Path) -> None:
        self._root = root
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._warned = False
        self._dirty = False
        self._saved_at = time.monotonic()
        self._entries: dict[str, CachedHash] = self._load()

    def lookup(self, name: str, size: int, mtime_ns: int) -> CachedHash | None:
        """The cached digests of `name` if its size and mtime still match, else None."""
        with self._lock:
            entry = self._entries.get(name)
        if entry is None or entry.size != size or entry.mtime_ns != mtime_ns:
            return None
        return entry

    def store(self, name: str, entry: CachedHash) -> None:
        """Remember one digest in memory; flush() persists it."""
        with self._lock:
            self._entries[name] = entry
            self._dirty = True

    def retain(self, names: set[str]) -> None:
        """Forget every file not in `names`."""
        with self._lock:
            stale = [name for name in self._entries if name not in names]
            for name in stale:
                del self._entries[name]
            self._dirty = self._dirty or bool(stale)

    def flush(self, *, soon: bool = False) -> None:
        """Save changes now; with `soon`, only if the last save is SAVE_INTERVAL old.

        Saving writes a temporary file, fsyncs it and renames it over the cache; a folder
        where that fails keeps the cache in memory, with one warning in the log.
        """
        with self._save_lock:
            with self._lock:
                if not self._dirty:
                    return
                if soon and time.monotonic() - self._saved_at < SAVE_INTERVAL:
                    return
                self._dirty = False
                self._saved_at = time.monotonic()
                files = {
                    name: {
                        "size": e.size,
                        "mtime_ns": e.mtime_ns,
                        "sha256": e.sha256,
                        "pieces_root": e.pieces_root,
                    }
                    for name, e in sorted(self._entries.items())
                }
            payload = json.dumps({"version": _VERSION, "files": files}, separators=(",", ":"))
            try:
                self._write(payload.encode())
            except OSError as error:
                if not self._warned:
                    logger.warning("cannot save the hash cache in %s: %s", self._root, error)
                    self._warned = True

    def _open_cache_dir(self, *, create: bool) -> int:
        """An fd of `<root>/.napshare`, never through a symlink planted in its place."""
        root_fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(STATE_DIR, 0o700, dir_fd=root_fd)
            return os.open(
                STATE_DIR,
                os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                dir_fd=root_fd,
            )
        finally:
            os.close(root_fd)

    def _write(self, payload: bytes) -> None:
        dir_fd = self._open_cache_dir(create=True)
        try:
            replace_at(dir_fd, HASHES_FILE, payload)
        finally:
            os.close(dir_fd)

    def _load(self) -> dict[str, CachedHash]:
        try:
            raw = self._read()
        except FileNotFoundError:
            return {}
        except OSError as error:
            logger.warning("ignoring the hash cache in %s: %s", self._root, error)
            return {}
        try:
            document = json.loads(raw)
            if document.get("version") != _VERSION:
                return {}
            entries = {
                str(name): CachedHash(
                    int(e["size"]),
                    int(e["mtime_ns"]),
                    _check_sha256(e["sha256"], e["pieces_root"]),
                    _check_root(e["pieces_root"], int(e["size"])),
                )
                for name, e in document["files"].items()
            }
        except (ValueError, TypeError, KeyError, AttributeError, InvalidNameError) as error:
            logger.warning("ignoring a corrupt hash cache in %s: %s", self._root, error)
            return {}
        return entries

    def roots(self) -> set[str]:
        """The pieces roots of every cached file."""
        with self._lock:
            return {entry.pieces_root for entry in self._entries.values()}

    def _read(self) -> bytes:
        dir_fd = self._open_cache_dir(create=False)
        try:
            fd = os.open(
                HASHES_FILE,
                os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                dir_fd=dir_fd,
            )
        finally:
            os.close(dir_fd)
        with os.fdopen(fd, "rb") as source:
            data = source.read(_MAX_CACHE_BYTES + 1)
        if len(data) > _MAX_CACHE_BYTES:
            raise OSError(f"{HASHES_FILE} is larger than {_MAX_CACHE_BYTES} bytes")
        return data


def _check_sha256(sha256: object, pieces_root: object) -> str:
    """A cached sha256: 64 hex characters, or "" (not computed yet) beside a pieces root."""
    if sha256 == "" and pieces_root:
        return ""
    if not isinstance(sha256, str):
        raise ValueError("sha256 is not a string")
    return check_sha256(sha256)


def _check_root(pieces_root: object, size: int) -> str:
    """A cached pieces root: 64 hex characters, or "" for an empty file; ValueError if not."""
    if size == 0 and pieces_root == "":
        return ""
    if not isinstance(pieces_root, str):
        raise ValueError("pieces_root is not a string")
    return check_sha256(pieces_root)
