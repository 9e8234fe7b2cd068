"""The trailing sha256: chunks handed over, chunks missed, and a prefix already on disk."""

import hashlib
import os
import random
from pathlib import Path

import pytest
from napshare.peer.downloading.trailing_hash import TrailingHash

CHUNK = 64 * 1024


@pytest.mark.parametrize("prefix_chunks", [0, 5])
@pytest.mark.parametrize("fed_share", [1.0, 0.5, 0.0])
def test_digest_is_the_whole_files(tmp_path: Path, prefix_chunks: int, fed_share: float) -> None:
    rng = random.Random(prefix_chunks * 10 + int(fed_share * 10))
    data = rng.randbytes(40 * CHUNK + 123)
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data[: prefix_chunks * CHUNK], 0)  # there before, never fed
        hasher = TrailingHash(fd)
        for offset in range(prefix_chunks * CHUNK, len(data), CHUNK):
            chunk = memoryview(data)[offset : offset + CHUNK]
            os.pwrite(fd, chunk, offset)
            if rng.random() < fed_share:
                hasher.feed(offset, chunk)
        assert hasher.hexdigest(len(data)) == hashlib.sha256(data).hexdigest()
        hasher.stop()
    finally:
        os.close(fd)


def test_a_file_shorter_than_promised_is_an_error(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, b"abc", 0)
        hasher = TrailingHash(fd)
        with pytest.raises(OSError, match="ends at byte 3"):
            hasher.hexdigest(10)
        hasher.stop()
    finally:
        os.close(fd)
