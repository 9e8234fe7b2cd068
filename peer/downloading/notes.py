"""The note of a download in progress (`<key>.json` beside its `<key>.part`): which file the
part holds pieces of, which pieces are verified, who sent them. Read and written relative to
the partial folder's descriptor, never through a symlink; a note that cannot be read is no note.
"""

import base64
import contextlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from napshare.common.files import replace_at
from napshare.peer.folder.layout import NOTE_SUFFIX, PARTIAL_DIR, STATE_DIR, partial_key

logger = logging.getLogger(__name__)

PARTIAL_PATH = (STATE_DIR, PARTIAL_DIR)  # the folder of parts and notes, from the root down
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_NOTE_BYTES = 1024 * 1024


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


def load_note(partial_fd: int, note_name: str, shown: str) -> Note | None:
    """The note `note_name` in the partial folder, or None when there is none or it cannot be
    read (said in a warning that names `shown`, the part).
    """
    try:
        fd = os.open(note_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=partial_fd)
    except FileNotFoundError:
        return None
    except OSError as error:
        logger.warning("ignoring the note of %s: %s", shown, error)
        return None
    try:
        with os.fdopen(fd, "rb") as source:
            return _note_of(json.loads(source.read(MAX_NOTE_BYTES)))
    except (OSError, ValueError, TypeError, KeyError) as error:
        logger.warning("ignoring the note of %s: %s", shown, error)
        return None


def save_note(partial_fd: int, note_name: str, note: Note) -> None:
    """Write `note` in place of `note_name`'s, atomically; OSError as it comes."""
    replace_at(partial_fd, note_name, json.dumps(asdict(note)).encode())


def remove_note(partial_fd: int, note_name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(note_name, dir_fd=partial_fd)


def noted_version(root: Path, name: str) -> tuple[int, str, str] | None:
    """The (size, sha256, pieces root) that the unfinished download of `name` into `root`
    holds pieces of, if there is one: read only, without following a symlink.
    """
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        for part in PARTIAL_PATH:
            inner = os.open(part, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
        note = os.open(
            partial_key(name) + NOTE_SUFFIX, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
        )
        with os.fdopen(note, "rb") as source:
            found = _note_of(json.loads(source.read(MAX_NOTE_BYTES)))
        return found.size, found.sha256, found.pieces_root
    except (OSError, ValueError, TypeError, KeyError):
        return None
    finally:
        os.close(fd)


def bitmap(done: bytes) -> str:
    """The note's form of per-piece flags: a bitmap, base64."""
    bits = bytearray((len(done) + 7) // 8)
    for index, flag in enumerate(done):
        if flag:
            bits[index // 8] |= 0x80 >> (index % 8)
    return base64.b64encode(bits).decode()


def pieces_of(text: str) -> bytearray:
    """Per-piece flags from the note's bitmap (as many as it has bits); empty when unreadable."""
    try:
        bits = base64.b64decode(text, validate=True)
    except ValueError:
        return bytearray()
    return bytearray(1 if bits[i // 8] & (0x80 >> (i % 8)) else 0 for i in range(len(bits) * 8))


def _note_of(document: Any) -> Note:
    """A Note from a note's JSON; ValueError, TypeError or KeyError when it is not one."""
    return Note(
        str(document["name"]),
        int(document["size"]),
        str(document["sha256"]),
        [str(peer) for peer in document["sources"]],
        str(document.get("pieces_root", "")),
        int(document.get("verified", 0)),
        None if document.get("pieces") is None else str(document["pieces"]),
    )
