"""Fixtures for the serving peer: real servers on port 0, real channels, real files."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.peers import InProcessPeer, start_in_process_peer


@pytest.fixture
def start_peer() -> Iterator[Callable[..., InProcessPeer]]:
    """start_peer(root, **options): peer servers in this process on 127.0.0.1, a free port,
    with a channel to each; stopped after the test.
    """
    peers: list[InProcessPeer] = []

    def start(root: Path, **options: Any) -> InProcessPeer:
        peer = start_in_process_peer(root, **options)
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        peer.stop()
