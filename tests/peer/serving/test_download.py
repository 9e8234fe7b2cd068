"""PeerService.Download over a real channel: chunking, ranges, and every error status."""

import hashlib
import random
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from napshare.common.serving import PortInUseError
from napshare.peer.folder.layout import HASHES_FILE, STATE_DIR
from napshare.peer.folder.store import SharedFolder
from napshare.peer.serving.server import create_server
from napshare.peer.wire import decode_response
from napshare.v1 import peer_pb2

from tests.support.peers import InProcessPeer

CHUNK = 16 * 1024
SIZE = 5 * CHUNK + 123
DATA = random.Random(3).randbytes(SIZE)
HOSTILE = [
    "../x",
    "/etc/passwd",
    "a/../b",
    "a//b",
    STATE_DIR,
    f"{STATE_DIR}/{HASHES_FILE}",
    "a\\b",
    "a\x00b",
    "",
    ".",
    "..",
    "x" * 256,
    "../outside.txt",
]


@pytest.fixture
def peer(tmp_path: Path, start_peer: Callable[..., InProcessPeer]) -> InProcessPeer:
    (tmp_path / "outside.txt").write_bytes(b"secret")
    root = tmp_path / "share"
    root.mkdir()
    (root / "data.bin").write_bytes(DATA)
    (root / "exact.bin").write_bytes(DATA[: 3 * CHUNK])
    (root / "empty").write_bytes(b"")
    (root / "hello.txt").write_bytes(b"hello\n")
    (root / "movie.mp4.part").write_bytes(b"partial")
    (root / "sub").mkdir()
    (root / "sub" / "inner.bin").write_bytes(DATA[:CHUNK])
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.txt").write_bytes(b"secret")
    (root / "link-dir").symlink_to(tmp_path / "elsewhere")
    (root / "link").symlink_to(tmp_path / "outside.txt")
    (root / "inner-link").symlink_to(root / "hello.txt")
    SharedFolder(root).scan()  # writes the hash cache
    return start_peer(root, chunk_size=CHUNK)


def joined(responses: list[peer_pb2.DownloadResponse]) -> bytes:
    return b"".join(r.data for r in responses)


def check_chunking(responses: list[peer_pb2.DownloadResponse], start: int) -> None:
    """Contiguous offsets; every chunk but the last is exactly CHUNK; `file` only on the first."""
    position = start
    for index, response in enumerate(responses):
        assert response.offset == position
        if index < len(responses) - 1:
            assert len(response.data) == CHUNK
        assert response.HasField("file") == (index == 0)
        position += len(response.data)


def test_a_file_in_a_folder_is_served_by_its_path(peer: InProcessPeer) -> None:
    responses = peer.download("sub/inner.bin")

    assert joined(responses) == DATA[:CHUNK]
    assert responses[0].file.name == "sub/inner.bin"


def test_whole_file(peer: InProcessPeer) -> None:
    responses = peer.download("data.bin")

    assert joined(responses) == DATA
    assert len(responses) == 6
    check_chunking(responses, 0)
    assert responses[-1].data == DATA[-123:]
    info = responses[0].file
    assert (info.name, info.size, info.sha256) == (
        "data.bin",
        SIZE,
        hashlib.sha256(DATA).hexdigest(),
    )


def test_size_a_multiple_of_the_chunk(peer: InProcessPeer) -> None:
    responses = peer.download("exact.bin")

    assert [len(r.data) for r in responses] == [CHUNK] * 3
    assert joined(responses) == DATA[: 3 * CHUNK]


def test_small_file(peer: InProcessPeer) -> None:
    (response,) = peer.download("hello.txt")
    assert (response.offset, response.data, response.file.size) == (0, b"hello\n", 6)


def test_empty_file_gets_one_response_without_data(peer: InProcessPeer) -> None:
    (response,) = peer.download("empty")

    assert response.data == b""
    assert (response.file.name, response.file.size) == ("empty", 0)
    assert response.file.sha256 == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize(
    ("offset", "limit"),
    [(1, 0), (CHUNK, 0), (CHUNK + 7, 0), (100, 10), (100, CHUNK), (5, 3 * CHUNK + 1), (10, 10**12)],
)
def test_ranges(peer: InProcessPeer, offset: int, limit: int) -> None:
    responses = peer.download("data.bin", offset=offset, limit=limit)

    end = SIZE if limit == 0 else min(SIZE, offset + limit)
    assert joined(responses) == DATA[offset:end]
    check_chunking(responses, offset)
    assert responses[0].file.size == SIZE


@pytest.mark.parametrize(("offset", "limit"), [(SIZE, 0), (SIZE, 5)])
def test_offset_at_the_end_gets_one_empty_response(
    peer: InProcessPeer, offset: int, limit: int
) -> None:
    (response,) = peer.download("data.bin", offset=offset, limit=limit)
    assert (response.offset, response.data, response.file.size) == (SIZE, b"", SIZE)


def test_matching_sha256_is_served(peer: InProcessPeer) -> None:
    digest = hashlib.sha256(DATA).hexdigest()
    assert joined(peer.download("data.bin", sha256=digest)) == DATA
    assert joined(peer.download("data.bin", sha256=digest.upper())) == DATA


def test_a_file_that_changed_is_refused(peer: InProcessPeer) -> None:
    assert peer.error("data.bin", sha256="0" * 64) == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_invalid_arguments(peer: InProcessPeer, name: str) -> None:
    assert peer.error(name) == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "name",
    [
        "missing",
        "link",
        "inner-link",
        "sub",
        HASHES_FILE,
        "sub/missing",
        "link-dir/x.txt",
        "data.bin/x",
    ],
)
def test_what_is_not_shared_is_not_found(peer: InProcessPeer, name: str) -> None:
    assert (peer.folder.root / STATE_DIR / HASHES_FILE).is_file()
    assert peer.error(name) == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"offset": -1}, grpc.StatusCode.OUT_OF_RANGE),
        ({"offset": SIZE + 1}, grpc.StatusCode.OUT_OF_RANGE),
        ({"offset": 2**62}, grpc.StatusCode.OUT_OF_RANGE),
        ({"limit": -1}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"sha256": "abc"}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"sha256": "g" * 64}, grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_bad_requests(
    peer: InProcessPeer, fields: dict[str, object], code: grpc.StatusCode
) -> None:
    assert peer.error("data.bin", **fields) == code


def test_errors_say_why(peer: InProcessPeer) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        peer.download("data.bin", offset=SIZE + 1)
    assert f"past the end of 'data.bin' ({SIZE} bytes)" in caught.value.details()


def test_a_file_added_later_is_served(peer: InProcessPeer) -> None:
    (peer.folder.root / "new.txt").write_bytes(b"new")
    assert joined(peer.download("new.txt")) == b"new"


def test_a_file_that_shrinks_while_sent_fails(peer: InProcessPeer) -> None:
    path = peer.folder.root / "sparse.bin"
    with path.open("wb") as out:
        out.truncate(64 << 20)  # far more than flow control lets the server send ahead
    stream = peer.stub.Download(peer_pb2.DownloadRequest(name="sparse.bin"))
    first = next(stream)
    with path.open("r+b") as out:
        out.truncate(CHUNK)  # the same inode, shorter
    with pytest.raises(grpc.RpcError) as caught:
        for _ in stream:
            pass
    assert first.file.size == 64 << 20
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "shrank" in caught.value.details()


def test_a_port_in_use_is_refused(peer: InProcessPeer) -> None:
    with pytest.raises(PortInUseError, match=str(peer.port)):
        create_server(peer.folder, host="127.0.0.1", port=peer.port)


@pytest.mark.parametrize("chunk_size", [0, 1000, 16 * 1024 - 1, 2 * 1024 * 1024 + 1])
def test_bad_chunk_sizes_are_refused(tmp_path: Path, chunk_size: int) -> None:
    with pytest.raises(ValueError, match="chunk size"):
        create_server(SharedFolder(tmp_path), host="127.0.0.1", chunk_size=chunk_size)


def test_a_client_may_decode_chunks_without_copies(peer: InProcessPeer) -> None:
    download = peer.channel.unary_stream(
        "/napshare.v1.PeerService/Download",
        request_serializer=peer_pb2.DownloadRequest.SerializeToString,
        response_deserializer=decode_response,
    )
    chunks = list(download(peer_pb2.DownloadRequest(name="data.bin", offset=3)))

    assert b"".join(chunk.data for chunk in chunks) == DATA[3:]
    assert [chunk.offset for chunk in chunks] == [3 + i * CHUNK for i in range(len(chunks))]
    assert chunks[0].file is not None
    assert chunks[0].file.size == SIZE
