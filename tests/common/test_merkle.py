"""The BEP 52 tree against vectors this test computes itself from hashlib, not from the code."""

import hashlib
import os
from pathlib import Path

import pytest
from napshare.common import merkle

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
BLOCK = 16 * KIB


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def tree(leaves: list[bytes], width: int) -> bytes:
    """BEP 52: pad the leaves with zero hashes to `width` (a power of two), hash pairwise."""
    layer = leaves + [bytes(32)] * (width - len(leaves))
    while len(layer) > 1:
        layer = [sha(layer[i] + layer[i + 1]) for i in range(0, len(layer), 2)]
    return layer[0]


def power_of_two(count: int) -> int:
    width = 1
    while width < count:
        width *= 2
    return width


def expected(data: bytes, piece_size: int = MIB) -> tuple[bytes, list[bytes]]:
    """(root, piece layer) of `data` as BEP 52 defines them; an empty file has no root."""
    if not data:
        return b"", []
    leaves = [sha(data[i : i + BLOCK]) for i in range(0, len(data), BLOCK)]
    per_piece = piece_size // BLOCK
    root = tree(leaves, power_of_two(len(leaves)))
    if len(data) <= piece_size:
        return root, [root]
    layer = [tree(leaves[i : i + per_piece], per_piece) for i in range(0, len(leaves), per_piece)]
    return root, layer


SIZES = [0, 1, BLOCK, BLOCK + 1, MIB, MIB + 1, 3 * MIB + 5 * BLOCK + 7]


@pytest.mark.parametrize("size", SIZES)
def test_root_and_layer_match_bep52(size: int) -> None:
    data = os.urandom(size)
    root, layer = expected(data)
    builder = merkle.TreeBuilder(size)
    for start in range(0, size, 100_000):  # chunks that cut blocks and pieces anywhere
        builder.update(data[start : start + 100_000])
    assert builder.finish() == root
    assert builder.layer == ([] if size == 0 else layer)
    if size:
        assert merkle.root_of_layer(layer, size) == root
        leaves = merkle.leaf_hashes(data[:MIB])
        assert merkle.piece_hash(leaves, size) == layer[0]


def test_the_root_of_one_block_is_its_hash_and_the_piece_layer_pads_with_zero_hashes() -> None:
    builder = merkle.TreeBuilder(1)
    builder.update(b"x")
    assert builder.finish() == sha(b"x")
    two = b"a" * BLOCK + b"b"
    builder = merkle.TreeBuilder(len(two))
    builder.update(two)
    assert builder.finish() == sha(sha(b"a" * BLOCK) + sha(b"b"))


def zero_file_expected(size: int, piece_size: int) -> tuple[bytes, bytes, bytes]:
    """(root, full piece hash, last piece hash) of `size` zero bytes, from equal zero leaves."""
    per_piece = piece_size // BLOCK
    full = sha(bytes(BLOCK))
    for _ in range(per_piece.bit_length() - 1):
        full = sha(full + full)
    tail = size % piece_size
    tail_leaves = [sha(bytes(BLOCK))] * (tail // BLOCK)
    if tail % BLOCK:
        tail_leaves.append(sha(bytes(tail % BLOCK)))
    last = tree(tail_leaves, per_piece) if tail else full
    pieces = -(-size // piece_size)
    # The root over pieces: pad with the hash of a piece of zero leaf hashes (not zero bytes).
    pad = bytes(32)
    for _ in range(per_piece.bit_length() - 1):
        pad = sha(pad + pad)
    width = power_of_two(pieces)
    layer = [full] * (pieces - 1) + [last] + [pad] * (width - pieces)
    while len(layer) > 1:
        layer = [sha(layer[i] + layer[i + 1]) for i in range(0, len(layer), 2)]
    return layer[0], full, last


@pytest.mark.slow
def test_a_sparse_file_of_a_few_gib_hashes_as_bep52_says(tmp_path: Path) -> None:
    size = 4 * GIB + BLOCK + 1
    path = tmp_path / "sparse.bin"
    with path.open("wb") as out:
        out.truncate(size)
    root, full, last = zero_file_expected(size, MIB)
    builder = merkle.TreeBuilder(size)
    with path.open("rb") as source:
        while chunk := source.read(8 * MIB):
            builder.update(chunk)
    assert builder.finish() == root
    assert builder.layer[0] == full
    assert builder.layer[-1] == last
    assert len(builder.layer) == 4 * 1024 + 1


def test_very_large_files_get_larger_pieces_so_the_layer_stays_small() -> None:
    assert merkle.piece_size_for(0) == MIB
    assert merkle.piece_size_for(16 * GIB) == MIB
    assert merkle.piece_size_for(16 * GIB + 1) == 2 * MIB
    assert merkle.piece_size_for(100 * GIB) == 8 * MIB
    assert merkle.piece_count(16 * GIB + 1) == 8 * 1024 + 1
    for size in (16 * GIB + 1, 20 * GIB + 3):
        piece_size = merkle.piece_size_for(size)
        root, full, last = zero_file_expected(size, piece_size)
        layer = [full] * (merkle.piece_count(size) - 1) + [last]
        assert merkle.root_of_layer(layer, size) == root
        assert len(layer) * 32 <= merkle.MAX_LAYER_BYTES


def test_a_layer_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="pieces"):
        merkle.split_layer(bytes(32 * 3), 2 * MIB)
    assert merkle.split_layer(bytes(64), 2 * MIB) == [bytes(32), bytes(32)]
