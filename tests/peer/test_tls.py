"""Identity and TLS end to end: real TLS trackers and peers, a hijacker, a middleman, pins."""

import contextlib
import hashlib
import os
import socket
import ssl
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from napshare.common import reasons
from napshare.common.exitcodes import ExitCode
from napshare.common.identity import PEER_NAME, TRACKER_NAME, Identity, make_identity
from napshare.common.tls import pinned_channel
from napshare.peer.downloading.engine import DownloadOptions
from napshare.peer.errors import TrackerRejectedError
from napshare.peer.folder.layout import IDENTITY_DIR, KNOWN_TRACKERS_FILE, STATE_DIR
from napshare.peer.folder.store import SharedFile, SharedFolder
from napshare.peer.node import Node, NodeConfig
from napshare.peer.serving.server import create_server as create_peer
from napshare.peer.tracker_client import TrackerClient
from napshare.peer.transport import Transport
from napshare.tracker.server import create_server as create_tracker
from napshare.v1 import file_info_pb2, tracker_pb2, tracker_pb2_grpc

from tests.support.net import free_port
from tests.support.peers import run_peer, spawn_cli

HELLO = b"hello, napshare\n"


@dataclass
class TlsTracker:
    """An in-process TLS tracker, its identity and its certificate written to a file."""

    server: grpc.Server
    port: int
    identity: Identity
    cert_file: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def transport(self) -> Transport:
        return Transport(plaintext=False, tracker_cert=self.identity.certificate_pem)

    def client(self) -> TrackerClient:
        return TrackerClient(self.address, transport=self.transport())


@pytest.fixture
def make_tls_tracker(tmp_path: Path) -> Iterator[Callable[..., TlsTracker]]:
    servers: list[grpc.Server] = []

    def start(port: int = 0, identity: Identity | None = None) -> TlsTracker:
        identity = identity or make_identity(TRACKER_NAME, ["127.0.0.1"])
        server, bound = create_tracker(host="127.0.0.1", port=port, tls=identity)
        servers.append(server)
        cert_file = tmp_path / f"tracker-{bound}.pem"
        cert_file.write_bytes(identity.certificate_pem)
        return TlsTracker(server, bound, identity, cert_file)

    yield start
    for server in servers:
        server.stop(None)


@pytest.fixture
def tls_tracker(make_tls_tracker: Callable[..., TlsTracker]) -> TlsTracker:
    return make_tls_tracker()


@pytest.fixture
def tls_node(tmp_path: Path) -> Iterator[Callable[..., Node]]:
    """Start in-process serving peers over TLS; stopped after the test."""
    nodes: list[Node] = []

    def start(root: Path, tracker: TlsTracker, **options: Any) -> Node:
        config = NodeConfig(
            folder=SharedFolder(root),
            folder_label=root.name,
            tracker=tracker.address,
            host="127.0.0.1",
            rescan_interval=60.0,
            download=DownloadOptions(stall_timeout=5.0, give_up_after=10.0),
            transport=tracker.transport(),
            **options,
        )
        reachability: list[bool] = []
        node = Node(config, lambda _peer, _files: None, on_reachable=reachability.append)
        node.reachability = reachability  # type: ignore[attr-defined]
        node.start()
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()


def shared(tmp_path: Path, name: str = "a") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "hello.txt").write_bytes(HELLO)
    return folder


def _stub(tracker: TlsTracker) -> tuple[grpc.Channel, tracker_pb2_grpc.TrackerServiceStub]:
    channel = pinned_channel(tracker.address, tracker.identity.certificate_pem)
    return channel, tracker_pb2_grpc.TrackerServiceStub(channel)


def test_a_second_identity_cannot_take_a_live_peers_address(tmp_path, tls_tracker, tls_node):
    node = tls_node(shared(tmp_path), tls_tracker)
    real = node.link._registration
    assert node.reachability == [True]
    attacker = make_identity(PEER_NAME)
    hijacker = tls_tracker.client()
    fake_files = [SharedFile("evil.exe", 4, "0" * 64, 0)]
    try:
        for identity in (attacker, None):  # another key, and no key at all
            with pytest.raises(TrackerRejectedError, match="another identity"):
                hijacker.join("127.0.0.1", node.port, fake_files, identity=identity)
    finally:
        hijacker.close()

    client = tls_tracker.client()
    try:
        assert [s.peer for s in client.search("hello.txt")] == [node.link.peer_id]
        assert client.search("evil.exe") == []
        client.heartbeat(real)  # the real peer's token still works: its registration is as it was
    finally:
        client.close()
    assert node.link._registration is real
    assert node.link.join_count == 1


def test_the_hijack_is_permission_denied_with_its_reason(
    tmp_path, tls_tracker, tls_node, rpc_details
):
    node = tls_node(shared(tmp_path), tls_tracker)
    channel, stub = _stub(tls_tracker)
    with channel, pytest.raises(grpc.RpcError) as caught:
        stub.Join(tracker_pb2.JoinRequest(host="127.0.0.1", port=node.port))
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert rpc_details(caught.value)[0].reason == reasons.ADDRESS_TAKEN


@pytest.mark.parametrize("squatter", ["another identity", "anonymous"])
def test_a_squatter_the_tracker_never_reached_yields_the_address_to_its_owner(
    tmp_path, tls_tracker, tls_node, squatter
):
    # Someone joins first with a free address, where no peer of theirs answers: the tracker
    # registers them as not reachable. The peer that really serves there then joins.
    port = free_port()
    fake_files = [SharedFile("evil.exe", 4, "0" * 64, 0)]
    client = tls_tracker.client()
    try:
        identity = make_identity(PEER_NAME) if squatter == "another identity" else None
        squat = client.join("127.0.0.1", port, fake_files, identity=identity)
        assert squat.reachable is False
        assert [s.peer for s in client.search("evil.exe")] == [f"127.0.0.1:{port}"]

        node = tls_node(shared(tmp_path), tls_tracker, port=port)
        assert node.reachability == [True]
        assert [s.peer for s in client.search("hello.txt")] == [node.link.peer_id]
        assert client.search("evil.exe") == []
        with pytest.raises(TrackerRejectedError, match="another identity"):
            client.join("127.0.0.1", port, fake_files, identity=identity)  # and not back again
    finally:
        client.close()


def test_a_restart_rejoins_at_once_and_a_new_identity_cannot_take_the_address(
    tmp_path, tls_tracker, tls_node
):
    folder = shared(tmp_path)
    port = free_port()
    first = tls_node(folder, tls_tracker, port=port)
    first_id = first.identity.fingerprint
    # A crash: the server goes without a Leave, so the lease lives on.
    first.link.stop(leave=False)
    first.server.stop(None)

    again = tls_node(folder, tls_tracker, port=port)  # the same folder: the same identity
    assert again.identity.fingerprint == first_id
    assert again.link.join_count == 1
    assert again.reachability == [True]
    again.link.stop(leave=False)
    again.server.stop(None)

    for path in (folder / STATE_DIR / IDENTITY_DIR).iterdir():
        path.unlink()
    with pytest.raises(TrackerRejectedError, match="another identity"):
        tls_node(folder, tls_tracker, port=port)
    assert (
        SharedFolder(folder).root / STATE_DIR / IDENTITY_DIR / "cert.pem"
    ).read_bytes() != first.identity.certificate_pem


def test_a_join_where_no_such_peer_answers_is_registered_as_not_reachable(tmp_path, tls_tracker):
    client = tls_tracker.client()
    other = make_identity(PEER_NAME)
    try:
        nobody = client.join("127.0.0.1", free_port(), [], identity=make_identity(PEER_NAME))
        assert nobody.reachable is False
    finally:
        client.close()
    # A napshare peer answers there, with another identity: the address is its, the Join is
    # refused (it would list a source whose every download fails the pin).
    root = shared(tmp_path, "other")
    server, port = create_peer(SharedFolder(root), host="127.0.0.1", tls=other)
    client = tls_tracker.client()
    try:
        with pytest.raises(TrackerRejectedError, match="another certificate"):
            client.join("127.0.0.1", port, [], identity=make_identity(PEER_NAME))
        owner = client.join("127.0.0.1", port, [], identity=other)
        assert owner.reachable is True
    finally:
        client.close()
        server.stop(None)


class Middleman:
    """A TCP proxy that terminates TLS with its own certificate and relays to the real peer."""

    def __init__(self, target_port: int, tmp_path: Path, port: int = 0) -> None:
        own = make_identity(PEER_NAME)
        (tmp_path / "mitm-key.pem").write_bytes(own.key_pem)
        (tmp_path / "mitm-cert.pem").write_bytes(own.certificate_pem)
        self.server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_context.load_cert_chain(tmp_path / "mitm-cert.pem", tmp_path / "mitm-key.pem")
        self.server_context.set_alpn_protocols(["h2"])
        self.client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.client_context.check_hostname = False
        self.client_context.verify_mode = ssl.CERT_NONE
        self.client_context.set_alpn_protocols(["h2"])
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", port))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.relayed = 0  # plain bytes the middleman read from the downloader
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            downstream = self.server_context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()  # the downloader refused our certificate
            return
        upstream = self.client_context.wrap_socket(
            socket.create_connection(("127.0.0.1", self.target_port))
        )

        def pipe(src: ssl.SSLSocket, dst: ssl.SSLSocket, count: bool) -> None:
            try:
                while data := src.recv(65536):
                    if count:
                        self.relayed += len(data)
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for sock in (src, dst):
                    with contextlib.suppress(OSError):
                        sock.close()

        threading.Thread(target=pipe, args=(upstream, downstream, False), daemon=True).start()
        pipe(downstream, upstream, True)

    def close(self) -> None:
        self.listener.close()


def test_a_middleman_alone_is_one_line_and_nothing_is_kept(tmp_path, tls_tracker, tls_node):
    node = tls_node(shared(tmp_path), tls_tracker)
    hello = _hello()
    client = tls_tracker.client()
    port = free_port()
    try:
        # Only the middleman's address is listed, with the real peer's certificate: it joined
        # there while nothing answered (the tracker refuses a Join where a TLS server shows
        # another certificate), then the middleman took the port.
        node.link.stop(leave=True)
        client.join("127.0.0.1", port, [hello], identity=node.identity)
    finally:
        client.close()
    middleman = Middleman(node.port, tmp_path, port)
    target = tmp_path / "b"
    target.mkdir()

    done = run_peer(
        "download", "hello.txt", "--dir", str(target), "--tracker", tls_tracker.address,
        "--tracker-cert", str(tls_tracker.cert_file), tls=True,
    )  # fmt: skip

    middleman.close()
    assert done.returncode == ExitCode.PEER_IDENTITY, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("napshare-peer: refused to download hello.txt:")
    assert "another certificate" in lines[-1]
    assert "Traceback" not in done.stderr
    assert not (target / "hello.txt").exists()
    assert middleman.connections >= 1
    assert middleman.relayed == 0


def _hello() -> SharedFile:
    return SharedFile("hello.txt", len(HELLO), hashlib.sha256(HELLO).hexdigest(), 0)


def test_a_download_over_tls_pins_the_peer_and_trusts_the_tracker_on_first_use(
    tmp_path, make_tls_tracker, tls_node
):
    tracker = make_tls_tracker(port=free_port())
    tls_node(shared(tmp_path), tracker)
    target = tmp_path / "b"
    target.mkdir()
    args = ["download", "hello.txt", "--dir", str(target), "--tracker", tracker.address]

    done = run_peer(*args, tls=True)

    assert done.returncode == 0, done.stderr
    assert (target / "hello.txt").read_bytes() == HELLO
    known = target / STATE_DIR / KNOWN_TRACKERS_FILE
    assert tracker.identity.fingerprint in known.read_text()
    assert stat.S_IMODE(known.stat().st_mode) == 0o600

    # Another tracker (another certificate) on the same address: refused, loudly.
    port = tracker.port
    tracker.server.stop(None)
    make_tls_tracker(port=port)
    (target / "hello.txt").unlink()
    changed = run_peer(*args, tls=True)
    assert changed.returncode == ExitCode.TRACKER_IDENTITY, changed.stderr
    assert changed.stderr.count("\n") == 1
    assert changed.stderr.startswith("napshare-peer: TRACKER CERTIFICATE CHANGED:")
    assert not (target / "hello.txt").exists()


def test_a_wrong_tracker_fingerprint_is_refused(tmp_path, tls_tracker):
    done = run_peer(
        "search", "hello.txt", "--tracker", tls_tracker.address,
        "--tracker-fingerprint", "ab" * 32, tls=True,
    )  # fmt: skip
    assert done.returncode == ExitCode.TRACKER_IDENTITY
    assert done.stderr.count("\n") == 1
    assert "--tracker-fingerprint" in done.stderr
    good = run_peer(
        "search", "hello.txt", "--tracker", tls_tracker.address,
        "--tracker-fingerprint", tls_tracker.identity.fingerprint, tls=True,
    )  # fmt: skip
    assert good.returncode == 0, good.stderr


def test_plain_text_clients_get_nothing_from_a_default_peer(tmp_path, tls_tracker, spawn_tls_peer):
    peer_port = spawn_tls_peer(shared(tmp_path), tls_tracker)
    with (
        grpc.insecure_channel(f"127.0.0.1:{peer_port}") as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


@pytest.fixture
def spawn_tls_peer() -> Iterator[Callable[..., int]]:
    """`napshare-peer serve` with its defaults (TLS), pinned to the tracker's certificate file."""
    started: list[subprocess.Popen[str]] = []

    def spawn(root: Path, tracker: TlsTracker) -> int:
        port = free_port()
        process = spawn_cli(
            "serve", "--no-menu", "--dir", str(root), "--tracker", tracker.address,
            "--tracker-cert", str(tracker.cert_file), "--host", "127.0.0.1", "--port", str(port),
            tls=True,
        )  # fmt: skip
        started.append(process)
        assert process.stdout is not None
        assert process.stdout.readline().startswith("listening on ")
        joined = process.stdout.readline()
        assert joined.startswith("I am peer"), joined
        reach = process.stdout.readline()
        assert reach.startswith("reachable directly: the tracker reached this peer"), reach
        return port

    yield spawn
    for process in started:
        process.terminate()
        process.wait(timeout=30)


def test_mismatched_transports_are_one_line_not_a_hang(tls_tracker, tracker):
    plain_to_tls = run_peer("search", "x.bin", "--tracker", tls_tracker.address)
    assert plain_to_tls.returncode == ExitCode.TRACKER_UNREACHABLE
    assert plain_to_tls.stderr.count("\n") == 1
    assert "serves TLS and this peer runs with --plaintext" in plain_to_tls.stderr

    tls_to_plain = run_peer("search", "x.bin", "--tracker", tracker.address, tls=True)
    assert tls_to_plain.returncode == ExitCode.TRACKER_IDENTITY
    assert tls_to_plain.stderr.count("\n") == 1
    assert "serves no TLS" in tls_to_plain.stderr


def test_identity_files_are_owner_only_and_survive_a_restart(tmp_path, tls_tracker, tls_node):
    folder = shared(tmp_path)
    node = tls_node(folder, tls_tracker)
    directory = folder / STATE_DIR / IDENTITY_DIR
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for name in ("key.pem", "cert.pem"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600
    fingerprint = node.identity.fingerprint
    node.stop()
    assert tls_node(folder, tls_tracker).identity.fingerprint == fingerprint


def _ed25519_pair() -> tuple[bytes, bytes]:
    """A key and self-signed certificate that TLS could use but that cannot sign a Join."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.x509.oid import NameOID

    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PEER_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, None)
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def test_an_identity_folder_made_open_to_others_is_made_owner_only(tmp_path, tls_tracker, tls_node):
    folder = shared(tmp_path)
    directory = folder / STATE_DIR / IDENTITY_DIR
    directory.mkdir(parents=True)
    directory.chmod(0o755)
    tls_node(folder, tls_tracker)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


@pytest.mark.parametrize("damage", ["garbage", "missing cert", "symlink", "ed25519"])
def test_a_corrupt_identity_is_one_line_and_its_exit_code(tmp_path, tls_tracker, damage):
    folder = shared(tmp_path)
    directory = folder / STATE_DIR / IDENTITY_DIR
    directory.mkdir(parents=True)
    make = make_identity(PEER_NAME)
    (directory / "cert.pem").write_bytes(make.certificate_pem)
    (directory / "key.pem").write_bytes(make.key_pem)
    if damage == "garbage":
        (directory / "key.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n")
    elif damage == "ed25519":
        key_pem, cert_pem = _ed25519_pair()
        (directory / "key.pem").write_bytes(key_pem)
        (directory / "cert.pem").write_bytes(cert_pem)
    elif damage == "missing cert":
        (directory / "cert.pem").unlink()
    else:
        elsewhere = tmp_path / "elsewhere.pem"
        os.replace(directory / "key.pem", elsewhere)
        (directory / "key.pem").symlink_to(elsewhere)

    done = run_peer(
        "serve", "--no-menu", "--dir", str(folder), "--tracker", tls_tracker.address,
        "--tracker-cert", str(tls_tracker.cert_file), "--host", "127.0.0.1", tls=True,
    )  # fmt: skip

    assert done.returncode == ExitCode.IDENTITY_FILES, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("napshare-peer: this peer's identity in ")
    assert "Traceback" not in done.stderr


def test_the_hijack_of_the_issue_is_refused_and_changes_nothing(swarm):
    # As the issue tried it: one Join with a running peer's address and a made-up file list.
    node = swarm.node(swarm.share("a"), swarm.tracker.address)
    before = swarm.tracker.search("aula1.mp4")
    fake = file_info_pb2.FileInfo(name="evil.exe", size=4, sha256="0" * 64)
    with grpc.insecure_channel(swarm.tracker.address) as channel:
        stub = tracker_pb2_grpc.TrackerServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Join(tracker_pb2.JoinRequest(host="127.0.0.1", port=node.port, files=[fake]))

    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert [s.peer for s in before] == [node.link.peer_id]
    assert swarm.tracker.search("aula1.mp4") == before
    assert swarm.tracker.search("evil.exe") == []
    node.link.tracker.heartbeat(node.link._registration)  # the real peer's token still works
    assert node.link.join_count == 1
