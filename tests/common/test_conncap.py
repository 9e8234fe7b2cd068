"""Connections per address to a server of this process: the newest past the cap are shut,
and the address is kept out in the kernel (a socket filter) until it holds fewer.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from napshare.common.addresskey import AddressKey
from napshare.common.conncap import HOLD_SECONDS, ConnectionCap

from tests.support.ipv6 import addresses_here, missing

NETWORK = [f"2001:db8:1:1::{n}" for n in range(1, 6)]
ELSEWHERE = "2001:db8:1:2::1"


class Server:
    """A listening socket on [::] that accepts and holds every connection (in this process,
    as a gRPC server's are), and closes one when it ends (as gRPC does one shut down).
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("::", 0), family=socket.AF_INET6, dualstack_ipv6=True)
        self.port: int = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn = self.listener.accept()[0]
                self.accepted.append(conn)
                threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    @staticmethod
    def _hold(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while conn.recv(4096):
                pass
        conn.close()

    def close(self) -> None:
        self.listener.close()
        for sock in self.accepted:
            sock.close()


def dial(source: str, port: int, timeout: float = 2.0) -> socket.socket | None:
    """A connection from `source` to [::1]:port, or None when it is not accepted in time."""
    family = socket.AF_INET6 if ":" in source else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.bind((source, 0))
    try:
        sock.connect(("::1" if family == socket.AF_INET6 else "127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    return sock


def shut(sock: socket.socket, timeout: float = 2.0) -> bool:
    """Whether the server shut this connection (it reads the end of it)."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


@pytest.fixture
def network() -> Iterator[None]:
    if why := missing():
        pytest.skip(why)
    with addresses_here([*NETWORK, ELSEWHERE]):
        yield


def test_connections_past_the_cap_of_a_network_are_shut_and_it_is_kept_out(network: None) -> None:
    server = Server()
    cap = ConnectionCap(server.port, 2, AddressKey())
    cap._listeners = [server.listener.fileno()]
    held: list[socket.socket] = []
    try:
        held = [s for s in (dial(source, server.port) for source in NETWORK[:3]) if s]
        assert len(held) == 3
        time.sleep(0.2)  # accepted
        cap.look()
        assert cap.counts() == {"2001:db8:1:1::/64": 3}
        assert [shut(sock, 0.5) for sock in held] == [False, False, True]  # the newest goes
        assert cap.kept_out() == {"2001:db8:1:1::/64"}
        assert dial(NETWORK[3], server.port, timeout=1.0) is None  # its SYNs are dropped
        other = dial(ELSEWHERE, server.port)
        assert other is not None  # another network connects
        held.append(other)
        local = dial("127.0.0.1", server.port)
        assert local is not None  # and IPv4 too
        held.append(local)
        cap.look()
        assert cap.counts()["2001:db8:1:1::/64"] == 2
        assert not shut(held[0], 0.2)  # those within the cap keep working
        held[0].close()
        time.sleep(HOLD_SECONDS + 0.5)
        cap.look()  # one connection now: under the cap, for long enough
        assert cap.kept_out() == frozenset()
        again = dial(NETWORK[3], server.port)
        assert again is not None
        held.append(again)
    finally:
        cap.stop()
        for sock in held:
            sock.close()
        server.close()
