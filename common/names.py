"""The protocol's rules for file names and digests, shared by tracker and peer.

A file's name on the wire is its path relative to the folder it is shared from, its segments
joined by `/` (`semana1/aula1.mp4`); a plain name (`aula1.mp4`) is a path of one segment. Every
side checks every name it is given with check_file_name, so a name can never point outside a
folder: no absolute path, no `.` or `..` segment, no empty segment, no `\\`, no NUL or other
control character, no segment named like napshare's own folder, and bounded length and depth.
"""

import re

from napshare.common import reasons
from napshare.common.console import N_, LocalizedError

SEPARATOR = "/"
MAX_NAME_BYTES = 1024  # UTF-8 bytes of a whole name, every segment and separator
MAX_SEGMENT_BYTES = 255  # UTF-8 bytes of one segment: what file systems allow a name
MAX_DEPTH = 32  # segments of one name
# napshare's own folder in a shared or download folder; no segment of a name may be it, in any
# case (a case-insensitive file system would take `.NAPSHARE` for it).
STATE_DIR = ".napshare"
SHOWN = 80  # characters of a bad name or digest that an error message repeats
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Control characters (C0, DEL, C1) and the backslash, Windows' separator.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")


class InvalidNameError(LocalizedError, ValueError):
    """A file name or digest that the protocol does not allow; `reason` says which."""

    def __init__(
        self, template: str, /, reason: str = reasons.NAME_INVALID, **fields: object
    ) -> None:
        super().__init__(template, **fields)
        self.reason = reason


def check_file_name(name: str) -> str:
    """Return `name` if it is a valid file name (a relative path), else raise InvalidNameError
    saying which rule it breaks.
    """
    if not name:
        raise InvalidNameError(N_("file name is empty"))
    shown = name[:SHOWN]
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidNameError(N_("file name {name!r} is not valid UTF-8"), name=shown) from None
    if size > MAX_NAME_BYTES:
        raise InvalidNameError(
            N_("file name is longer than {limit} UTF-8 bytes"), limit=MAX_NAME_BYTES
        )
    bad = _FORBIDDEN.search(name)
    if bad is not None:
        if bad.group() == "\\":
            raise InvalidNameError(
                N_("file name {name!r} has a '\\'; folders are separated by '/'"), name=shown
            )
        raise InvalidNameError(
            N_("file name {name!r} has a control character ({code})"),
            name=shown,
            code=f"U+{ord(bad.group()):04X}",
        )
    if name.startswith(SEPARATOR):
        raise InvalidNameError(
            N_("file name {name!r} is an absolute path; names are relative to the folder"),
            name=shown,
        )
    segments = name.split(SEPARATOR)
    if len(segments) > MAX_DEPTH:
        raise InvalidNameError(
            N_("file name {name!r} is more than {limit} folders deep"), name=shown, limit=MAX_DEPTH
        )
    for segment in segments:
        _check_segment(segment, shown)
    return name


def _check_segment(segment: str, shown: str) -> None:
    if not segment:
        raise InvalidNameError(
            N_("file name {name!r} has an empty segment ('//', or '/' at its end)"), name=shown
        )
    if segment in (".", ".."):
        raise InvalidNameError(
            N_("file name {name!r} has a '{segment}' segment; names stay inside their folder"),
            name=shown,
            segment=segment,
        )
    if len(segment) * 4 > MAX_SEGMENT_BYTES and len(segment.encode()) > MAX_SEGMENT_BYTES:
        raise InvalidNameError(
            N_("file name {name!r} has a segment longer than {limit} UTF-8 bytes"),
            name=shown,
            limit=MAX_SEGMENT_BYTES,
        )
    if segment.lower() == STATE_DIR:
        raise InvalidNameError(
            N_("file name {name!r} is inside {state}, napshare's own folder, never shared"),
            name=shown,
            state=STATE_DIR,
        )


def check_folder(folder: str) -> str:
    """The prefix that every name inside `folder` starts with: "" for "" (the whole folder),
    else `folder` with one `/` at its end (`semana1` and `semana1/` give `semana1/`). Raises
    InvalidNameError if `folder`, without that `/`, is not a valid name.
    """
    if not folder:
        return ""
    inner = folder[:-1] if folder.endswith(SEPARATOR) else folder
    return check_file_name(inner) + SEPARATOR


def segments_of(name: str) -> list[str]:
    """The folders and the file of a valid name, outermost first."""
    return name.split(SEPARATOR)


def check_sha256(digest: str) -> str:
    """Return `digest` if it is 64 lowercase hex characters, else raise InvalidNameError."""
    if not _SHA256.fullmatch(digest):
        raise InvalidNameError(
            N_("sha256 {digest!r} must be 64 lowercase hex characters"),
            reasons.SHA256_INVALID,
            digest=digest[:SHOWN],
        )
    return digest
