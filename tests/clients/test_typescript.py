"""The TypeScript client in clients/typescript against a real tracker and a real serving peer:
over TLS as both start by default (the tracker pinned by its certificate file or by its
fingerprint, each peer by the certificate the tracker lists), and in plain text.
"""

import dataclasses
import hashlib
import json
import random
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from napshare.common.identity import PEER_NAME, make_identity
from napshare.peer.folder.store import SharedFile, SharedFolder
from napshare.peer.node import Node, NodeConfig
from napshare.peer.serving.server import create_server as create_peer
from napshare.peer.tracker_client import TrackerClient
from napshare.peer.transport import Transport
from napshare.tracker.server import create_server as create_tracker

from tests.support.files import ROOT
from tests.support.net import free_port
from tests.support.peers import spawn_peer_process
from tests.support.programs import REACHABLE
from tests.support.trackers import TrackerProcess

CLIENT = ROOT / "clients" / "typescript"
MIB = 1 << 20
SHARED = "aula ts 1.mp4"
SHARED_SIZE = 5 * MIB + 4321  # several chunks, the last one short
NESTED = "semana1/notas.txt"  # a file in a folder beside it, which browse shows
CATALOG = 250  # made-up files the client joins with; 3 pages of 100
TRACKER_IDENTITY = 12
PEER_IDENTITY = 13
FINGERPRINT = re.compile(r"fingerprint ([0-9a-f]{64})")


@pytest.fixture(scope="module")
def client_js() -> Path:
    """The client compiled from its current sources with the tsc of its lock."""
    node = shutil.which("node")
    tsc = CLIENT / "node_modules" / "typescript" / "bin" / "tsc"
    if node is None or not tsc.exists():
        pytest.fail("the TypeScript client is not installed: run 'make ts-client' (needs node)")
    subprocess.run([node, str(tsc), "-p", str(CLIENT)], check=True, timeout=300)
    return CLIENT / "dist" / "main.js"


@pytest.fixture
def shared_file(tmp_path: Path) -> tuple[Path, str]:
    """A folder holding one file of pseudo-random bytes, and a small one in a folder; the
    first file's sha256.
    """
    folder = tmp_path / "shared"
    (folder / "semana1").mkdir(parents=True)
    data = random.Random(1099).randbytes(SHARED_SIZE)
    (folder / SHARED).write_bytes(data)
    (folder / NESTED).write_bytes(b"notas\n")
    return folder, hashlib.sha256(data).hexdigest()


@dataclass
class TlsTracker:
    address: str
    cert_file: Path
    fingerprint: str


@pytest.fixture
def tls_tracker(python: str, tmp_path: Path) -> Iterator[TlsTracker]:
    """`napshare-tracker` serving TLS with the identity it makes on first start."""
    tracker = TrackerProcess(python, tmp_path, tls=True)
    try:
        deadline = time.monotonic() + 30
        while not (found := FINGERPRINT.search("".join(tracker.stderr))):
            assert time.monotonic() < deadline, tracker.stderr
            time.sleep(0.05)
        cert = tmp_path / "tracker-state" / "identity" / "cert.pem"
        yield TlsTracker(tracker.address, cert, found.group(1))
    finally:
        tracker.kill()


@pytest.fixture
def tls_peer(tls_tracker: TlsTracker, shared_file: tuple[Path, str]) -> Iterator[str]:
    """`napshare-peer serve` sharing the file over TLS; its peer id."""
    folder, _ = shared_file
    pin = ("--tracker-cert", str(tls_tracker.cert_file))
    peer = spawn_peer_process(folder, tls_tracker.address, *pin, tls=True)
    try:
        peer_id = peer.wait_for_id()
        peer.wait_for(REACHABLE)
        yield peer_id
    finally:
        peer.kill()


@pytest.fixture
def tracker() -> Iterator[str]:
    """An in-process plain text tracker on a free loopback port; its address."""
    server, port = create_tracker(host="127.0.0.1", port=0, heartbeat_interval=30.0)
    yield f"127.0.0.1:{port}"
    server.stop(None)


@pytest.fixture
def peer(tracker: str, shared_file: tuple[Path, str]) -> Iterator[str]:
    """A plain text serving peer (server and tracker link) that shares the file; its id."""
    folder, _ = shared_file
    node = Node(
        NodeConfig(
            folder=SharedFolder(folder),
            folder_label=folder.name,
            tracker=tracker,
            host="127.0.0.1",
        ),
        lambda _peer, _files: None,
    )
    node.start()
    try:
        yield node.link.peer_id
    finally:
        node.stop()


def run_client(client_js: Path, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    """Run the client with node; its exit code, its JSON lines, its stderr."""
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, str(client_js), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    steps = [json.loads(line) for line in done.stdout.splitlines()]
    return done.returncode, steps, done.stderr


def every_step(client_js: Path, tracker: str, *trust: str) -> tuple[int, list[dict[str, Any]], str]:
    """The client's whole run: join, pages, search, browse, download, errors, leave."""
    return run_client(
        client_js,
        *("--tracker", tracker, *trust, "--name", SHARED, "--query", "AULA ts"),
        *("--folder", "semana1"),
        *("--listen", "127.0.0.1:9", "--catalog", str(CATALOG), "--page-size", "100"),
    )


def check_every_step(
    steps: list[dict[str, Any]],
    peer: str,
    sha256: str,
    tracker: TrackerClient,
    others: tuple[str, ...] = (),
) -> None:
    """What each step of a good run reported, and that it left the tracker; `others` are the
    `peer/name` of the other listings of the same bytes.
    """
    by_step: dict[str, list[dict[str, Any]]] = {}
    for step in steps:
        by_step.setdefault(step["step"], []).append(step)

    [joined] = by_step["join"]
    assert joined["peerId"] == "127.0.0.1:9"
    assert joined["heartbeatSeconds"] == 30

    [pages] = by_step["pages"]
    assert pages == {
        "step": "pages",
        "pageSize": 100,
        "pages": 3,
        "results": CATALOG,
        "distinct": CATALOG,
    }

    [search] = by_step["search"]
    assert search["byName"] == [peer]
    assert search["byQuery"] == [f"{peer}/{SHARED}"]

    [content] = by_step["content"]
    assert content["sha256"] == sha256
    assert sorted(content["bySha256"]) == sorted([f"{peer}/{SHARED}", *others])
    assert sorted(content["byRoot"]) == sorted([f"{peer}/{SHARED}", *others])

    whole, week = by_step["browse"]
    assert whole == {"step": "browse", "peerId": peer, "folder": "", "pages": 1, "files": [
        SHARED, NESTED]}  # fmt: skip
    assert week == {"step": "browse", "peerId": peer, "folder": "semana1", "pages": 1,
        "files": [NESTED]}  # fmt: skip
    [browsed] = by_step["browse-pages"]
    assert browsed == {"step": "browse-pages", "pageSize": 100, "pages": 3, "files": CATALOG}

    [download] = by_step["download"]
    assert download["peerId"] == peer
    assert download["name"] == SHARED
    assert download["bytes"] == str(SHARED_SIZE)  # int64 crosses as a bigint, printed as text
    assert download["sha256"] == sha256
    assert download["verified"] is True

    errors = {step["case"]: step for step in by_step["error"]}
    assert {case: error["code"] for case, error in errors.items()} == {
        "name with ..": "INVALID_ARGUMENT",
        "browse of a folder with ..": "INVALID_ARGUMENT",
        "browse of an unknown peer": "NOT_FOUND",
        "bad page_token": "INVALID_ARGUMENT",
        # Refused by the client's own 16 MiB limit; without it connect-node waited for the
        # deadline (DEADLINE_EXCEEDED) after the tracker had refused the request.
        "request over 16 MiB": "RESOURCE_EXHAUSTED",
    }
    for error in errors.values():
        assert error["message"]
    # The machine-readable reason, read by the TypeScript client from google.rpc.ErrorInfo.
    assert errors["name with .."]["reason"] == "NAME_INVALID"
    assert errors["browse of a folder with .."]["reason"] == "NAME_INVALID"
    assert errors["browse of an unknown peer"]["reason"] == "PEER_NOT_REGISTERED"
    assert errors["bad page_token"]["reason"] in ("PAGE_TOKEN_INVALID", "PAGE_TOKEN_MISMATCH")
    assert errors["request over 16 MiB"]["reason"] == ""  # refused by the client itself

    [left] = by_step["leave"]
    assert left["peerId"] == "127.0.0.1:9"
    try:
        assert tracker.search("ts-catalog-0001.ogg") == []
    finally:
        tracker.close()


def tls_client(tracker: TlsTracker) -> TrackerClient:
    return TrackerClient(
        tracker.address,
        transport=Transport(plaintext=False, tracker_cert=tracker.cert_file.read_bytes()),
    )


def test_every_step_over_tls_with_the_tracker_pinned_by_its_certificate_file(
    client_js: Path, tls_tracker: TlsTracker, tls_peer: str, shared_file: tuple[Path, str]
) -> None:
    code, steps, stderr = every_step(
        client_js, tls_tracker.address, "--tracker-cert", str(tls_tracker.cert_file)
    )

    assert code == 0, stderr
    check_every_step(steps, tls_peer, shared_file[1], tls_client(tls_tracker))


def test_every_step_over_tls_with_the_tracker_pinned_by_its_fingerprint(
    client_js: Path, tls_tracker: TlsTracker, tls_peer: str, shared_file: tuple[Path, str]
) -> None:
    upper_with_colons = ":".join(re.findall("..", tls_tracker.fingerprint.upper()))
    code, steps, stderr = every_step(
        client_js, tls_tracker.address, "--tracker-fingerprint", upper_with_colons
    )

    assert code == 0, stderr
    check_every_step(steps, tls_peer, shared_file[1], tls_client(tls_tracker))


def test_a_tracker_of_another_fingerprint_is_refused_before_any_call(
    client_js: Path, tls_tracker: TlsTracker
) -> None:
    other = hashlib.sha256(b"another certificate").hexdigest()

    code, steps, stderr = run_client(
        client_js, "--tracker", tls_tracker.address, "--tracker-fingerprint", other
    )

    assert code == TRACKER_IDENTITY
    assert steps == []
    assert stderr == (
        f"napshare-client-ts: tracker {tls_tracker.address} has certificate fingerprint "
        f"{tls_tracker.fingerprint}, not {other} (--tracker-fingerprint): someone may be "
        "posing as it\n"
    )


def test_a_tracker_showing_another_certificate_than_the_file_is_refused(
    client_js: Path, tls_tracker: TlsTracker, tmp_path: Path
) -> None:
    impostor = tmp_path / "other.pem"
    impostor.write_bytes(make_identity("napshare-tracker", ["127.0.0.1"]).certificate_pem)

    code, steps, stderr = run_client(
        client_js, "--tracker", tls_tracker.address, "--tracker-cert", str(impostor)
    )

    assert code == TRACKER_IDENTITY
    assert steps == []
    assert stderr.startswith(
        f"napshare-client-ts: tracker {tls_tracker.address} showed a certificate other than "
        "the pinned one"
    )


def test_a_peer_showing_another_certificate_than_the_tracker_lists_is_refused(
    client_js: Path, tls_tracker: TlsTracker, tmp_path: Path
) -> None:
    # A peer that answers with its own certificate where the tracker lists someone else's:
    # the listed identity joined for that address (signed), then the address changed hands.
    listed = make_identity(PEER_NAME)
    folder = tmp_path / "impostor"
    folder.mkdir()
    data = b"hello, napshare\n"
    (folder / "hello.txt").write_bytes(data)
    port = free_port()
    client = tls_client(tls_tracker)
    hello = SharedFile("hello.txt", len(data), hashlib.sha256(data).hexdigest(), 0)
    client.join("127.0.0.1", port, [hello], identity=listed)  # nobody answers there yet
    server, _ = create_peer(
        SharedFolder(folder), host="127.0.0.1", port=port, tls=make_identity(PEER_NAME)
    )
    try:
        code, steps, stderr = run_client(
            client_js,
            *("--tracker", tls_tracker.address, "--tracker-cert", str(tls_tracker.cert_file)),
            *("--name", "hello.txt", "--query", "hello", "--catalog", "3"),
        )
    finally:
        client.close()
        server.stop(None)

    assert code == PEER_IDENTITY, stderr
    assert [s["step"] for s in steps] == [
        "join", "pages", "search", "content", "browse", "browse-pages", "leave"
    ]  # fmt: skip
    assert stderr.startswith(
        f"napshare-client-ts: peer 127.0.0.1:{port} showed a certificate other than the pinned one"
    )


def test_every_step_in_plain_text_with_plaintext(
    client_js: Path, tracker: str, peer: str, shared_file: tuple[Path, str]
) -> None:
    # Another peer lists the same bytes under another name: the search by content finds it.
    folder, _ = shared_file
    [info] = [f for f in SharedFolder(folder).scan() if f.name == SHARED]
    other = TrackerClient(tracker)
    other.join("127.0.0.1", 10, [dataclasses.replace(info, name="Redes - aula 1.mp4")])

    code, steps, stderr = every_step(client_js, tracker, "--plaintext")

    other.close()
    assert code == 0, stderr
    check_every_step(
        steps, peer, shared_file[1], TrackerClient(tracker), ("127.0.0.1:10/Redes - aula 1.mp4",)
    )


def test_plaintext_against_a_tls_tracker_says_what_to_give_instead(
    client_js: Path, tls_tracker: TlsTracker
) -> None:
    code, steps, stderr = run_client(client_js, "--tracker", tls_tracker.address, "--plaintext")

    assert code == 1
    assert steps == []
    assert stderr == (
        f"napshare-client-ts: tracker {tls_tracker.address} serves TLS: give --tracker-cert "
        "FILE or --tracker-fingerprint HEX instead of --plaintext\n"
    )


def test_without_a_way_to_trust_the_tracker_it_says_the_three(client_js: Path) -> None:
    code, steps, stderr = run_client(client_js, "--tracker", "127.0.0.1:1099")

    assert code == 2
    assert steps == []
    assert stderr == (
        "napshare-client-ts: give one of --tracker-cert FILE (the tracker's cert.pem), "
        "--tracker-fingerprint HEX (the SHA-256 it printed at start) or --plaintext (a tracker "
        "run with --plaintext)\n"
    )


def test_a_missing_file_fails_with_one_line_and_exit_code_1(
    client_js: Path, tls_tracker: TlsTracker
) -> None:
    code, steps, stderr = run_client(
        client_js,
        *("--tracker", tls_tracker.address, "--tracker-cert", str(tls_tracker.cert_file)),
        *("--name", "nobody-has-this.mp4", "--query", "nobody", "--catalog", "3"),
    )
    assert code == 1
    assert [s["step"] for s in steps] == ["join", "pages", "search", "leave"]
    assert stderr == "napshare-client-ts: no peer shares nobody-has-this.mp4\n"


@pytest.mark.parametrize("trust", [["--plaintext"], ["--tracker-fingerprint", "ab" * 32]])
def test_an_unreachable_tracker_is_one_line(client_js: Path, trust: list[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        code, steps, stderr = run_client(client_js, "--tracker", f"127.0.0.1:{port}", *trust)
    assert code == 1
    assert steps == []
    if trust == ["--plaintext"]:
        assert json.loads(stderr.removeprefix("napshare-client-ts: "))["code"] == "UNAVAILABLE"
    else:
        assert stderr == f"napshare-client-ts: 127.0.0.1:{port} is unreachable (ECONNREFUSED)\n"
