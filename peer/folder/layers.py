"""Piece layers of shared files in `<root>/.napshare/layers/<pieces root>`, so serving one
never reads the file again; each is checked against its root when read back.

Only files of more than one piece have a layer file (a smaller file's root is its layer).
Every path is opened relative to a directory descriptor with O_NOFOLLOW, as the hash cache's.
"""

import contextlib
import logging
import os
from pathlib import Path

from napshare.common import merkle
from napshare.common.files import replace_at
from napshare.peer.folder.layout import LAYERS_DIR, STATE_DIR

logger = logging.getLogger(__name__)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class LayerStore:
    """Piece layers by pieces root (64 hex characters); a folder that cannot be written keeps
    none, and the layer is computed again when asked for.
    """

    def __init__(self, root: Path) -> None:
        self._root = root
        self._warned = False

    def get(self, pieces_root: str, size: int) -> bytes | None:
        """The stored layer of the file with this root and size, or None if there is no good one."""
        try:
            dir_fd = self._open_dir(create=False)
        except OSError:
            return None
        try:
            fd = os.open(pieces_root, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            return None
        finally:
            os.close(dir_fd)
        with os.fdopen(fd, "rb") as source:
            data = source.read(merkle.MAX_LAYER_BYTES + 1)
        try:
            layer = merkle.split_layer(data, size)
            good = merkle.root_of_layer(layer, size).hex() == pieces_root
        except ValueError:
            good = False
        if not good:
            logger.warning("ignoring the piece layer %s: it does not match its root", pieces_root)
            return None
        return data

    def put(self, pieces_root: str, layer: bytes) -> None:
        """Keep `layer` (checked by the caller) under its root; failures only log."""
        try:
            dir_fd = self._open_dir(create=True)
            try:
                replace_at(dir_fd, pieces_root, layer, sync=False)
            finally:
                os.close(dir_fd)
        except OSError as error:
            if not self._warned:
                logger.warning("cannot keep piece layers in %s: %s", self._root, error)
                self._warned = True

    def retain(self, roots: set[str]) -> None:
        """Delete the layers of every root not in `roots`."""
        try:
            dir_fd = self._open_dir(create=False)
        except OSError:
            return
        try:
            for name in os.listdir(dir_fd):
                if name not in roots:
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)

    def _open_dir(self, *, create: bool) -> int:
        fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in (STATE_DIR, LAYERS_DIR):
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o700, dir_fd=fd)
                inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = inner
        except BaseException:
            os.close(fd)
            raise
        return fd
