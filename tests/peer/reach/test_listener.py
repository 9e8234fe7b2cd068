"""The serving side of reach on a real tracker and a real peer that the tracker cannot reach:
it holds a Listen stream, dials back when a downloader asks, proves the dial, and serves
PeerService over the connection, TLS pinned as always; it opens the stream again after a
re-Join and after the tracker restarts.
"""

import hashlib
import os
import socket
import threading
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from napshare.common.reverse_wire import answer_reverse
from napshare.common.splice import Splice
from napshare.common.tls import pinned_channel
from napshare.peer.node import Node
from napshare.peer.reach.paths import Path
from napshare.v1 import peer_pb2, peer_pb2_grpc, tracker_pb2

from tests.support.reach import FreezableProxy, natted_config, start_reach_tracker
from tests.support.waiting import wait_until

DATA = os.urandom(3 * 1024 * 1024 + 5)


@pytest.fixture(params=["tls", "plaintext"])
def tracker(request):
    started = start_reach_tracker(tls=request.param == "tls")
    yield started
    started.server.stop(None)


@pytest.fixture
def natted(tmp_path, tracker) -> Iterator[Node]:
    """A serving peer the tracker cannot reach, sharing DATA as data.bin."""
    folder = tmp_path / "natted"
    folder.mkdir()
    (folder / "data.bin").write_bytes(DATA)
    node = Node(natted_config(folder, tracker.address, tracker.transport()), lambda *_: None)
    node.start()
    yield node
    node.stop()


def reverse_connection(tracker, peer_id: str) -> socket.socket:
    """What a downloader does for a reverse connection: listen, Connect, answer the dial."""
    client = tracker.client()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)
        answer = client.connect(
            peer_id, tracker_pb2.CONNECT_PATH_REVERSE, listener.getsockname()[1]
        )
        assert answer.dialing
        conn, _ = listener.accept()
    client.close()
    assert answer_reverse(conn, {answer.session: answer.secret}.get, 5) == answer.session
    return conn


def proxied(remote: socket.socket) -> tuple[str, threading.Thread]:
    """A loopback address whose first connection is spliced to `remote`."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        with listener:
            conn, _ = listener.accept()
        Splice(conn, remote).start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return f"127.0.0.1:{listener.getsockname()[1]}", thread


def channel_to(node: Node, target: str) -> grpc.Channel:
    if node.config.transport.plaintext:
        return grpc.insecure_channel(target)
    return pinned_channel(target, node.identity.certificate_pem)


def test_a_peer_the_tracker_cannot_reach_serves_over_the_connection_it_dials_back(natted, tracker):
    wait_until(lambda: natted.reach.listening)
    target, _ = proxied(reverse_connection(tracker, natted.link.peer_id))
    with channel_to(natted, target) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        chunks = peer_pb2_grpc.PeerServiceStub(channel).Download(
            peer_pb2.DownloadRequest(name="data.bin"), timeout=30
        )
        received = b"".join(chunk.data for chunk in chunks)
    assert hashlib.sha256(received).digest() == hashlib.sha256(DATA).digest()
    assert natted.dialled.snapshot()[Path.REVERSE.value] == 1
    wait_until(lambda: len(natted.callers) == 0)  # the splice ended with the channel


def test_after_joining_again_the_peer_listens_with_its_new_registration(natted, tracker):
    wait_until(lambda: natted.reach.listening)
    again = natted.link.join()  # a new token: the old stream's registration is gone
    wait_until(lambda: natted.reach.listening_with is again)
    conn = reverse_connection(tracker, again.peer_id)
    conn.close()
    wait_until(lambda: natted.dialled.snapshot()[Path.REVERSE.value] == 1)


def test_a_dial_to_someone_who_does_not_know_the_secret_serves_nothing(natted, tracker):
    wait_until(lambda: natted.reach.listening)
    client = tracker.client()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)
        client.connect(
            natted.link.peer_id, tracker_pb2.CONNECT_PATH_REVERSE, listener.getsockname()[1]
        )
        conn, _ = listener.accept()
        with conn:
            hello = conn.recv(35)
            assert hello.startswith(b"NAPSHARE-REVERSE/1\n")
            conn.sendall(b"\0" * 32)  # a wrong proof
            assert conn.recv(100) == b""  # the peer hangs up without a word
    client.close()
    assert natted.dialled.snapshot()[Path.REVERSE.value] == 0
    assert len(natted.callers) == 0


def test_past_its_dial_back_cap_the_peer_drops_requests(tmp_path, tracker, caplog):
    folder = tmp_path / "capped"
    folder.mkdir()
    config = natted_config(folder, tracker.address, tracker.transport(), max_dialbacks=1)
    node = Node(config, lambda *_: None)
    node.start()
    try:
        wait_until(lambda: node.reach.listening)
        held = reverse_connection(tracker, node.link.peer_id)  # spliced: holds the one slot
        wait_until(lambda: len(node.callers) == 1)
        client = tracker.client()
        with socket.create_server(("127.0.0.1", 0)) as listener:
            listener.settimeout(3)  # longer than a dial on loopback takes
            client.connect(
                node.link.peer_id, tracker_pb2.CONNECT_PATH_REVERSE, listener.getsockname()[1]
            )
            with pytest.raises(TimeoutError):
                listener.accept()
        client.close()
        assert "dropped 1 connection requests" in caplog.text
        held.close()  # the splice ends and frees the slot
        wait_until(lambda: len(node.callers) == 0)
        reverse_connection(tracker, node.link.peer_id).close()
    finally:
        node.stop()


def test_the_stream_comes_back_after_the_tracker_restarts(tmp_path, tracker):
    folder = tmp_path / "natted"
    folder.mkdir()
    (folder / "data.bin").write_bytes(DATA)
    node = Node(natted_config(folder, tracker.address, tracker.transport()), lambda *_: None)
    node.start()
    restarted = None
    try:
        wait_until(lambda: node.reach.listening)
        tracker.server.stop(None).wait()
        wait_until(lambda: not node.reach.listening)
        restarted = start_reach_tracker(
            tls=tracker.identity is not None, port=tracker.port, identity=tracker.identity
        )
        # It joins the new tracker (which knows nothing of it) and listens there again.
        wait_until(lambda: node.reach.listening, timeout=60)
        reverse_connection(restarted, node.link.peer_id).close()
    finally:
        node.stop()
        if restarted is not None:
            restarted.server.stop(None)


def test_a_stream_that_goes_silent_is_opened_again_on_a_new_connection(tmp_path):
    tracker = start_reach_tracker(tls=True, listen_keepalive=1.0)
    proxy = FreezableProxy(("127.0.0.1", tracker.port))
    folder = tmp_path / "natted"
    folder.mkdir()
    node = Node(natted_config(folder, proxy.address, tracker.transport()), lambda *_: None)
    node.start()
    try:
        wait_until(lambda: node.reach.listening)
        before = proxy.connections
        proxy.freeze()  # the router forgets the connection: keepalives stop arriving
        # Three silent keepalive intervals later it dials the tracker again, and listens.
        wait_until(lambda: proxy.connections > before)
        wait_until(lambda: node.reach.listening)
        reverse_connection(tracker, node.link.peer_id).close()
        wait_until(lambda: node.dialled.snapshot()[Path.REVERSE.value] == 1)
    finally:
        node.stop()
        proxy.close()
        tracker.server.stop(None)
