"""Where the repository is, sizes, and the sha256 of a file on disk."""

import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository: tests/support/files.py
KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30


def sha256_file(path: Path) -> str:
    """The sha256 of a file on disk."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(4 * MIB):
            digest.update(block)
    return digest.hexdigest()
