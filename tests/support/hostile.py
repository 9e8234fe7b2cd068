"""Hostile listings for the download tests: a TLS tracker in this process, honest TLS peers,
and an attacker's fake listings at addresses where a TLS server shows another certificate.

Everything is real: the tracker is napshare's, the peers and the impostors are napshare peer
servers (an impostor is one with an identity other than the one its listing was joined with),
all on loopback addresses (127.0.0.0/8, so different /24 blocks are at hand).
"""

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from napshare.common.identity import PEER_NAME, TRACKER_NAME, Identity, make_identity
from napshare.peer.folder.store import SharedFile, SharedFolder
from napshare.peer.serving.server import create_server as create_peer
from napshare.peer.tracker_client import TrackerClient
from napshare.peer.transport import Transport
from napshare.tracker.server import create_server as create_tracker

ROOT = Path(__file__).resolve().parents[2]


def cli_env() -> dict[str, str]:
    """The environment of a `python -m napshare.peer` child: English, unbuffered."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
    env["LANG"] = "C.UTF-8"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class TlsTracker:
    """A napshare tracker serving TLS in this process on 127.0.0.1, its certificate in a file."""

    server: grpc.Server
    port: int
    identity: Identity
    cert_file: Path
    clients: list[TrackerClient] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def transport(self) -> Transport:
        return Transport(plaintext=False, tracker_cert=self.identity.certificate_pem)

    def client(self) -> TrackerClient:
        """A TrackerClient pinned to this tracker, closed by stop()."""
        client = TrackerClient(self.address, transport=self.transport())
        self.clients.append(client)
        return client

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.server.stop(None)


def start_tls_tracker(folder: Path) -> TlsTracker:
    """A TLS tracker in this process; its certificate written into `folder`."""
    identity = make_identity(TRACKER_NAME, ["127.0.0.1"])
    server, port = create_tracker(host="127.0.0.1", port=0, tls=identity)
    cert_file = folder / f"tracker-{port}.pem"
    cert_file.write_bytes(identity.certificate_pem)
    return TlsTracker(server, port, identity, cert_file)


@dataclass
class ServingPeer:
    """A napshare peer server over TLS on `host`, with its identity; joined or not."""

    server: grpc.Server
    host: str
    port: int
    identity: Identity

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def serve(root: Path, host: str = "127.0.0.1", identity: Identity | None = None) -> ServingPeer:
    """A peer server over TLS sharing `root` on `host` (a free port)."""
    identity = identity or make_identity(PEER_NAME)
    server, port = create_peer(SharedFolder(root), host=host, tls=identity)
    return ServingPeer(server, host, port, identity)


def honest_peer(tracker: TlsTracker, root: Path, host: str = "127.0.0.1") -> ServingPeer:
    """A peer sharing `root` over TLS on `host`, joined to `tracker` with its own identity
    (so the tracker reaches it there).
    """
    peer = serve(root, host)
    files = SharedFolder(root).scan()
    registration = tracker.client().join(host, peer.port, files, identity=peer.identity)
    assert registration.reachable, "the tracker did not reach an honest peer"
    return peer


def fake_listing(
    tracker: TlsTracker, attacker: Identity, host: str, port: int, files: list[SharedFile]
) -> bool:
    """Join `files` as `attacker` at host:port (whoever answers there); whether the tracker
    reached the attacker there.
    """
    return tracker.client().join(host, port, files, identity=attacker).reachable


def fake_version(real: SharedFile, seed: str) -> SharedFile:
    """`real`'s name and size with a made-up sha256 and pieces root."""
    made_up = hashlib.sha256(seed.encode()).hexdigest()
    root = hashlib.sha256(b"root " + seed.encode()).hexdigest() if real.pieces_root else ""
    return SharedFile(real.name, real.size, made_up, real.mtime_ns, root)


def run_peer(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m napshare.peer ARGS` run to its end, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "napshare.peer", *args],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
