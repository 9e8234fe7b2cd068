"""Peers for the tests: in this process (InProcessPeer, a bare server; a Node, server, tracker
link and downloader) or as a child process (PeerProcess, `python -m napshare.peer serve`), and
the one-shot commands of `python -m napshare.peer`.
"""

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from napshare.peer.downloading.engine import DownloadOptions
from napshare.peer.folder.store import SharedFolder
from napshare.peer.node import Node, NodeConfig
from napshare.peer.serving.server import create_server
from napshare.v1 import peer_pb2, peer_pb2_grpc

from tests.support.files import ROOT
from tests.support.processes import cli_env

SLOW_CHUNK = 16 * 1024  # small chunks make a subprocess peer slow enough to act mid-stream
I_AM = re.compile(r"(?:I am peer|Sou peer) (\S+) ")
COMMANDS = ("serve", "search", "browse", "download")


@dataclass
class InProcessPeer:
    """A peer server started in the test's process (no tracker link) and a channel to it."""

    folder: SharedFolder
    server: grpc.Server
    port: int
    channel: grpc.Channel
    stub: peer_pb2_grpc.PeerServiceStub

    def download(self, name: str, **fields: Any) -> list[peer_pb2.DownloadResponse]:
        """Every response of one Download call."""
        return list(self.stub.Download(peer_pb2.DownloadRequest(name=name, **fields)))

    def error(self, name: str, **fields: Any) -> grpc.StatusCode:
        """The status code a Download call fails with; fails the test if it succeeds."""
        with pytest.raises(grpc.RpcError) as caught:
            self.download(name, **fields)
        code: grpc.StatusCode = caught.value.code()
        return code

    def stop(self) -> None:
        self.channel.close()
        self.server.stop(None)


def start_in_process_peer(root: Path, **options: Any) -> InProcessPeer:
    """Start a peer server in this process on 127.0.0.1, a free port, sharing `root`; `options`
    go to napshare.peer.serving.server.create_server.
    """
    folder = SharedFolder(root)
    server, port = create_server(folder, host="127.0.0.1", **options)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return InProcessPeer(folder, server, port, channel, peer_pb2_grpc.PeerServiceStub(channel))


def start_node(root: Path, tracker_address: str, **options: Any) -> Node:
    """Start a serving peer in this process (server, tracker link, downloader) sharing `root`.

    `stall_timeout` (5 s), `give_up_after` (20 s) and `rescan_interval` (0.2 s) have defaults
    for tests; other `options` go to NodeConfig.
    """
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
    return node


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


def spawn_cli(*args: str, lang: str = "C.UTF-8", tls: bool = False) -> subprocess.Popen[str]:
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

    def kill(self) -> None:
        """Kill the process if it still runs, and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)

    def wait_for_id(self) -> str:
        """Wait for the line that says the peer joined (`I am peer ID ...`); its peer id."""
        self.peer_id = self.wait_for(I_AM.pattern).group(1)
        return self.peer_id


def spawn_peer_process(
    root: Path, tracker_address: str, *extra: str, lang: str = "C.UTF-8", tls: bool = False
) -> PeerProcess:
    """Start `python -m napshare.peer serve --no-menu` sharing `root` with the tracker at
    `tracker_address` (plain text unless `tls`: then pin the tracker in `extra`), its stdout
    read into the PeerProcess as it comes; then PeerProcess.wait_for_id. The caller kills it
    (PeerProcess.kill) when done.
    """
    process = spawn_cli(
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
        tls=tls,
    )
    peer = PeerProcess(process)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            peer.output.append(line)
            peer.lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return peer
