"""The downloader's one listener for reverse connections: peers the tracker asked to dial this
process connect here, prove the dial's secret (common.reverse_wire) and are handed to whoever
waits for their session.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading

from napshare.common.reverse_wire import ReverseHandshakeError, answer_reverse
from napshare.peer.defaults import REVERSE_WAIT
from napshare.peer.reach.accepting import accept_bounded

logger = logging.getLogger(__name__)

MAX_HANDSHAKES = 32  # reverse handshakes the listener runs at once; more connections are closed


class ReverseListener:
    """The one listener of this process for reverse connections: peers that the tracker asked
    to dial us connect here, prove the dial's secret, and are handed to whoever waits for
    their session.
    """

    def __init__(self, host: str = "") -> None:
        """Listen on `host` ("": every address, IPv4 and IPv6 where the host has both)."""
        if host:
            self._socket = socket.create_server((host, 0))
        elif socket.has_dualstack_ipv6():
            self._socket = socket.create_server(
                ("", 0), family=socket.AF_INET6, dualstack_ipv6=True
            )
        else:
            self._socket = socket.create_server(("0.0.0.0", 0))
        self.port: int = self._socket.getsockname()[1]
        self._lock = threading.Lock()
        self._secrets: dict[bytes, bytes] = {}
        self._arrived: dict[bytes, socket.socket] = {}
        self._condition = threading.Condition(self._lock)
        self._handshakes = threading.BoundedSemaphore(MAX_HANDSHAKES)
        self._closed = False
        threading.Thread(
            target=accept_bounded,
            args=(self._socket, self._handshakes, self._handshake, "reverse-handshake"),
            name="reverse-accept",
            daemon=True,
        ).start()

    def expect(self, session: bytes, secret: bytes) -> None:
        """Wait for a dial of `session` from now on."""
        with self._condition:
            self._secrets[session] = secret
            self._condition.notify_all()

    def wait(self, session: bytes, timeout: float) -> socket.socket | None:
        """The connection of `session` once it proved itself, or None after `timeout` seconds
        (the session is then forgotten: a later dial is refused).
        """
        with self._condition:
            self._condition.wait_for(
                lambda: session in self._arrived or self._closed, timeout=timeout
            )
            self._secrets.pop(session, None)
            return self._arrived.pop(session, None)

    def close(self) -> None:
        """Stop listening; connections that arrived and were not taken are closed."""
        with self._condition:
            self._closed = True
            arrived = list(self._arrived.values())
            self._arrived.clear()
            self._condition.notify_all()
        for sock in arrived:
            sock.close()
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()

    def _handshake(self, sock: socket.socket) -> None:
        try:
            session = answer_reverse(sock, self._secret_of, REVERSE_WAIT)
        except (OSError, ReverseHandshakeError) as error:
            logger.debug("a reverse connection refused: %s", error)
            sock.close()
            return
        finally:
            self._handshakes.release()
        with self._condition:
            if self._closed or session not in self._secrets:
                sock.close()  # its waiter gave up meanwhile
                return
            del self._secrets[session]
            self._arrived[session] = sock
            self._condition.notify_all()

    def _secret_of(self, session: bytes) -> bytes | None:
        """The secret of `session`, waiting a little for it: the tracker tells the peer to
        dial at the same time as it answers our Connect, so the dial may come first.
        """
        with self._condition:
            self._condition.wait_for(
                lambda: session in self._secrets or self._closed, timeout=REVERSE_WAIT
            )
            return self._secrets.get(session)
