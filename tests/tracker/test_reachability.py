"""Join's address check under a flood of Joins that claim tarpits: shared fairly, cached."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from napshare.common.identity import PEER_NAME, TRACKER_NAME, make_identity
from napshare.peer.errors import ClientError, TrackerBusyError
from napshare.peer.folder.store import SharedFolder
from napshare.peer.serving.server import create_server as create_peer
from napshare.peer.tracker_client import TrackerClient
from napshare.peer.transport import Transport
from napshare.tracker.errors import ChecksBusyError
from napshare.tracker.reachability import AddressCheck
from napshare.tracker.server import create_server

from tests.support.sources import SourceProxy


class Tarpit:
    """A port that accepts connections and never says a word: a TLS handshake there never
    ends. Counts the connections it took.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.port: int = self._listener.getsockname()[1]
        self.accepted = 0
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            self._held.append(conn)

    def close(self) -> None:
        self._listener.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def tarpit() -> Iterator[Tarpit]:
    pit = Tarpit()
    yield pit
    pit.close()


@pytest.fixture
def tls_tracker() -> Iterator[tuple[int, bytes]]:
    identity = make_identity(TRACKER_NAME)
    server, port = create_server(host="127.0.0.1", port=0, tls=identity)
    yield port, identity.certificate_pem
    server.stop(None)


def client_via(proxy: SourceProxy, tracker_cert: bytes) -> TrackerClient:
    return TrackerClient(
        proxy.address, transport=Transport(plaintext=False, tracker_cert=tracker_cert)
    )


@pytest.mark.serial  # a flood of Joins
def test_joins_from_one_network_hold_two_checks_and_an_honest_join_is_still_checked(
    tls_tracker: tuple[int, bytes], tarpit: Tarpit, tmp_path: Path
) -> None:
    port, tracker_cert = tls_tracker
    # Eight addresses of one /24 keep claiming the tarpit, each Join signed by a new identity
    # (so no answer is ever one the tracker knows), two at a time from each address.
    proxies = [SourceProxy(("127.0.0.1", port), f"127.0.0.{n}") for n in range(2, 10)]
    stop = threading.Event()
    busy = threading.Event()

    def flood(proxy: SourceProxy) -> None:
        client = client_via(proxy, tracker_cert)
        try:
            while not stop.is_set():
                try:
                    client.join("127.0.0.1", tarpit.port, [], identity=make_identity(PEER_NAME))
                except TrackerBusyError:
                    busy.set()
                    stop.wait(0.01)
                except ClientError:
                    pass  # the address is taken by an earlier identity of the flood
        finally:
            client.close()

    floods = [threading.Thread(target=flood, args=(p,)) for p in proxies for _ in range(2)]
    for thread in floods:
        thread.start()
    honest_identity = make_identity(PEER_NAME)
    folder = tmp_path / "shared"
    folder.mkdir()
    peer, peer_port = create_peer(SharedFolder(folder), host="127.0.0.1", tls=honest_identity)
    honest = SourceProxy(("127.0.0.1", port), "127.0.1.1")
    client = client_via(honest, tracker_cert)
    try:
        assert busy.wait(30), "the flood never filled its share of the checks"
        # Another network's Join gets a check while the flood goes on, and is reached.
        for _ in range(3):
            registration = client.join("127.0.0.1", peer_port, [], identity=honest_identity)
            assert registration.reachable
    finally:
        stop.set()
        for thread in floods:
            thread.join()
        client.close()
        honest.close()
        for proxy in proxies:
            proxy.close()
        peer.stop(None)


def test_an_address_checked_lately_is_not_dialled_again(tarpit: Tarpit) -> None:
    check = AddressCheck(tls=True, timeout=1.0, handshake_timeout=0.2)
    certificate = make_identity(PEER_NAME).certificate_der
    target = f"127.0.0.1:{tarpit.port}"
    assert check.reachable(target, certificate, "192.0.2.1") is False
    dialled = tarpit.accepted
    assert dialled >= 1
    for source in ("192.0.2.1", "198.51.100.7", "2001:db8::1"):
        assert check.reachable(target, certificate, source) is False
    assert tarpit.accepted == dialled
    # Another certificate at the same address is another question: it is asked.
    assert check.reachable(target, make_identity(PEER_NAME).certificate_der, "") is False
    assert tarpit.accepted > dialled


def test_joins_of_one_ipv6_network_share_its_checks(tarpit: Tarpit) -> None:
    check = AddressCheck(tls=True, timeout=2.0, handshake_timeout=1.5, max_per_source=2)
    target = f"127.0.0.1:{tarpit.port}"
    outcomes: list[object] = []
    lock = threading.Lock()

    def claim(source: str) -> None:
        certificate = make_identity(PEER_NAME).certificate_der
        try:
            result: object = check.reachable(target, certificate, source)
        except ChecksBusyError:
            result = "busy"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=claim, args=(f"2001:db8:1:2::{n:x}",)) for n in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(False) == 2  # checked (and not reachable: a tarpit)
    assert outcomes.count("busy") == 6
