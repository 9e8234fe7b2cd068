"""Test files for the benchmarks: random content for speed, sparse files for memory."""

import os
import re
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

_SIZE = re.compile(r"(\d+)\s*(B|KiB|MiB|GiB)?", re.IGNORECASE)
_UNITS = {"b": 1, "kib": KIB, "mib": MIB, "gib": GIB}


def parse_size(text: str) -> int:
    """`4MiB`, `1GiB`, `512KiB` or a plain byte count, as bytes."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"size {text!r} must look like 4MiB, 1GiB or a byte count")
    return int(match.group(1)) * _UNITS[(match.group(2) or "b").lower()]


def format_size(size: int) -> str:
    """The inverse of parse_size for whole units: 1073741824 -> `1 GiB`."""
    for unit, factor in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def make_random_file(path: Path, size: int) -> Path:
    """Write `size` random bytes to `path` (kept if it already has that size)."""
    if path.exists() and path.stat().st_size == size:
        return path
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, 4 * MIB))
            out.write(block)
            left -= len(block)
    return path


def make_sparse_file(path: Path, size: int) -> Path:
    """A file of `size` zero bytes that takes no disk space: a hole."""
    with path.open("wb") as out:
        out.truncate(size)
    return path
