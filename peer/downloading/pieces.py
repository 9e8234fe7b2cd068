"""The piece hashes of one download, trusted only once they match the root the tracker listed,
and the check of each piece as its bytes arrive (napshare.common.merkle, BEP 52).
"""

from collections.abc import Sequence
from dataclasses import dataclass

from napshare.common import merkle


class BadLayerError(ValueError):
    """A piece layer that does not match the file's size or pieces root."""


class BadPieceError(ValueError):
    """The bytes of one piece do not hash to its hash in the layer."""

    def __init__(self, name: str, index: int, start: int, end: int) -> None:
        super().__init__(
            f"piece {index} of {name} (bytes {start}-{end - 1}) does not match its hash "
            "in the piece layer"
        )
        self.index = index


@dataclass(frozen=True)
class PieceLayer:
    """One SHA-256 per piece of a file of `size` bytes, checked against its pieces root."""

    size: int
    pieces_root: str
    hashes: tuple[bytes, ...]

    @property
    def piece_size(self) -> int:
        return merkle.piece_size_for(self.size)

    @classmethod
    def of_root(cls, size: int, pieces_root: str) -> "PieceLayer | None":
        """The layer of a file of one piece or less (its root), or None for a larger one."""
        if merkle.piece_count(size) > 1:
            return None
        return cls(size, pieces_root, (bytes.fromhex(pieces_root),) if size else ())

    @classmethod
    def checked(cls, size: int, pieces_root: str, piece_size: int, data: bytes) -> "PieceLayer":
        """The layer a peer sent (its piece size and hashes); BadLayerError unless they are the
        ones of a file of `size` bytes with this root.
        """
        expected = merkle.piece_size_for(size)
        if piece_size != expected:
            raise BadLayerError(
                f"it says the piece size is {piece_size}; a file of {size} bytes has {expected}"
            )
        try:
            hashes = merkle.split_layer(data, size)
        except ValueError as error:
            raise BadLayerError(str(error)) from None
        if merkle.root_of_layer(hashes, size).hex() != pieces_root:
            raise BadLayerError(f"its piece layer does not match the pieces root {pieces_root}")
        return cls(size, pieces_root, tuple(hashes))

    def serialized(self) -> bytes:
        """The hashes one after another, as GetPieceLayer sends them (b"" for one piece)."""
        return b"".join(self.hashes) if len(self.hashes) > 1 else b""

    def end_of(self, index: int) -> int:
        """Where piece `index` ends."""
        return min((index + 1) * self.piece_size, self.size)

    def good(self, index: int, data: Sequence[bytes | memoryview]) -> bool:
        """Whether `data`, all of piece `index` in order, hashes to its hash."""
        tree = merkle.TreeBuilder(self.size, index * self.piece_size)
        for view in data:
            tree.update(view)
        return tree.layer == [self.hashes[index]]
