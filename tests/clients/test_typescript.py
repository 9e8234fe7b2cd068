"""The TypeScript client in clients/typescript against a real tracker and a real serving peer."""

import hashlib
import json
import random
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from napshare.peer.folder.store import SharedFolder
from napshare.peer.node import Node, NodeConfig
from napshare.peer.tracker_client import TrackerClient
from napshare.tracker.server import create_server as create_tracker

from tests.support.files import ROOT

CLIENT = ROOT / "clients" / "typescript"
MIB = 1 << 20
SHARED = "aula ts 1.mp4"
SHARED_SIZE = 5 * MIB + 4321  # several chunks, the last one short
CATALOG = 250  # made-up files the client joins with; 3 pages of 100


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
def tracker() -> Iterator[str]:
    """An in-process tracker on a free loopback port; its address."""
    server, port = create_tracker(host="127.0.0.1", port=0, heartbeat_interval=30.0)
    yield f"127.0.0.1:{port}"
    server.stop(None)


@pytest.fixture
def shared_file(tmp_path: Path) -> tuple[Path, str]:
    """A folder holding one file of pseudo-random bytes; the file's sha256."""
    folder = tmp_path / "shared"
    folder.mkdir()
    data = random.Random(1099).randbytes(SHARED_SIZE)
    (folder / SHARED).write_bytes(data)
    return folder, hashlib.sha256(data).hexdigest()


@pytest.fixture
def peer(tracker: str, shared_file: tuple[Path, str]) -> Iterator[str]:
    """A serving peer (server and tracker link) that shares the file; its peer id."""
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


def test_join_search_pages_download_and_errors(
    client_js: Path, tracker: str, peer: str, shared_file: tuple[Path, str]
) -> None:
    _, sha256 = shared_file
    code, steps, stderr = run_client(
        client_js,
        "--tracker",
        tracker,
        "--name",
        SHARED,
        "--query",
        "AULA ts",
        "--listen",
        "127.0.0.1:9",
        "--catalog",
        str(CATALOG),
        "--page-size",
        "100",
    )
    assert code == 0, stderr
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

    [download] = by_step["download"]
    assert download["peerId"] == peer
    assert download["name"] == SHARED
    assert download["bytes"] == str(SHARED_SIZE)  # int64 crosses as a bigint, printed as text
    assert download["sha256"] == sha256
    assert download["verified"] is True

    errors = {step["case"]: step for step in by_step["error"]}
    assert {case: error["code"] for case, error in errors.items()} == {
        "name with /": "INVALID_ARGUMENT",
        "bad page_token": "INVALID_ARGUMENT",
        # Refused by the client's own 16 MiB limit; without it connect-node waited for the
        # deadline (DEADLINE_EXCEEDED) after the tracker had refused the request.
        "request over 16 MiB": "RESOURCE_EXHAUSTED",
    }
    for error in errors.values():
        assert error["message"]
    # The machine-readable reason, read by the TypeScript client from google.rpc.ErrorInfo.
    assert errors["name with /"]["reason"] == "NAME_INVALID"
    assert errors["bad page_token"]["reason"] in ("PAGE_TOKEN_INVALID", "PAGE_TOKEN_MISMATCH")
    assert errors["request over 16 MiB"]["reason"] == ""  # refused by the client itself

    [left] = by_step["leave"]
    assert left["peerId"] == "127.0.0.1:9"
    client = TrackerClient(tracker)
    try:
        assert client.search("ts-catalog-0001.ogg") == []
    finally:
        client.close()


def test_a_missing_file_fails_with_one_line_and_exit_code_1(client_js: Path, tracker: str) -> None:
    code, steps, stderr = run_client(
        client_js,
        "--tracker",
        tracker,
        "--name",
        "nobody-has-this.mp4",
        "--query",
        "nobody",
        "--catalog",
        "3",
    )
    assert code == 1
    assert [s["step"] for s in steps] == ["join", "pages", "search", "leave"]
    assert stderr == "napshare-client-ts: no peer shares nobody-has-this.mp4\n"


def test_an_unreachable_tracker_is_reported_by_its_code(client_js: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        code, steps, stderr = run_client(client_js, "--tracker", f"127.0.0.1:{port}")
    assert code == 1
    assert steps == []
    assert json.loads(stderr.removeprefix("napshare-client-ts: "))["code"] == "UNAVAILABLE"
