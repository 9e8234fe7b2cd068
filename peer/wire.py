"""DownloadResponse in protobuf wire format, built by hand around file bytes read in place.

The bytes are what `DownloadResponse.SerializeToString()` gives (fields in number order,
zero values left out), so every protobuf client decodes them as usual; building them here
saves a message object and two copies of each chunk.
"""

import os

from napshare.v1 import file_info_pb2

_OFFSET_TAG = 0x08  # field 1, varint
_DATA_TAG = 0x12  # field 2, length-delimited
_FILE_TAG = 0x1A  # field 3, length-delimited
_MAX_VARINT = 10
HEADROOM = 2 * (1 + _MAX_VARINT)
TAILROOM = 1024  # > 1 + 2 + a FileInfo with a 255-byte name (about 340 bytes)


def varint(value: int) -> bytes:
    """`value` as a protobuf varint; negative numbers as their 64-bit two's complement."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def file_field(name: str, size: int, sha256: str) -> bytes:
    """Field 3 (`file`) of a DownloadResponse, ready to append."""
    body = file_info_pb2.FileInfo(name=name, size=size, sha256=sha256).SerializeToString()
    return bytes([_FILE_TAG]) + varint(len(body)) + body


class ChunkBuffer:
    """One reusable buffer that file data is read into, with room for the fields around it."""

    def __init__(self, chunk_size: int) -> None:
        self.chunk_size = chunk_size
        self._buffer = bytearray(HEADROOM + chunk_size + TAILROOM)
        self._view = memoryview(self._buffer)

    def read(self, fd: int, position: int, count: int) -> int:
        """Read up to `count` (at most chunk_size) bytes of `fd` at `position`; the number read."""
        target = self._view[HEADROOM : HEADROOM + count]
        done = 0
        while done < count:
            got = os.preadv(fd, [target[done:]], position + done)
            if got == 0:
                break
            done += got
        return done

    def message(self, offset: int, length: int, file: bytes = b"") -> bytes:
        """The DownloadResponse for the `length` bytes last read, at file `offset`, plus `file`."""
        if len(file) > TAILROOM:
            raise ValueError(f"file field of {len(file)} bytes exceeds {TAILROOM}")
        header = bytearray()
        if offset:
            header.append(_OFFSET_TAG)
            header += varint(offset)
        if length:
            header.append(_DATA_TAG)
            header += varint(length)
        start = HEADROOM - len(header)
        end = HEADROOM + length
        self._buffer[start:HEADROOM] = header
        if file:
            self._buffer[end : end + len(file)] = file
        return bytes(self._view[start : end + len(file)])
