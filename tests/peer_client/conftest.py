"""Fixtures for the download client: a real tracker, real peers, real files in tmp_path."""

import ctypes
import hashlib
import os
import queue
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from napshare.peer.downloading.engine import DownloadOptions, DownloadResult
from napshare.peer.folder.layout import PART_SUFFIX, PARTIAL_DIR, STATE_DIR, partial_key
from napshare.peer.folder.store import SharedFolder
from napshare.peer.node import Node, NodeConfig
from napshare.peer.serving.server import create_server as create_peer_server
from napshare.peer.tracker_client import Source, TrackerClient
from napshare.tracker.server import create_server as create_tracker

ROOT = Path(__file__).resolve().parents[2]
MIB = 1 << 20
DATA_SIZE = 96 * MIB + 12345  # not a multiple of any chunk size
SLOW_CHUNK = 16 * 1024  # small chunks make a subprocess peer slow enough to act mid-stream
I_AM = re.compile(r"(?:I am peer|Sou peer) (\S+) ")
# The downloader's info line: bytes fetched, bytes already there, the peers that sent any.
FETCHED = re.compile(r"fetched (\d+) bytes of \S+ \((\d+) were already there\) from (.*)")


def free_port() -> int:
    """A port nothing listens on now (bound to port 0, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def sha256_file(path: Path) -> str:
    """The sha256 of a file on disk."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(4 * MIB):
            digest.update(block)
    return digest.hexdigest()


def wait_until(condition: Callable[[], object], timeout: float = 30.0, step: float = 0.01) -> None:
    """Poll `condition` until it is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {condition}")
        time.sleep(step)


def signal_a_thread_not_main(pid: int, sig: int) -> None:
    """Send `sig` to the newest thread of process `pid` that is not its main thread.

    The kernel may hand a signal sent to the process (kill) to any of its threads; tgkill
    aims it at one, so that a test needs no luck to have it land off the main thread.
    """
    threads = [int(tid) for tid in os.listdir(f"/proc/{pid}/task") if int(tid) != pid]
    assert threads, f"process {pid} runs no thread besides its main one"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.tgkill(pid, max(threads), sig) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def part_path(folder: Path, name: str) -> Path:
    """Where the bytes of an unfinished download of `name` into `folder` are kept."""
    return folder / STATE_DIR / PARTIAL_DIR / (partial_key(name) + PART_SUFFIX)


def part_size(folder: Path, name: str) -> int:
    """The size of the part of `name` in `folder`, 0 when it does not exist."""
    try:
        return part_path(folder, name).stat().st_size
    except FileNotFoundError:
        return 0


def download_in_thread(
    download: Callable[[], DownloadResult],
) -> tuple[threading.Thread, list[DownloadResult | BaseException]]:
    """A thread (not started) that runs `download()`; its result, or what it raised, lands in
    the list.
    """
    outcome: list[DownloadResult | BaseException] = []

    def run() -> None:
        try:
            outcome.append(download())
        except BaseException as error:  # the test looks at it
            outcome.append(error)

    return threading.Thread(target=run), outcome


def cli_env(lang: str = "C.UTF-8") -> dict[str, str]:
    """The environment for a `python -m napshare.peer` process, in the language of `lang`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
    env["LANG"] = lang
    env["PYTHONUNBUFFERED"] = "1"
    return env


COMMANDS = ("serve", "search", "download")


def plaintext(args: tuple[str, ...]) -> list[str]:
    """`args` with --plaintext after the command: the in-process trackers serve plain text."""
    if args and args[0] in COMMANDS:
        return [args[0], "--plaintext", *args[1:]]
    return list(args)


def run_peer(
    *args: str, lang: str = "C.UTF-8", timeout: float = 120, cwd: Path = ROOT, tls: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run `python -m napshare.peer ARGS` to completion and capture its output (in plain text
    unless `tls`).
    """
    return subprocess.run(
        [sys.executable, "-m", "napshare.peer", *(list(args) if tls else plaintext(args))],
        cwd=cwd,
        env=cli_env(lang),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_cli(*args: str, lang: str = "C.UTF-8", tls: bool = False) -> subprocess.Popen[str]:
    """Start `python -m napshare.peer ARGS` without waiting (in plain text unless `tls`)."""
    return subprocess.Popen(
        [sys.executable, "-m", "napshare.peer", *(list(args) if tls else plaintext(args))],
        cwd=ROOT,
        env=cli_env(lang),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@dataclass
class Tracker:
    """An in-process tracker on 127.0.0.1 and a client of it."""

    server: grpc.Server
    port: int
    client: TrackerClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = TrackerClient(self.address)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def peers_with(self, name: str) -> list[str]:
        return [s.peer for s in self.client.search(name)]

    def search(self, name: str) -> list[Source]:
        return self.client.search(name)


def start_tracker(port: int = 0, heartbeat_interval: float = 30.0) -> Tracker:
    """Start an in-process tracker on 127.0.0.1."""
    server, bound = create_tracker(
        host="127.0.0.1", port=port, heartbeat_interval=heartbeat_interval
    )
    return Tracker(server, bound)


@pytest.fixture
def tracker() -> Iterator[Tracker]:
    """A tracker for one test."""
    started = start_tracker()
    yield started
    started.client.close()
    started.server.stop(None)


@pytest.fixture
def node_factory() -> Iterator[Callable[..., Node]]:
    """Start in-process serving peers (server, tracker link, downloader); stopped after the test."""
    nodes: list[Node] = []

    def start(root: Path, tracker_address: str, **options: Any) -> Node:
        download = DownloadOptions(
            stall_timeout=options.pop("stall_timeout", 5.0),
            give_up_after=options.pop("give_up_after", 20.0),
        )
        config = NodeConfig(
            folder=SharedFolder(root),
            folder_label=root.name,
            tracker=tracker_address,
            host="127.0.0.1",
            rescan_interval=options.pop("rescan_interval", 0.2),
            download=download,
            **options,
        )
        node = Node(config, lambda _peer, _files: None)
        node.start()
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()


@pytest.fixture
def plain_peer() -> Iterator[Callable[..., tuple[SharedFolder, int]]]:
    """Start in-process peer servers with no tracker link (the test registers them itself)."""
    servers: list[grpc.Server] = []

    def start(root: Path, **options: Any) -> tuple[SharedFolder, int]:
        folder = SharedFolder(root)
        server, port = create_peer_server(folder, host="127.0.0.1", **options)
        servers.append(server)
        return folder, port

    yield start
    for server in servers:
        server.stop(None)


@dataclass
class PeerProcess:
    """A `python -m napshare.peer serve --no-menu` process and what it printed."""

    process: subprocess.Popen[str]
    peer_id: str = ""
    lines: "queue.Queue[str]" = field(default_factory=queue.Queue)
    output: list[str] = field(default_factory=list)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """The first line of stdout (from now on) that matches `pattern`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"peer printed no line matching {pattern!r}: {self.output}")
            found = re.search(pattern, line)
            if found:
                return found

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send `sig` and wait for the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=30)


@pytest.fixture
def spawn_peer() -> Iterator[Callable[..., PeerProcess]]:
    """Start serving peers as processes; killed after the test."""
    started: list[PeerProcess] = []

    def spawn(root: Path, tracker_address: str, *extra: str, lang: str = "C.UTF-8") -> PeerProcess:
        process = start_cli(
            "serve",
            "--no-menu",
            "--dir",
            str(root),
            "--tracker",
            tracker_address,
            "--host",
            "127.0.0.1",
            *extra,
            lang=lang,
        )
        peer = PeerProcess(process)

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                peer.output.append(line)
                peer.lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        started.append(peer)
        peer.peer_id = peer.wait_for(I_AM.pattern).group(1)
        return peer

    yield spawn
    for peer in started:
        if peer.process.poll() is None:
            peer.process.kill()
        peer.process.wait(timeout=30)


@pytest.fixture(scope="session")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A file of pseudo-random bytes (the same every run) and its sha256."""
    path = tmp_path_factory.mktemp("data") / "aula1.mp4"
    rng = random.Random(1099)
    with path.open("wb") as out:
        left = DATA_SIZE
        while left:
            block = rng.randbytes(min(left, 8 * MIB))
            out.write(block)
            left -= len(block)
    return path, sha256_file(path)


@dataclass
class Swarm:
    """Everything a download test needs: a tracker, ways to start peers, the data, tmp_path."""

    tracker: Tracker
    tmp: Path
    data: Path
    sha256: str
    node: Callable[..., Node]
    spawn: Callable[..., PeerProcess]
    plain: Callable[..., tuple[SharedFolder, int]]

    def share(self, folder_name: str) -> Path:
        """A new folder under tmp holding a copy of the data file."""
        folder = self.folder(folder_name)
        shutil.copyfile(self.data, folder / self.data.name)
        return folder

    def folder(self, folder_name: str) -> Path:
        """A new empty folder under tmp."""
        folder = self.tmp / folder_name
        folder.mkdir()
        return folder


@pytest.fixture
def swarm(  # noqa: PLR0917 - fixtures arrive as parameters
    tracker: Tracker,
    tmp_path: Path,
    data_file: tuple[Path, str],
    node_factory: Callable[..., Node],
    spawn_peer: Callable[..., PeerProcess],
    plain_peer: Callable[..., tuple[SharedFolder, int]],
) -> Swarm:
    """A tracker, peer starters, the data file and tmp_path, together."""
    return Swarm(tracker, tmp_path, *data_file, node_factory, spawn_peer, plain_peer)
