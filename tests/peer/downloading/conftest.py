"""Fixtures for the download tests: peers that lie, an honest one, slow ones."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from napshare.peer.folder.store import SharedFile

from tests.support.downloads import Swarm
from tests.support.liar import CHUNK, LyingPeer
from tests.support.poisoning import Honest
from tests.support.slowpeer import SlowPeer


@pytest.fixture
def liars() -> Iterator[Callable[..., LyingPeer]]:
    """liars(path, info, lie, first=CHUNK): LyingPeers serving `path` as `info`, wrong on
    purpose; stopped after the test.
    """
    started: list[LyingPeer] = []

    def start(path: Path, info: SharedFile, lie: str, first: int = CHUNK) -> LyingPeer:
        liar = LyingPeer(path, info, lie, first)
        started.append(liar)
        return liar

    yield start
    for liar in started:
        liar.stop()


@pytest.fixture
def honest(swarm: Swarm) -> Iterator[Honest]:
    """A real napshare peer sharing the data file, joined to the swarm's tracker."""
    peer = Honest(swarm, "honest")
    yield peer
    peer.server.stop(None)


@pytest.fixture
def slow_peers() -> Iterator[list[SlowPeer]]:
    """The SlowPeers a test started (start_slow_peer); stopped after the test."""
    started: list[SlowPeer] = []
    yield started
    for peer in started:
        peer.stop()
