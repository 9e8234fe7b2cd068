"""A peer given several tracker replicas (`--tracker A,B`) stays registered when one dies, and
trusts only the one identity it pinned, whichever replica answers.
"""

import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from napshare.common.reverse_wire import answer_reverse
from napshare.peer.errors import ConnectRefusedError, TrackerIdentityError, TrackerUnreachableError
from napshare.peer.folder.store import SharedFolder
from napshare.peer.node import Node
from napshare.peer.tracker_client import ConnectAnswer, TrackerClient
from napshare.peer.tracker_link import TrackerLink
from napshare.peer.transport import PLAINTEXT, Transport
from napshare.v1 import tracker_pb2

from tests.support.reach import natted_config
from tests.support.redis import shared_server, store_url
from tests.support.trackers import TrackerProcess
from tests.support.waiting import wait_until

INTERVAL = "1"  # heartbeat interval of the replicas: a lease is 3 s


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., TrackerProcess]]:
    """start(*flags, tls=False, home=tmp_path): a tracker process; killed after the test."""
    started: list[TrackerProcess] = []

    def start(*flags: str, tls: bool = False, home: Path = tmp_path) -> TrackerProcess:
        home.mkdir(exist_ok=True)
        process = TrackerProcess(sys.executable, home, *flags, tls=tls)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop(signal.SIGKILL)


@pytest.fixture
def store() -> str:
    """A new store on the test session's Redis server."""
    return store_url(shared_server())


def test_a_peer_given_two_replicas_stays_registered_when_one_dies(
    start: Callable[..., TrackerProcess], store: str, tmp_path: Path
) -> None:
    a, b = (start("--store", store, "--heartbeat-interval", INTERVAL) for _ in range(2))
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "lecture.mp4").write_bytes(b"x" * 1000)
    link = TrackerLink(
        TrackerClient(f"{a.address},{b.address}"),
        SharedFolder(shared),
        host="127.0.0.1",
        port=7001,
    )
    link.join()
    link.start()
    watcher = TrackerClient(b.address)
    try:
        a.stop(signal.SIGKILL)
        time.sleep(2 * 3.0)  # two leases: without heartbeats that reach b, the peer is gone
        found = watcher.find(name="lecture.mp4")
    finally:
        link.stop()
        watcher.close()

    assert [source.peer for source in found.sources] == ["127.0.0.1:7001"]
    assert link.join_count == 1  # the heartbeats went to b: the lease never ran out
    assert link.tracker.address == b.address


def test_every_replica_must_show_the_pinned_identity(
    start: Callable[..., TrackerProcess], store: str, tmp_path: Path
) -> None:
    a, b = (start("--store", store, tls=True) for _ in range(2))  # one --state-dir: one identity
    stranger = start("--store", store, tls=True, home=tmp_path / "elsewhere")
    transport = Transport(plaintext=False, known_trackers=tmp_path / "known_trackers.json")
    client = TrackerClient(f"{a.address},{b.address},{stranger.address}", transport=transport)
    try:
        assert client.find(name="nothing.mp4").sources == []  # pins a's certificate
        pinned = client.tracker_identity
        a.stop(signal.SIGKILL)
        assert client.find(name="nothing.mp4").sources == []  # b shows the same one
        assert client.tracker_identity == pinned
        b.stop(signal.SIGKILL)
        with pytest.raises(TrackerIdentityError):
            client.find(name="nothing.mp4")  # the stranger shows another: no failing over
    finally:
        client.close()


def test_when_every_replica_is_down_the_error_says_the_tracker_is_unreachable(
    start: Callable[..., TrackerProcess], store: str
) -> None:
    a, b = (start("--store", store) for _ in range(2))
    client = TrackerClient(f"{a.address},{b.address}")
    a.stop(signal.SIGKILL)
    b.stop(signal.SIGKILL)
    try:
        with pytest.raises(TrackerUnreachableError):
            client.find(name="x.mp4")
    finally:
        client.close()


def test_a_peer_behind_a_nat_opens_its_listen_stream_at_another_replica_when_its_dies(
    start: Callable[..., TrackerProcess], store: str, tmp_path: Path
) -> None:
    a, b = (start("--store", store, "--listen-keepalive", "1") for _ in range(2))
    folder = tmp_path / "natted"
    folder.mkdir()
    (folder / "data.bin").write_bytes(b"x" * 5000)
    node = Node(natted_config(folder, f"{a.address},{b.address}", PLAINTEXT), lambda *_: None)
    node.start()
    asker = TrackerClient(b.address)
    try:
        wait_until(lambda: node.reach.listening)  # its stream is at a, the first replica
        a.stop(signal.SIGKILL)
        with socket.create_server(("127.0.0.1", 0)) as listener:
            listener.settimeout(20)
            port = listener.getsockname()[1]
            answer = _connected(asker, node.link.peer_id, port)
            conn, _ = listener.accept()  # the peer dials back, told through its stream at b
            with conn:
                assert answer_reverse(conn, {answer.session: answer.secret}.get, 5)
    finally:
        asker.close()
        node.stop()


def _connected(asker: TrackerClient, peer_id: str, port: int) -> ConnectAnswer:
    """b's answer to a reverse Connect, once the peer's stream is open there (until then,
    b answers that the peer is not listening).
    """
    deadline = time.monotonic() + 30
    while True:
        try:
            return asker.connect(peer_id, tracker_pb2.CONNECT_PATH_REVERSE, port)
        except ConnectRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
