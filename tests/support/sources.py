"""Calls from an address the test chooses: a TCP proxy whose connections leave from it.

A gRPC client cannot pick its source address, yet per-address limits count by it. On loopback
every address of 127.0.0.0/8 is this machine's own, so a proxy on 127.0.0.1 that dials the
real server from, say, 127.0.0.5 (bind before connect) makes that server see the calls come
from 127.0.0.5. The bytes go through in the kernel (common.splice), untouched: TLS runs end to
end through it.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from napshare.common.splice import Splice


class SourceProxy:
    """Listens on 127.0.0.1 (a free port); each connection reaches `target` (host, port)
    from `source`, an address of this machine.
    """

    def __init__(self, target: tuple[str, int], source: str) -> None:
        self.target = target
        self.source = source
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._splices: list[Splice] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name="source-proxy", daemon=True).start()

    @property
    def address(self) -> str:
        """Where to dial: `127.0.0.1:port`."""
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stop accepting and end every connection."""
        with self._lock:
            self._closed = True
            splices = list(self._splices)
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for splice in splices:
            splice.stop()

    def __enter__(self) -> SourceProxy:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                upstream.bind((self.source, 0))
                upstream.connect(self.target)
            except OSError:
                client.close()
                continue
            splice = Splice(client, upstream, name="source-proxy")
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._splices = [s for s in self._splices if not s.done]
                self._splices.append(splice)
            splice.start()
