"""BitTorrent v2 (BEP 52) SHA-256 Merkle trees of a file, so both sides verify every piece.

The leaves are the SHA-256 of each 16 KiB block (the last one may be shorter); the tree is
binary, padded on the right with zero hashes up to a power of two. The piece layer is the
layer whose nodes each cover one piece (`piece_size_for` chooses the piece size from the
file size alone, so both sides agree on it). A file of one piece or less has no piece layer:
its only piece hash is the root. An empty file has no root (b""). No grpc here.
"""

import hashlib
from collections.abc import Sequence

BLOCK_SIZE = 16 * 1024
HASH_SIZE = 32
DEFAULT_PIECE_SIZE = 1024 * 1024
# The piece size doubles until the file has at most this many pieces: a layer of at most
# 512 KiB, one message well under gRPC's default 4 MiB limit (1 MiB pieces up to 16 GiB).
MAX_PIECES = 16 * 1024
MAX_LAYER_BYTES = MAX_PIECES * HASH_SIZE

_ZERO = bytes(HASH_SIZE)


def _sha(data: bytes | bytearray | memoryview) -> bytes:
    return hashlib.sha256(data).digest()


def _pad_hashes(height: int) -> list[bytes]:
    """The root of 2**h zero leaves, for h in 0..height."""
    pads = [_ZERO]
    for _ in range(height):
        pads.append(_sha(pads[-1] + pads[-1]))
    return pads


_PADS = _pad_hashes(64)


def piece_size_for(size: int) -> int:
    """The piece size of a file of `size` bytes: DEFAULT_PIECE_SIZE, doubled while the file
    would have more than MAX_PIECES pieces.
    """
    piece_size = DEFAULT_PIECE_SIZE
    while -(-size // piece_size) > MAX_PIECES:
        piece_size *= 2
    return piece_size


def piece_count(size: int) -> int:
    """How many pieces a file of `size` bytes has (0 for an empty file)."""
    return -(-size // piece_size_for(size))


def _height(count: int) -> int:
    """The height of the smallest power-of-two-wide tree with `count` (>= 1) leaves."""
    return max(0, (count - 1).bit_length())


def reduce(hashes: Sequence[bytes], height: int, pad_height: int = 0) -> bytes:
    """The root of a tree of height `height` over `hashes` (each the root of a subtree of
    height `pad_height`), padded on the right with the roots of zero subtrees of that height.
    """
    if len(hashes) > 1 << height:
        raise ValueError(f"{len(hashes)} hashes do not fit a tree of height {height}")
    layer = list(hashes)
    for level in range(pad_height, pad_height + height):
        if len(layer) % 2:
            layer.append(_PADS[level])
        layer = [_sha(layer[i] + layer[i + 1]) for i in range(0, len(layer), 2)]
    return layer[0] if layer else _PADS[pad_height + height]


def leaf_hashes(data: bytes | memoryview) -> list[bytes]:
    """The SHA-256 of each 16 KiB block of `data` (the last one may be shorter)."""
    view = memoryview(data)
    return [_sha(view[i : i + BLOCK_SIZE]) for i in range(0, len(view), BLOCK_SIZE)]


def piece_hash(leaves: Sequence[bytes], size: int) -> bytes:
    """The hash of one piece of a file of `size` bytes from the piece's leaf hashes.

    A piece of a file larger than one piece is padded to the full piece width; the one piece
    of a smaller file is the whole tree, padded only to a power of two.
    """
    piece_size = piece_size_for(size)
    if size <= piece_size:
        return reduce(leaves, _height(len(leaves)))
    return reduce(leaves, _height(piece_size // BLOCK_SIZE))


def root_of_layer(layer: Sequence[bytes], size: int) -> bytes:
    """The root of a file of `size` bytes from its piece hashes (b"" for an empty file)."""
    if size == 0:
        return b""
    if len(layer) != piece_count(size):
        raise ValueError(f"{len(layer)} piece hashes for a file of {piece_count(size)} pieces")
    if len(layer) == 1:
        return layer[0]
    pad_height = _height(piece_size_for(size) // BLOCK_SIZE)
    return reduce(layer, _height(len(layer)), pad_height)


def split_layer(data: bytes, size: int) -> list[bytes]:
    """A serialized piece layer (hashes one after another) as a list; ValueError if it has
    not exactly one hash per piece of a file of `size` bytes.
    """
    count = piece_count(size)
    if len(data) != count * HASH_SIZE:
        raise ValueError(
            f"{len(data)} bytes of piece hashes; a file of {size} bytes has {count} pieces "
            f"of {piece_size_for(size)} bytes, {count * HASH_SIZE} bytes of hashes"
        )
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


class TreeBuilder:
    """The root and piece layer of a file of a known size, fed its bytes in order.

    With `start` (a piece boundary) it is fed the file from there on, and `layer` holds the
    hashes of the pieces from there on, each as soon as its last byte was fed.
    """

    def __init__(self, size: int, start: int = 0) -> None:
        self.size = size
        self.piece_size = piece_size_for(size)
        if (start % self.piece_size and start != size) or not 0 <= start <= size:
            raise ValueError(f"{start} is not a piece boundary of a file of {size} bytes")
        self.layer: list[bytes] = []
        self._leaves: list[bytes] = []
        self._block = bytearray()
        self._fed = start

    def update(self, data: bytes | memoryview) -> None:
        """Feed the next bytes of the file; ValueError past its end."""
        view = memoryview(data)
        if self._fed + len(view) > self.size:
            raise ValueError(f"{self._fed + len(view)} bytes fed to a file of {self.size}")
        while view:
            room = min(self.piece_size - self._fed % self.piece_size, len(view))
            self._feed_piece(view[:room])
            view = view[room:]
            if self._fed % self.piece_size == 0 or self._fed == self.size:
                self._end_piece()

    def _feed_piece(self, view: memoryview) -> None:
        self._fed += len(view)
        if self._block:
            take = min(BLOCK_SIZE - len(self._block), len(view))
            self._block += view[:take]
            view = view[take:]
            if len(self._block) < BLOCK_SIZE:
                return
            self._leaves.append(_sha(self._block))
            self._block = bytearray()
        whole = len(view) - len(view) % BLOCK_SIZE
        self._leaves.extend(leaf_hashes(view[:whole]))
        self._block += view[whole:]

    def _end_piece(self) -> None:
        if self._block:
            self._leaves.append(_sha(self._block))
            self._block = bytearray()
        if self._leaves:
            self.layer.append(piece_hash(self._leaves, self.size))
            self._leaves = []

    def finish(self) -> bytes:
        """The root, once exactly `size` bytes were fed; ValueError otherwise."""
        if self._fed != self.size:
            raise ValueError(f"fed {self._fed} bytes of a file of {self.size}")
        return root_of_layer(self.layer, self.size)
