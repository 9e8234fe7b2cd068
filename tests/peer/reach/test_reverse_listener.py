"""The downloader's listener for reverse connections, on real loopback sockets: a dial is
handed to whoever waits for its session, even when it arrives before the session is expected
(the tracker tells the peer as it answers Connect); strangers get nothing.
"""

import secrets
import threading

import pytest
from napshare.common.reverse_wire import ReverseHandshakeError, dial_reverse
from napshare.peer.reach.reverse import ReverseListener


def test_a_dial_that_comes_before_its_session_is_expected_still_gets_through():
    listener = ReverseListener("127.0.0.1")
    session, secret = secrets.token_bytes(16), secrets.token_bytes(32)
    dialled: list[object] = []
    try:
        dialler = threading.Thread(
            target=lambda: dialled.append(
                dial_reverse(("127.0.0.1", listener.port), session, secret, 5)
            )
        )
        dialler.start()  # dials now: nothing expects the session yet
        threading.Event().wait(0.2)
        listener.expect(session, secret)
        arrived = listener.wait(session, 5)
        dialler.join(5)
        assert arrived is not None
        [peer_end] = dialled
        peer_end.sendall(b"ping")
        assert arrived.recv(4) == b"ping"
        arrived.close()
        peer_end.close()
    finally:
        listener.close()


def test_a_dial_nobody_expects_is_refused_and_a_wait_for_it_times_out():
    listener = ReverseListener("127.0.0.1")
    try:
        with pytest.raises((ReverseHandshakeError, OSError)):
            dial_reverse(
                ("127.0.0.1", listener.port), secrets.token_bytes(16), secrets.token_bytes(32), 8
            )
        assert listener.wait(secrets.token_bytes(16), 0.1) is None
    finally:
        listener.close()
