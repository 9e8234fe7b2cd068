"""Every Download error carries an ErrorInfo of its documented reason; a busy peer, RetryInfo."""

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from napshare.peer.serving.slots import MAX_RETRY_DELAY, MIN_RETRY_DELAY
from napshare.v1 import peer_pb2

from tests.support.peers import InProcessPeer

BIG = 64 << 20  # far more than HTTP/2 flow control lets a server send ahead of its reader


@pytest.fixture
def root(tmp_path: Path) -> Path:
    with (tmp_path / "big.bin").open("wb") as out:
        out.truncate(BIG)
    (tmp_path / "small.txt").write_bytes(b"small")
    return tmp_path


def failure(peer: InProcessPeer, name: str, **fields: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        peer.download(name, **fields)
    return caught.value


def test_a_busy_peer_says_upload_slots_full_and_when_to_retry(
    root: Path, start_peer: Callable[..., InProcessPeer], rpc_details: Callable[..., tuple]
) -> None:
    peer = start_peer(root, max_uploads=2)
    held = []
    for _ in range(2):  # two real streams, each holding a slot: first chunk read, then left
        stream = peer.stub.Download(peer_pb2.DownloadRequest(name="big.bin"))
        assert next(stream).file.size == BIG
        held.append(stream)

    error = failure(peer, "small.txt")

    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info, retry = rpc_details(error)
    assert info.reason == "UPLOAD_SLOTS_FULL"
    assert retry is not None
    delay = retry.retry_delay.ToTimedelta().total_seconds()
    assert MIN_RETRY_DELAY <= delay <= MAX_RETRY_DELAY
    for stream in held:
        stream.cancel()


CASES = {
    "not shared": ({"name": "absent.txt"}, grpc.StatusCode.NOT_FOUND, "FILE_NOT_SHARED"),
    "bad name": ({"name": "../x"}, grpc.StatusCode.INVALID_ARGUMENT, "NAME_INVALID"),
    "bad sha256": (
        {"name": "small.txt", "sha256": "xyz"},
        grpc.StatusCode.INVALID_ARGUMENT,
        "SHA256_INVALID",
    ),
    "negative limit": (
        {"name": "small.txt", "limit": -1},
        grpc.StatusCode.INVALID_ARGUMENT,
        "LIMIT_INVALID",
    ),
    "negative offset": (
        {"name": "small.txt", "offset": -1},
        grpc.StatusCode.OUT_OF_RANGE,
        "OFFSET_NEGATIVE",
    ),
    "offset past the end": (
        {"name": "small.txt", "offset": 6},
        grpc.StatusCode.OUT_OF_RANGE,
        "OFFSET_PAST_END",
    ),
    "another sha256": (
        {"name": "small.txt", "sha256": hashlib.sha256(b"other").hexdigest()},
        grpc.StatusCode.FAILED_PRECONDITION,
        "FILE_CHANGED",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_refusal_carries_its_reason(
    root: Path,
    start_peer: Callable[..., InProcessPeer],
    rpc_details: Callable[..., tuple],
    case: tuple[dict[str, object], grpc.StatusCode, str],
) -> None:
    fields, code, reason = case
    peer = start_peer(root)
    name = str(fields["name"])
    fields = {k: v for k, v in fields.items() if k != "name"}

    error = failure(peer, name, **fields)

    assert error.code() == code
    info, retry = rpc_details(error)
    assert info.reason == reason
    assert retry is None


def test_a_shared_folder_gone_is_folder_unavailable(
    root: Path, start_peer: Callable[..., InProcessPeer], rpc_details: Callable[..., tuple]
) -> None:
    peer = start_peer(root)
    shutil.rmtree(root)

    error = failure(peer, "small.txt")

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert rpc_details(error)[0].reason == "FOLDER_UNAVAILABLE"
    assert "is gone" in error.details()


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff", b"\x0a\x02\xc3\x28"], ids=["tag", "utf8"])
def test_bytes_that_are_no_download_request_are_request_malformed(
    root: Path,
    start_peer: Callable[..., InProcessPeer],
    rpc_details: Callable[..., tuple],
    garbage: bytes,
) -> None:
    peer = start_peer(root)
    call = peer.channel.unary_stream("/napshare.v1.PeerService/Download", None, None)

    with pytest.raises(grpc.RpcError) as caught:
        list(call(garbage, timeout=30))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert "not a DownloadRequest message" in caught.value.details()
    assert rpc_details(caught.value)[0].reason == "REQUEST_MALFORMED"
    assert peer.download("small.txt")[-1].data == b"small"
