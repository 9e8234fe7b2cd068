"""A sparse file of 2.5 GiB + 1 byte through a real channel, and the serving peer's memory."""

import hashlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from napshare.v1 import peer_pb2, peer_pb2_grpc

from tests.support.files import GIB, sha256_file
from tests.support.peers import InProcessPeer

pytestmark = pytest.mark.slow

BIG_SIZE = 5 * GIB // 2 + 1
BIG_MARKERS = {0: b"N", 2**31 - 1: b"A", 2**31: b"P", BIG_SIZE - 1: b"!"}
CHUNK = 1024 * 1024
MAX_RSS_KIB = 150 * 1024

SERVE = """
import sys
from pathlib import Path
from napshare.peer.serving.server import create_server
from napshare.peer.folder.store import SharedFolder
server, port = create_server(SharedFolder(Path(sys.argv[1])), host="127.0.0.1")
print(port, flush=True)
sys.stdin.read()
server.stop(None)
"""


@pytest.fixture(scope="session")
def big_sparse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A sparse file of 2.5 GiB + 1 byte with markers around 2^31, and its sha256."""
    folder = tmp_path_factory.mktemp("big")
    path = folder / "big.bin"
    with path.open("wb") as out:
        out.truncate(BIG_SIZE)
        for position, marker in BIG_MARKERS.items():
            out.seek(position)
            out.write(marker)
    return path, sha256_file(path)


def test_streams_past_2_gib_with_exact_chunks(
    big_sparse: tuple[Path, str], start_peer: Callable[..., InProcessPeer]
) -> None:
    path, digest = big_sparse
    peer = start_peer(path.parent)
    hasher = hashlib.sha256()
    position = 0
    markers: dict[int, bytes] = {}
    for index, response in enumerate(peer.stub.Download(peer_pb2.DownloadRequest(name="big.bin"))):
        assert response.offset == position
        assert response.HasField("file") == (index == 0)
        assert len(response.data) == CHUNK or position + len(response.data) == BIG_SIZE
        for marker in BIG_MARKERS:
            if position <= marker < position + len(response.data):
                markers[marker] = response.data[marker - position : marker - position + 1]
        hasher.update(response.data)
        position += len(response.data)

    assert position == BIG_SIZE
    assert hasher.hexdigest() == digest
    assert markers == BIG_MARKERS


def test_range_across_2_gib(
    big_sparse: tuple[Path, str], start_peer: Callable[..., InProcessPeer]
) -> None:
    path, digest = big_sparse
    peer = start_peer(path.parent)
    responses = peer.download("big.bin", offset=2**31 - 1, limit=2, sha256=digest)

    assert [(r.offset, r.data) for r in responses] == [(2**31 - 1, b"AP")]
    assert responses[0].file.size == BIG_SIZE


@pytest.fixture
def peer_process(big_sparse: tuple[Path, str]) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A peer server in its own process, sharing the big file's folder."""
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(big_sparse[0].parent)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        yield process, int(process.stdout.readline())
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


@pytest.mark.serial  # a peak of memory, which a loaded machine moves
def test_memory_stays_bounded_while_serving(
    big_sparse: tuple[Path, str], peer_process: tuple[subprocess.Popen[str], int]
) -> None:
    process, port = peer_process
    hasher = hashlib.sha256()
    size = 0
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = peer_pb2_grpc.PeerServiceStub(channel)
        for response in stub.Download(peer_pb2.DownloadRequest(name="big.bin")):
            hasher.update(response.data)
            size += len(response.data)
        peak = peak_rss_kib(process.pid)

    assert (size, hasher.hexdigest()) == (BIG_SIZE, big_sparse[1])
    assert peak < MAX_RSS_KIB, f"the serving peer peaked at {peak} KiB"
