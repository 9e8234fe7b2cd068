"""The reverse handshake: a peer behind a NAT dials a downloader that asked the tracker for it,
and each side proves it knows the dial's secret before the connection carries PeerService.

The peer dials and sends MAGIC and the 16-byte session; the downloader answers with
HMAC-SHA256(secret, "napshare.v1 reverse downloader" + session), and the peer, having checked
it, with HMAC-SHA256(secret, "napshare.v1 reverse peer" + session). Only the downloader that
called Connect and the peer the tracker told know the secret (tracker.proto, `Connect`): so the
peer knows it dialled the one who asked, and the downloader that the one who dialled was told
by the tracker. Then the downloader starts TLS on the connection, pinned to the peer's
certificate as always.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import time
from collections.abc import Callable

MAGIC = b"NAPSHARE-REVERSE/1\n"
SESSION_BYTES = 16
SECRET_BYTES = 32
PROOF_BYTES = 32
_DOWNLOADER = b"napshare.v1 reverse downloader"
_PEER = b"napshare.v1 reverse peer"


class ReverseHandshakeError(Exception):
    """The other side is not a napshare peer, or does not know the dial's secret."""


def proof(secret: bytes, downloader: bool, session: bytes) -> bytes:
    """What the downloader (else the peer) sends to prove it knows `secret`."""
    role = _DOWNLOADER if downloader else _PEER
    return hmac.new(secret, role + session, hashlib.sha256).digest()


def dial_reverse(
    address: tuple[str, int], session: bytes, secret: bytes, timeout: float
) -> socket.socket:
    """The serving side: dial `address`, prove the dial, check the downloader's proof, within
    `timeout` seconds in all; the connection, ready to carry PeerService (blocking, no
    timeout). Raises ReverseHandshakeError, or OSError (TimeoutError) for the network.
    """
    if len(session) != SESSION_BYTES or len(secret) != SECRET_BYTES:
        raise ReverseHandshakeError(
            f"a reverse dial needs a {SESSION_BYTES}-byte session and a {SECRET_BYTES}-byte secret"
        )
    deadline = time.monotonic() + timeout
    sock = socket.create_connection(address, timeout=timeout)
    try:
        _send(sock, MAGIC + session, deadline)
        if not hmac.compare_digest(
            _read(sock, PROOF_BYTES, deadline), proof(secret, True, session)
        ):
            raise ReverseHandshakeError(
                f"{address[0]} port {address[1]} does not know the dial's secret: not the "
                "downloader that asked for it"
            )
        _send(sock, proof(secret, False, session), deadline)
    except BaseException:
        sock.close()
        raise
    sock.settimeout(None)
    return sock


def answer_reverse(
    sock: socket.socket, secret_of_session: Callable[[bytes], bytes | None], timeout: float
) -> bytes:
    """The downloading side, on a connection it accepted: read the dial, prove it knows the
    secret `secret_of_session(session)` returns, check the peer's proof, within `timeout`
    seconds in all; the session (the socket is left blocking, no timeout). Raises
    ReverseHandshakeError (not a reverse dial, an unknown session, a bad proof), or OSError.
    """
    deadline = time.monotonic() + timeout
    hello = _read(sock, len(MAGIC) + SESSION_BYTES, deadline)
    if not hello.startswith(MAGIC):
        raise ReverseHandshakeError("not a napshare reverse dial")
    session = hello[len(MAGIC) :]
    secret = secret_of_session(session)
    if secret is None:
        raise ReverseHandshakeError("a reverse dial for no session this downloader waits for")
    _send(sock, proof(secret, True, session), deadline)
    answer = _read(sock, PROOF_BYTES, deadline)
    if not hmac.compare_digest(answer, proof(secret, False, session)):
        raise ReverseHandshakeError("the dialling peer does not know the dial's secret")
    sock.settimeout(None)
    return session


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the reverse handshake took too long")
    return left


def _send(sock: socket.socket, data: bytes, deadline: float) -> None:
    sock.settimeout(_left(deadline))
    sock.sendall(data)


def _read(sock: socket.socket, count: int, deadline: float) -> bytes:
    """Exactly `count` bytes, or ReverseHandshakeError if the connection ends first."""
    data = bytearray()
    while len(data) < count:
        sock.settimeout(_left(deadline))
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ReverseHandshakeError("the connection closed during the reverse handshake")
        data += chunk
    return bytes(data)
