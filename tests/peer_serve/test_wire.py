"""The hand-built DownloadResponse bytes are exactly what the generated code makes and reads."""

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from napshare.v1 import file_info_pb2, peer_pb2

from peer.wire import ChunkBuffer, file_field, varint

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
