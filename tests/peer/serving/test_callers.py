"""Uploads over connections this peer spliced into its own server count for the downloader
each carries (peer.serving.callers), not for the loopback address they arrive from.
"""

import os
import socket
import threading

import grpc
import pytest
from napshare.common import reasons
from napshare.common.address import format_address
from napshare.common.splice import Splice
from napshare.peer.folder.store import SharedFolder
from napshare.peer.serving.callers import Callers
from napshare.peer.serving.server import create_server
from napshare.peer.serving.slots import Fairness
from napshare.v1 import peer_pb2, peer_pb2_grpc


class SplicingProxy:
    """A loopback listener that splices each connection into the server, recording the
    connection to the server as `downloader`'s, as the serving side of reach does.
    """

    def __init__(self, server: tuple[str, int], callers: Callers, downloader: str) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = format_address(*self._listener.getsockname()[:2])
        self._server, self._callers, self._downloader = server, callers, downloader
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                accepted, _ = self._listener.accept()
            except OSError:
                return
            local = socket.create_connection(self._server)
            key = format_address(*local.getsockname()[:2])
            self._callers.record(key, self._downloader)
            Splice(accepted, local, on_end=lambda _s, key=key: self._callers.forget(key)).start()

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def capped_peer(tmp_path):
    """A peer sharing 4 MiB slowly (so downloads last), one upload per address, and its
    callers registry.
    """
    (tmp_path / "big.bin").write_bytes(os.urandom(4 * 1024 * 1024))
    callers = Callers()
    server, port = create_server(
        SharedFolder(tmp_path),
        host="127.0.0.1",
        port=0,
        max_uploads=4,
        chunk_size=16 * 1024,
        fairness=Fairness(per_address=1, min_rate=0, window=30, grace=10),
        max_upload_rate=256 * 1024,
        callers=callers,
    )
    yield ("127.0.0.1", port), callers
    server.stop(None)


def first_chunk(target: str) -> tuple[grpc.Channel, object]:
    channel = grpc.insecure_channel(target)
    call = peer_pb2_grpc.PeerServiceStub(channel).Download(
        peer_pb2.DownloadRequest(name="big.bin"), timeout=30
    )
    next(call)
    return channel, call


def test_spliced_uploads_count_for_the_downloader_they_carry(capped_peer, rpc_details):
    server, callers = capped_peer
    proxies = [
        SplicingProxy(server, callers, ip) for ip in ("203.0.113.5", "203.0.113.5", "203.0.113.6")
    ]
    held = []
    try:
        held.append(first_chunk(proxies[0].address))  # 203.0.113.5's one slot
        with pytest.raises(grpc.RpcError) as caught:
            first_chunk(proxies[1].address)  # 203.0.113.5 again, on another connection
        assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert rpc_details(caught.value)[0].reason == reasons.TOO_MANY_UPLOADS_FOR_ADDRESS
        held.append(first_chunk(proxies[2].address))  # another downloader: served
        # Both arrive from 127.0.0.1, which holds no slot of its own: a direct call is served.
        held.append(first_chunk(f"127.0.0.1:{server[1]}"))
    finally:
        for channel, call in held:
            call.cancel()
            channel.close()
        for proxy in proxies:
            proxy.close()


def test_a_call_not_spliced_counts_for_its_own_address():
    callers = Callers()
    callers.record("127.0.0.1:40000", "198.51.100.9")
    assert callers.address("ipv4:127.0.0.1:40000") == "198.51.100.9"
    assert callers.address("ipv4:127.0.0.1:40001") == "127.0.0.1"
    assert callers.address("ipv6:%5B::1%5D:40000") == "::1"
    assert callers.address("unix:/tmp/socket") == "unix:/tmp/socket"
    callers.forget("127.0.0.1:40000")
    assert callers.address("ipv4:127.0.0.1:40000") == "127.0.0.1"
