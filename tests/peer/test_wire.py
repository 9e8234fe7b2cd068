"""The hand-built DownloadResponse bytes are exactly what the generated code makes and reads."""

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.message import DecodeError
from napshare.peer.wire import ChunkBuffer, decode_response, file_field, queue_message, varint
from napshare.v1 import file_info_pb2, peer_pb2

OFFSETS = [0, 1, 127, 128, 16383, 16384, 2**31 - 1, 2**31, 2**32 + 5, 5 * 2**30 + 1, 2**62]
LENGTHS = [0, 1, 127, 128, 300, 16384, 65536]
NAMES = ["a", "Aula 1.mp4", "ação ☃.mkv", "x" * 255, "é" * 127]


@pytest.fixture
def data_fd(tmp_path: Path) -> Iterator[int]:
    path = tmp_path / "data"
    path.write_bytes(random.Random(7).randbytes(65536 + 100))
    fd = os.open(path, os.O_RDONLY)
    yield fd
    os.close(fd)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**31, 2**63 - 1, -1])
def test_varint_matches_protobuf(value: int) -> None:
    expected = peer_pb2.DownloadResponse(offset=value).SerializeToString()
    assert (b"\x08" + varint(value) if value else b"") == expected


@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize("length", LENGTHS)
def test_chunk_bytes_equal_generated_serializer(data_fd: int, offset: int, length: int) -> None:
    buffer = ChunkBuffer(65536)
    position = length % 97
    assert buffer.read(data_fd, position, length) == length
    data = os.pread(data_fd, length, position)

    built = buffer.message(offset, length)

    expected = peer_pb2.DownloadResponse(offset=offset, data=data)
    assert built == expected.SerializeToString()
    assert peer_pb2.DownloadResponse.FromString(built) == expected


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("offset", "length"), [(0, 0), (0, 1000), (2**31, 65536), (7, 3)])
def test_first_chunk_with_file_info(data_fd: int, name: str, offset: int, length: int) -> None:
    info = file_info_pb2.FileInfo(name=name, size=2**33 + 3, sha256="ab" * 32)
    buffer = ChunkBuffer(65536)
    buffer.read(data_fd, 0, length)

    built = buffer.message(offset, length, file_field(info.name, info.size, info.sha256))

    expected = peer_pb2.DownloadResponse(
        offset=offset, data=os.pread(data_fd, length, 0), file=info
    )
    assert built == expected.SerializeToString()
    parsed = peer_pb2.DownloadResponse.FromString(built)
    assert parsed == expected
    assert parsed.HasField("file")


def test_buffer_is_reused_without_corrupting_earlier_messages(data_fd: int) -> None:
    buffer = ChunkBuffer(16384)
    buffer.read(data_fd, 0, 16384)
    first = buffer.message(0, 16384, file_field("f", 1, "0" * 64))
    buffer.read(data_fd, 16384, 100)
    second = buffer.message(16384, 100)

    assert peer_pb2.DownloadResponse.FromString(first).data == os.pread(data_fd, 16384, 0)
    assert peer_pb2.DownloadResponse.FromString(second).data == os.pread(data_fd, 100, 16384)
    assert not peer_pb2.DownloadResponse.FromString(second).HasField("file")


def test_read_stops_at_end_of_file(data_fd: int) -> None:
    buffer = ChunkBuffer(65536)
    assert buffer.read(data_fd, 65536 + 90, 1000) == 10


def encoded_key(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def unknown_fields(rng: random.Random) -> bytes:
    """A few fields DownloadResponse does not have, of every wire type a parser must skip."""
    out = b""
    for _ in range(rng.randrange(3)):
        field = rng.randrange(4, 2000)
        kind = rng.choice([0, 1, 2, 5])
        out += encoded_key(field, kind)
        if kind == 0:
            out += varint(rng.randrange(2**64))
        elif kind == 2:
            body = rng.randbytes(rng.randrange(20))
            out += varint(len(body)) + body
        else:
            out += rng.randbytes(8 if kind == 1 else 4)
    return out


def test_decoder_agrees_with_generated_parser() -> None:
    rng = random.Random(11)
    for _ in range(500):
        parts = []
        if rng.random() < 0.8:
            parts.append(encoded_key(1, 0) + varint(rng.choice([0, 5, 2**31, 2**40, -3])))
        if rng.random() < 0.8:
            data = rng.randbytes(rng.randrange(300))
            parts.append(encoded_key(2, 2) + varint(len(data)) + data)
        if rng.random() < 0.5:
            info = file_info_pb2.FileInfo(name="f", size=rng.randrange(2**40), sha256="c" * 64)
            parts.append(file_field(info.name, info.size, info.sha256))
        parts.append(unknown_fields(rng))
        rng.shuffle(parts)
        message = b"".join(parts)

        chunk = decode_response(message)

        expected = peer_pb2.DownloadResponse.FromString(message)
        assert (chunk.offset, bytes(chunk.data)) == (expected.offset, expected.data)
        assert chunk.file == (expected.file if expected.HasField("file") else None)


@pytest.mark.parametrize(
    "message",
    [b"\x08", b"\x12\x05abc", b"\x1a\x02\x0a\x05", b"\x0b", b"\x00\x01", b"\x08" + b"\xff" * 11],
)
def test_decoder_rejects_malformed_messages(message: bytes) -> None:
    with pytest.raises(DecodeError):
        peer_pb2.DownloadResponse.FromString(message)
    with pytest.raises(ValueError, match=r"malformed|truncated"):
        decode_response(message)


def test_decoder_reads_a_real_stream_without_copying(data_fd: int) -> None:
    buffer = ChunkBuffer(65536)
    buffer.read(data_fd, 0, 65536)
    message = buffer.message(2**33, 65536, file_field("f", 2**34, "d" * 64))

    chunk = decode_response(message)

    assert chunk.offset == 2**33
    assert chunk.data.obj is message
    assert chunk.data == os.pread(data_fd, 65536, 0)
    assert chunk.file is not None
    assert chunk.file.size == 2**34


def test_a_queue_position_is_built_and_read_as_protobuf_does() -> None:
    message = queue_message(3, 5, 42)
    parsed = peer_pb2.DownloadResponse.FromString(message)
    chunk = decode_response(message)

    assert (parsed.queued.position, parsed.queued.waiting, parsed.queued.estimated_seconds) == (
        3,
        5,
        42,
    )
    assert chunk.queued == parsed.queued
    assert not chunk.data
    assert chunk.file is None
    assert decode_response(peer_pb2.DownloadResponse(data=b"x").SerializeToString()).queued is None
