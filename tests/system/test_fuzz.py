"""Fuzzing a running tracker and peer: no input gets UNKNOWN or INTERNAL, nothing breaks them.

Random bytes go to every method of both services and of health and reflection, and
structurally valid messages with hostile strings, huge and negative numbers and many files
go to each RPC, over real channels. Afterwards both servers still answer health and memory
has not run away.
"""

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import given, settings
from hypothesis import strategies as st
from napshare.common import error_details, reasons
from napshare.peer.folder.store import SharedFolder
from napshare.peer.serving.server import create_server as create_peer
from napshare.tracker.server import create_server as create_tracker
from napshare.v1 import file_info_pb2, peer_pb2, tracker_pb2

BUGS = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
TRACKER_METHODS = ["Join", "Search", "Update", "Heartbeat", "Leave"]
DOWNLOAD = "/napshare.v1.PeerService/Download"
HEALTH_UNARY = ["/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/List"]
HEALTH_WATCH = "/grpc.health.v1.Health/Watch"
REFLECTION = [
    f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo"
    for version in ("v1", "v1alpha")
]
COMMON_METHODS = [*HEALTH_UNARY, HEALTH_WATCH, *REFLECTION]
UNDECODABLE = b"\xff"  # field 31 with wire type 7, which does not exist
RSS_GROWTH_LIMIT_KIB = 256 * 1024  # generous: a leak of every request would exceed it
FUZZ = settings(max_examples=200, deadline=None, database=None)

SHARED = {"small.txt": b"small", "empty.bin": b"", "chunks.bin": bytes(range(256)) * 1024}


@dataclass
class Servers:
    """A tracker and a peer server on loopback, a channel to each, and the RSS at the start."""

    tracker: grpc.Channel
    peer: grpc.Channel
    rss_kib: int


def rss_kib() -> int:
    """This process's resident set size (both servers run in it), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    root = tmp_path_factory.mktemp("shared")
    for name, data in SHARED.items():
        (root / name).write_bytes(data)
    tracker, tracker_port = create_tracker(host="127.0.0.1", port=0)
    peer, peer_port = create_peer(SharedFolder(root), host="127.0.0.1", port=0)
    tracker_channel = grpc.insecure_channel(f"127.0.0.1:{tracker_port}")
    peer_channel = grpc.insecure_channel(f"127.0.0.1:{peer_port}")
    yield Servers(tracker_channel, peer_channel, rss_kib())
    tracker_channel.close()
    peer_channel.close()
    tracker.stop(None)
    peer.stop(None)


def tracker_call(servers: Servers, method: str) -> Callable[..., bytes]:
    """The tracker's `method` on raw bytes."""
    return servers.tracker.unary_unary(f"/napshare.v1.TrackerService/{method}", None, None)


def code_of(call: Callable[[], object]) -> grpc.StatusCode:
    """The status code `call` ends with (OK if it raises nothing)."""
    try:
        call()
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()
        return code
    return grpc.StatusCode.OK


def unary(servers: Servers, method: str, request: bytes) -> grpc.StatusCode:
    return code_of(lambda: tracker_call(servers, method)(request, timeout=30))


def download(servers: Servers, request: bytes) -> grpc.StatusCode:
    stream = servers.peer.unary_stream(DOWNLOAD, None, None)
    return code_of(lambda: list(stream(request, timeout=30)))


def channel_of(servers: Servers, server: str) -> grpc.Channel:
    return servers.tracker if server == "tracker" else servers.peer


def common_call(channel: grpc.Channel, method: str, request: bytes) -> None:
    """Call a health or reflection `method` with raw bytes; raise grpc.RpcError if it fails."""
    if method in HEALTH_UNARY:
        channel.unary_unary(method, None, None)(request, timeout=30)
    elif method == HEALTH_WATCH:
        stream = channel.unary_stream(method, None, None)(request, timeout=30)
        try:
            next(stream)  # a Watch that parsed streams until cancelled: its first answer will do
        finally:
            stream.cancel()
    else:
        list(channel.stream_stream(method, None, None)(iter([request]), timeout=30))


def assert_healthy(servers: Servers) -> None:
    for channel in (servers.tracker, servers.peer):
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    growth = rss_kib() - servers.rss_kib
    assert growth < RSS_GROWTH_LIMIT_KIB, f"RSS grew by {growth} KiB"


# Strings that have broken or could break a parser: paths, control bytes, long, odd Unicode.
NASTY = [
    "",
    ".",
    "..",
    "../x.mp4",
    "/etc/passwd",
    "a/b",
    "a\\b",
    "a\x00b",
    "\n",
    " ",
    "%00",
    "é" * 200,
    "x" * 70_000,
    "\u202e",
    "\U0001f600" * 64,
    "127.0.0.1:1",
    "[::1]:65535",
    "h:99999999999",
    "A" * 64,
    "a" * 64,
]
text = st.one_of(
    st.sampled_from(NASTY),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=300),
)
int64 = st.one_of(
    st.sampled_from([0, -1, 1, 2**31, 2**63 - 1, -(2**63)]), st.integers(-(2**63), 2**63 - 1)
)
uint32 = st.one_of(st.sampled_from([0, 1, 65535, 65536, 2**32 - 1]), st.integers(0, 2**32 - 1))
sha256 = st.one_of(text, st.binary(min_size=32, max_size=32).map(lambda b: b.hex()))
file_info = st.builds(file_info_pb2.FileInfo, name=text, size=int64, sha256=sha256)


def _many(stem: str, count: int, size: int) -> list[file_info_pb2.FileInfo]:
    """`count` files named after one hostile stem: many files without generating each."""
    return [
        file_info_pb2.FileInfo(
            name=f"{stem}{n}", size=size, sha256=hashlib.sha256(b"%d" % n).hexdigest()
        )
        for n in range(count)
    ]


files = st.one_of(
    st.lists(file_info, max_size=20),
    st.builds(_many, text, st.integers(100, 1000), int64),
)
peer_id = st.one_of(text, st.sampled_from(["127.0.0.1:8776", "127.0.0.1:1"]))

TRACKER_MESSAGES = st.one_of(
    st.tuples(
        st.just("Join"),
        st.builds(
            tracker_pb2.JoinRequest,
            host=st.one_of(text, st.sampled_from(["", "127.0.0.1", "::1", "localhost"])),
            port=uint32,
            files=files,
        ),
    ),
    st.tuples(
        st.just("Search"),
        st.builds(
            tracker_pb2.SearchRequest,
            name=text,
            query=text,
            limit=uint32,
            peer_id=peer_id,
            page_size=uint32,
            page_token=text,
        ),
    ),
    st.tuples(
        st.just("Update"),
        st.builds(
            tracker_pb2.UpdateRequest,
            peer_id=peer_id,
            token=text,
            files=files,
            removed_names=st.lists(text, max_size=50),
        ),
    ),
    st.tuples(
        st.just("Heartbeat"), st.builds(tracker_pb2.HeartbeatRequest, peer_id=peer_id, token=text)
    ),
    st.tuples(st.just("Leave"), st.builds(tracker_pb2.LeaveRequest, peer_id=peer_id, token=text)),
)
DOWNLOAD_REQUESTS = st.builds(
    peer_pb2.DownloadRequest,
    name=st.one_of(text, st.sampled_from(sorted(SHARED))),
    offset=int64,
    limit=int64,
    sha256=st.one_of(
        sha256, st.sampled_from([hashlib.sha256(data).hexdigest() for data in SHARED.values()])
    ),
)


@FUZZ
@given(method=st.sampled_from(TRACKER_METHODS), data=st.binary(max_size=2048))
def test_random_bytes_to_the_tracker(servers: Servers, method: str, data: bytes) -> None:
    assert unary(servers, method, data) not in BUGS


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes_to_the_peer(servers: Servers, data: bytes) -> None:
    assert download(servers, data) not in BUGS


@FUZZ
@given(
    server=st.sampled_from(["tracker", "peer"]),
    method=st.sampled_from(COMMON_METHODS),
    data=st.binary(max_size=2048),
)
def test_random_bytes_to_health_and_reflection(
    servers: Servers, server: str, method: str, data: bytes
) -> None:
    channel = channel_of(servers, server)
    code = code_of(lambda: common_call(channel, method, data))
    assert code not in BUGS


@pytest.mark.parametrize("server", ["tracker", "peer"])
@pytest.mark.parametrize("method", COMMON_METHODS)
def test_undecodable_bytes_to_health_and_reflection_are_invalid_argument(
    servers: Servers, server: str, method: str
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        common_call(channel_of(servers, server), method, UNDECODABLE)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    found = error_details.read(raised.value)
    assert found is not None
    assert found.reason == reasons.REQUEST_MALFORMED


@FUZZ
@given(call=TRACKER_MESSAGES)
def test_hostile_tracker_messages(
    servers: Servers, call: tuple[str, tracker_pb2.JoinRequest]
) -> None:
    method, request = call
    assert unary(servers, method, request.SerializeToString()) not in BUGS


@FUZZ
@given(request=DOWNLOAD_REQUESTS)
def test_hostile_download_requests(servers: Servers, request: peer_pb2.DownloadRequest) -> None:
    assert download(servers, request.SerializeToString()) not in BUGS


def test_both_servers_still_answer_health_and_memory_stayed_bounded(servers: Servers) -> None:
    # Run after the fuzzing above (same module, same servers): a server it killed or wedged,
    # or one that kept what it was sent, fails here.
    assert_healthy(servers)
