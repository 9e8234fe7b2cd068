"""The protocol's rules for file names and digests, shared by tracker and peer."""

import re

from napshare.common import reasons

MAX_NAME_BYTES = 255
_SHA256 = re.compile(r"[0-9a-f]{64}")


class InvalidNameError(ValueError):
    """A file name or digest that the protocol does not allow; `reason` says which."""

    def __init__(self, message: str, reason: str = reasons.NAME_INVALID) -> None:
        super().__init__(message)
        self.reason = reason


def check_file_name(name: str) -> str:
    """Return `name` if it is a plain file name, else raise InvalidNameError."""
    if not name:
        raise InvalidNameError("file name is empty")
    if name in (".", ".."):
        raise InvalidNameError(f"file name {name!r} is not allowed")
    for bad in ("/", "\\", "\x00"):
        if bad in name:
            raise InvalidNameError(
                f"file name {name!r} must be a plain name without '/', '\\' or NUL"
            )
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise InvalidNameError(f"file name is longer than {MAX_NAME_BYTES} UTF-8 bytes")
    return name


def check_sha256(digest: str) -> str:
    """Return `digest` if it is 64 lowercase hex characters, else raise InvalidNameError."""
    if not _SHA256.fullmatch(digest):
        raise InvalidNameError(
            f"sha256 {digest[:80]!r} must be 64 lowercase hex characters", reasons.SHA256_INVALID
        )
    return digest
