"""DownloadResponse in protobuf wire format, built by hand around file bytes read in place.

The bytes are what `DownloadResponse.SerializeToString()` gives (fields in number order,
zero values left out), so every protobuf client decodes them as usual; building them here
saves a message object and two copies of each chunk.
"""

import os
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from napshare.v1 import file_info_pb2, peer_pb2

_OFFSET_TAG = 0x08  # field 1, varint
_DATA_TAG = 0x12  # field 2, length-delimited
_FILE_TAG = 0x1A  # field 3, length-delimited
_MAX_VARINT = 10
HEADROOM = 2 * (1 + _MAX_VARINT)
TAILROOM = 1024  # > 1 + 2 + a FileInfo with a 255-byte name (about 410 bytes)


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


def file_field(name: str, size: int, sha256: str, pieces_root: str = "") -> bytes:
    """Field 3 (`file`) of a DownloadResponse, ready to append."""
    body = file_info_pb2.FileInfo(
        name=name, size=size, sha256=sha256, pieces_root=pieces_root
    ).SerializeToString()
    return bytes([_FILE_TAG]) + varint(len(body)) + body


def queue_message(position: int, waiting: int, estimated_seconds: int) -> bytes:
    """A DownloadResponse that says where a waiting request stands in the queue."""
    queued = peer_pb2.QueuePosition(
        position=position, waiting=waiting, estimated_seconds=estimated_seconds
    )
    return peer_pb2.DownloadResponse(queued=queued).SerializeToString()


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


@dataclass(frozen=True)
class Chunk:
    """A decoded DownloadResponse: `data` is a view into the received message, not a copy;
    `queued` is set while the request waits in the peer's queue.
    """

    offset: int
    data: memoryview
    file: file_info_pb2.FileInfo | None
    queued: peer_pb2.QueuePosition | None = None


def decode_response(message: bytes) -> Chunk:
    """Decode DownloadResponse bytes as the generated parser would, without copying `data`.

    For a client that wants to skip a copy per chunk: pass it as the `response_deserializer`
    of `channel.unary_stream("/napshare.v1.PeerService/Download", ...)`. Unknown fields are
    skipped; malformed input raises ValueError.
    """
    view = memoryview(message)
    offset, data, file = 0, view[:0], None
    queued: peer_pb2.QueuePosition | None = None
    position, end = 0, len(message)
    while position < end:
        key, position = _read_varint(message, position)
        field, wire_type = key >> 3, key & 7
        if field == 0:
            raise ValueError("malformed DownloadResponse (field number 0)")
        if wire_type == 0:
            value, position = _read_varint(message, position)
            if field == 1:
                offset = value - (1 << 64) if value >= 1 << 63 else value
            continue
        if wire_type == 2:
            length, position = _read_varint(message, position)
            stop = position + length
            if stop > end:
                raise ValueError("truncated DownloadResponse")
            if field == 2:
                data = view[position:stop]
            elif field == 3:
                file = file or file_info_pb2.FileInfo()
                try:
                    file.MergeFromString(message[position:stop])
                except DecodeError as error:
                    raise ValueError(f"malformed FileInfo in DownloadResponse: {error}") from error
            elif field == 4:
                queued = queued or peer_pb2.QueuePosition()
                try:
                    queued.MergeFromString(message[position:stop])
                except DecodeError as error:
                    raise ValueError(
                        f"malformed QueuePosition in DownloadResponse: {error}"
                    ) from error
            position = stop
            continue
        width = {1: 8, 5: 4}.get(wire_type)
        if width is None or position + width > end:
            raise ValueError(f"malformed DownloadResponse (wire type {wire_type})")
        position += width
    return Chunk(offset, data, file, queued)


def _read_varint(message: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(message) or shift > 63:
            raise ValueError("malformed varint in DownloadResponse")
        byte = message[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value & ((1 << 64) - 1), position
        shift += 7
