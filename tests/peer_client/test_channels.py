"""How a downloader reaches a peer over a long link: which calls, on how many connections,
before the first byte. Each call made only to measure costs a round trip of waiting.
"""

import threading
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health, health_pb2
from napshare.peer.downloading import fetch
from napshare.v1 import peer_pb2

from tests.support.delayproxy import DelayProxy
from tests.support.liar import peer_service

DATA = b"x" * 4096


class _CountingHealth(health.HealthServicer):
    def __init__(self) -> None:
        super().__init__()
        self.checks = 0
        self._lock = threading.Lock()

    def Check(  # noqa: N802 (the generated servicer's name)
        self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        with self._lock:
            self.checks += 1
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


def _download(
    request: peer_pb2.DownloadRequest, context: grpc.ServicerContext
) -> Iterator[peer_pb2.DownloadResponse]:
    yield peer_pb2.DownloadResponse(offset=0, data=DATA)


def _layer(
    request: peer_pb2.GetPieceLayerRequest, context: grpc.ServicerContext
) -> peer_pb2.GetPieceLayerResponse:
    return peer_pb2.GetPieceLayerResponse(piece_size=16384, hashes=b"\0" * 32)


@pytest.fixture
def long_link() -> Iterator[tuple[DelayProxy, _CountingHealth]]:
    """A peer with a health service and PeerService behind 10 ms each way (20 ms round trip:
    long enough for a sized window).
    """
    counting = _CountingHealth()
    server, port = peer_service(_download, _layer, counting)
    try:
        with DelayProxy(("127.0.0.1", port), delay=0.01) as proxy:
            yield proxy, counting
    finally:
        server.stop(None)


def _fetch(channels: fetch.PeerChannels, peer: str) -> bytes:
    call = channels.download(peer)
    return b"".join(bytes(c.data) for c in call(peer_pb2.DownloadRequest(name="f"), timeout=10))


def test_the_round_trip_is_timed_on_the_connection_the_piece_layer_opened(
    long_link: tuple[DelayProxy, _CountingHealth],
) -> None:
    proxy, counting = long_link
    channels = fetch.PeerChannels()
    try:
        layer = channels.piece_layer(proxy.address)(peer_pb2.GetPieceLayerRequest(), timeout=10)
        assert layer.piece_size == 16384
        assert _fetch(channels, proxy.address) == DATA
        assert _fetch(channels, proxy.address) == DATA  # the same channel, timed once
    finally:
        channels.close()
    assert counting.checks == fetch.ROUND_TRIP_PROBES
    assert proxy.connections == 2  # the small calls', and the download's with its own window


def test_without_a_piece_layer_one_more_check_opens_the_connection(
    long_link: tuple[DelayProxy, _CountingHealth],
) -> None:
    proxy, counting = long_link
    channels = fetch.PeerChannels()
    try:
        assert _fetch(channels, proxy.address) == DATA
    finally:
        channels.close()
    assert counting.checks == fetch.ROUND_TRIP_PROBES + 1
    assert proxy.connections == 2
