"""The relay's cap on connections waiting per address counts an IPv6 /64 as one address."""

import socket
import time

import pytest
from napshare.relay.caps import RelayCaps
from napshare.relay.server import create_relay

from tests.support.ipv6 import addresses_here, missing
from tests.support.relays import TRACKER

ONE_NETWORK = ["2001:db8:1:1::1", "2001:db8:1:1::2", "2001:db8:1:1::3"]
OTHER_NETWORK = "2001:db8:1:2::1"


def _dial(source: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.connect(("::1", port))
    return sock


def test_connections_of_one_ipv6_network_share_its_waiting_cap() -> None:
    if why := missing():
        pytest.skip(why)
    with addresses_here([*ONE_NETWORK, OTHER_NETWORK]):
        caps = RelayCaps(waiting_per_address=2, hello_seconds=30)
        relay, port = create_relay("::", 0, [TRACKER.certificate_der], caps)
        held: list[socket.socket] = []
        try:
            held += [_dial(source, port) for source in ONE_NETWORK[:2]]
            deadline = time.monotonic() + 10
            while relay.stats().waiting < 2:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            third = _dial(ONE_NETWORK[2], port)
            held.append(third)
            third.settimeout(10)
            answer = third.recv(4096)  # FULL, then closed
            assert answer
            while third.recv(4096):
                pass
            assert relay.stats().waiting == 2
            held.append(_dial(OTHER_NETWORK, port))  # another network waits as well
            deadline = time.monotonic() + 10
            while relay.stats().waiting < 3:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        finally:
            for sock in held:
                sock.close()
            relay.stop()
