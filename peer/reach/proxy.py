"""The loopback proxy of one peer's channels: gRPC dials it, and each connection it accepts
is joined in the kernel (common.splice) to a connection to the peer that gRPC could not have
dialled itself (a reverse or relayed one; grpc/grpc#23760).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

from napshare.common.address import format_address
from napshare.common.splice import Splice
from napshare.peer.reach.accepting import accept_bounded

MAX_PROXIED = 16  # connections one peer's proxy carries at once; more are closed


class LoopbackProxy:
    """A loopback listener for one peer's channels: each connection it accepts is spliced to
    a connection to the peer (the first to `first`, the others to what `dial()` returns).
    """

    def __init__(
        self, peer: str, first: socket.socket, dial: Callable[[], socket.socket | None]
    ) -> None:
        self._peer = peer
        self._first: socket.socket | None = first
        self._dial = dial
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.target = format_address("127.0.0.1", self._socket.getsockname()[1])
        self._lock = threading.Lock()
        self._splices: set[Splice] = set()
        self._carrying = threading.BoundedSemaphore(MAX_PROXIED)
        self._closed = False
        threading.Thread(
            target=accept_bounded,
            args=(self._socket, self._carrying, self._carry, f"proxy-{peer}"),
            name=f"proxy-{peer}",
            daemon=True,
        ).start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            splices = list(self._splices)
            first, self._first = self._first, None
        if first is not None:
            first.close()
        for splice in splices:
            splice.stop()
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()

    def _carry(self, accepted: socket.socket) -> None:
        with self._lock:
            remote, self._first = self._first, None
        if remote is None:
            remote = self._dial()
        if remote is None:
            accepted.close()
            self._carrying.release()
            return
        for sock in (accepted, remote):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def ended(splice: Splice) -> None:
            with self._lock:
                self._splices.discard(splice)
            self._carrying.release()

        splice = Splice(accepted, remote, on_end=ended, name=f"proxy-{self._peer}")
        with self._lock:
            closed = self._closed
            if not closed:
                self._splices.add(splice)
        if closed:
            accepted.close()
            remote.close()
            self._carrying.release()
            return
        splice.start()
