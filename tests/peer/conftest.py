"""Fixtures for the peer's tests: real peers in this process or as processes, and the data
file (in-process trackers: tests/conftest.py).
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from napshare.peer.node import Node

from tests.support.downloads import NAME, Swarm, make_data_file
from tests.support.files import sha256_file
from tests.support.peers import (
    InProcessPeer,
    PeerProcess,
    spawn_peer_process,
    start_in_process_peer,
    start_node,
)
from tests.support.trackers import InProcessTracker


@pytest.fixture(name="start_node")
def start_node_fixture() -> Iterator[Callable[..., Node]]:
    """start_node(root, tracker_address, **options): serving peers in this process (server,
    tracker link, downloader); stopped after the test.
    """
    nodes: list[Node] = []

    def start(root: Path, tracker_address: str, **options: Any) -> Node:
        node = start_node(root, tracker_address, **options)
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()


@pytest.fixture
def start_peer() -> Iterator[Callable[..., InProcessPeer]]:
    """start_peer(root, **options): bare peer servers in this process, with a channel to each
    and no tracker link (the test registers them itself); stopped after the test.
    """
    peers: list[InProcessPeer] = []

    def start(root: Path, **options: Any) -> InProcessPeer:
        peer = start_in_process_peer(root, **options)
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        peer.stop()


@pytest.fixture
def spawn_peer() -> Iterator[Callable[..., PeerProcess]]:
    """spawn_peer(root, tracker_address, *extra, lang=...): serving peer processes, once each
    printed its peer id; killed after the test.
    """
    started: list[PeerProcess] = []

    def spawn(root: Path, tracker_address: str, *extra: str, lang: str = "C.UTF-8") -> PeerProcess:
        peer = spawn_peer_process(root, tracker_address, *extra, lang=lang)
        started.append(peer)
        peer.wait_for_id()
        return peer

    yield spawn
    for peer in started:
        peer.kill()


@pytest.fixture(scope="session")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A file of DATA_SIZE pseudo-random bytes (the same every run) and its sha256."""
    path = tmp_path_factory.mktemp("data") / NAME
    make_data_file(path)
    return path, sha256_file(path)


@pytest.fixture
def swarm(  # noqa: PLR0917 - fixtures arrive as parameters
    tracker: InProcessTracker,
    tmp_path: Path,
    data_file: tuple[Path, str],
    start_node: Callable[..., Node],
    spawn_peer: Callable[..., PeerProcess],
    start_peer: Callable[..., InProcessPeer],
) -> Swarm:
    """A tracker, peer starters, the data file and tmp_path, together."""
    return Swarm(tracker, tmp_path, *data_file, start_node, spawn_peer, start_peer)
