"""Lying peers beside an honest one: a real napshare peer that counts the bytes it sent, the
liar (liar.LyingPeer) joined with its file, and the downloader's lines that ban a peer.
"""

from collections.abc import Callable

import pytest
from napshare.peer.folder.store import SharedFolder
from napshare.peer.serving.server import create_server, peer_metrics

from tests.support.downloads import NAME, Swarm
from tests.support.liar import CHUNK, LyingPeer


class Honest:
    """A real napshare peer server, registered with the tracker, counting the bytes it sent."""

    def __init__(self, swarm: Swarm, folder: str) -> None:
        self.metrics = peer_metrics()
        shared = SharedFolder(swarm.share(folder))
        self.server, port = create_server(shared, host="127.0.0.1", metrics=self.metrics)
        self.info = shared.get(NAME)
        self.peer_id = swarm.tracker.client.join("127.0.0.1", port, [self.info]).peer_id

    @property
    def sent(self) -> int:
        value = self.metrics.registry.get_sample_value("napshare_peer_served_bytes_total")
        return int(value or 0)


def start_liar(
    swarm: Swarm, honest: Honest, liars: Callable[..., LyingPeer], lie: str, first: int = CHUNK
) -> tuple[LyingPeer, str]:
    """A LyingPeer (started by the `liars` fixture) serving the honest peer's file with `lie`,
    joined to the swarm's tracker; it and its peer id.
    """
    liar = liars(swarm.data, honest.info, lie, first)
    peer_id = swarm.tracker.client.join("127.0.0.1", liar.port, [honest.info]).peer_id
    return liar, peer_id


def banned(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The downloader's log lines that ban a peer."""
    return [r.getMessage() for r in caplog.records if "not using it again" in r.getMessage()]
