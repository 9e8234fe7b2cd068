"""The protocol's rules for file names and digests, shared by tracker and peer."""

import re

from napshare.common import reasons
from napshare.common.console import N_, LocalizedError

MAX_NAME_BYTES = 255
SHOWN = 80  # characters of a bad name or digest that an error message repeats
_SHA256 = re.compile(r"[0-9a-f]{64}")


class InvalidNameError(LocalizedError, ValueError):
    """A file name or digest that the protocol does not allow; `reason` says which."""

    def __init__(
        self, template: str, /, reason: str = reasons.NAME_INVALID, **fields: object
    ) -> None:
        super().__init__(template, **fields)
        self.reason = reason


def check_file_name(name: str) -> str:
    """Return `name` if it is a plain file name, else raise InvalidNameError."""
    if not name:
        raise InvalidNameError(N_("file name is empty"))
    if name in (".", ".."):
        raise InvalidNameError(N_("file name {name!r} is not allowed"), name=name[:SHOWN])
    for bad in ("/", "\\", "\x00"):
        if bad in name:
            raise InvalidNameError(
                N_("file name {name!r} must be a plain name without '/', '\\' or NUL"),
                name=name[:SHOWN],
            )
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise InvalidNameError(
            N_("file name is longer than {limit} UTF-8 bytes"), limit=MAX_NAME_BYTES
        )
    return name


def check_sha256(digest: str) -> str:
    """Return `digest` if it is 64 lowercase hex characters, else raise InvalidNameError."""
    if not _SHA256.fullmatch(digest):
        raise InvalidNameError(
            N_("sha256 {digest!r} must be 64 lowercase hex characters"),
            reasons.SHA256_INVALID,
            digest=digest[:SHOWN],
        )
    return digest
