"""The reverse handshake over real loopback connections: both sides prove the secret, either
side refuses a wrong one, and a silent or foreign other side ends within the timeout.
"""

import secrets
import socket
import threading

import pytest
from napshare.common.reverse_wire import (
    MAGIC,
    ReverseHandshakeError,
    answer_reverse,
    dial_reverse,
    proof,
)

SESSION = secrets.token_bytes(16)
SECRET = secrets.token_bytes(32)


def _serve_once(handle):
    """A listener on a free loopback port whose one accepted connection goes to `handle`;
    returns its address and what `handle` returned or raised.
    """
    server = socket.create_server(("127.0.0.1", 0))
    outcome: list[object] = []

    def run() -> None:
        conn, _ = server.accept()
        server.close()
        try:
            outcome.append(handle(conn))
        except Exception as error:
            outcome.append(error)
            conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return server.getsockname(), outcome, thread


def test_both_sides_prove_the_secret_and_the_connection_then_carries_bytes():
    accepted: list[socket.socket] = []

    def downloader(conn):
        session = answer_reverse(conn, {SESSION: SECRET}.get, timeout=5)
        accepted.append(conn)
        return session

    address, outcome, thread = _serve_once(downloader)
    dialled = dial_reverse(address, SESSION, SECRET, timeout=5)
    thread.join(5)
    assert outcome == [SESSION]
    with dialled, accepted[0] as conn:
        assert dialled.gettimeout() is None
        assert conn.gettimeout() is None
        dialled.sendall(b"h2 preface")
        assert conn.recv(100) == b"h2 preface"


def test_the_peer_refuses_a_downloader_that_does_not_know_the_secret():
    def impostor(conn):
        conn.recv(len(MAGIC) + 16)
        conn.sendall(proof(secrets.token_bytes(32), True, SESSION))
        return conn.recv(100)  # the peer sends nothing more, and closes

    address, outcome, thread = _serve_once(impostor)
    with pytest.raises(ReverseHandshakeError, match="does not know"):
        dial_reverse(address, SESSION, SECRET, timeout=5)
    thread.join(5)
    assert outcome == [b""]


def test_the_downloader_refuses_an_unknown_session_and_a_peer_without_the_secret():
    address, outcome, thread = _serve_once(lambda conn: answer_reverse(conn, {}.get, 5))
    with pytest.raises(ReverseHandshakeError):
        dial_reverse(address, SESSION, SECRET, timeout=5)
    thread.join(5)
    assert isinstance(outcome[0], ReverseHandshakeError)
    assert "no session" in str(outcome[0])

    address, outcome, thread = _serve_once(
        lambda conn: answer_reverse(conn, {SESSION: SECRET}.get, 5)
    )
    with socket.create_connection(address) as fake:
        fake.sendall(MAGIC + SESSION)
        assert fake.recv(32) == proof(SECRET, True, SESSION)
        fake.sendall(b"\0" * 32)
        thread.join(5)
    assert isinstance(outcome[0], ReverseHandshakeError)


def test_a_connection_that_is_no_reverse_dial_is_refused():
    address, outcome, thread = _serve_once(lambda conn: answer_reverse(conn, {}.get, 5))
    with socket.create_connection(address) as other:
        other.sendall(b"GET / HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n")
        thread.join(5)
    assert isinstance(outcome[0], ReverseHandshakeError)
    assert "not a napshare reverse dial" in str(outcome[0])


def test_a_silent_other_side_ends_the_handshake_at_the_timeout():
    address, outcome, thread = _serve_once(lambda conn: answer_reverse(conn, {}.get, 0.2))
    with socket.create_connection(address):
        thread.join(5)
    assert isinstance(outcome[0], TimeoutError)
    held: list[socket.socket] = []
    address, _, thread = _serve_once(held.append)  # accepts, never answers
    with pytest.raises(TimeoutError):
        dial_reverse(address, SESSION, SECRET, timeout=0.2)


def test_a_refused_dial_is_an_os_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = sock.getsockname()
    with pytest.raises(ConnectionRefusedError):
        dial_reverse(address, SESSION, SECRET, timeout=2)


def test_sessions_and_secrets_of_the_wrong_size_are_refused_before_dialling():
    with pytest.raises(ReverseHandshakeError):
        dial_reverse(("127.0.0.1", 9), b"short", SECRET, timeout=1)
    with pytest.raises(ReverseHandshakeError):
        dial_reverse(("127.0.0.1", 9), SESSION, b"", timeout=1)
