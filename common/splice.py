"""Joins two TCP connections: each one's bytes go to the other, in the kernel (os.splice).

The relay joins the two sides of a session this way, and a peer joins a connection it dialled
out (a reverse connection, or one to a relay) with a connection to its own gRPC server, which
cannot adopt a socket it did not accept (grpc/grpc#23760). The bytes are never read into
Python: a pipe per direction carries them from one socket to the other. Caps: bytes each way,
seconds in all, and a shared rate (common.ratelimit.TokenBucket).
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from napshare.common.ratelimit import TokenBucket

logger = logging.getLogger(__name__)

CHUNK = 256 * 1024  # bytes moved per splice call (a pipe holds this much once enlarged)
_F_SETPIPE_SZ = 1031  # fcntl's F_SETPIPE_SZ on Linux
PACE_TICK = 0.05  # seconds: the longest a paced direction sleeps before looking at the end


class SpliceEnd(enum.Enum):
    """Why a splice ended."""

    CLOSED = "closed"  # both sides finished (each closed its direction), or one reset
    MAX_BYTES = "max_bytes"  # a direction reached its byte cap
    MAX_SECONDS = "max_seconds"  # the time cap passed
    STOPPED = "stopped"  # stop() was called


@dataclass(frozen=True)
class SpliceCaps:
    """What one splice may carry: bytes each way and seconds in all (0: no cap), and a rate
    shared with other splices (None: no cap).
    """

    max_bytes: int = 0
    max_seconds: float = 0
    rate: TokenBucket | None = None


class Splice:
    """Two connections joined until both are done, a cap is reached or stop() is called.

    Each direction runs in a thread of its own; a direction whose source ends shuts the other
    socket's sending side, so a half-close passes through. When the splice ends, both sockets
    are closed and `on_end(splice)` is called once, from one of its threads.
    """

    def __init__(
        self,
        a: socket.socket,
        b: socket.socket,
        caps: SpliceCaps = SpliceCaps(),
        on_end: Callable[[Splice], None] | None = None,
        name: str = "splice",
    ) -> None:
        self.a, self.b = a, b
        self.caps = caps
        self.name = name
        self.sent = [0, 0]  # bytes a→b, b→a
        self.end: SpliceEnd | None = None
        self.started = 0.0
        self._on_end = on_end
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._running = 2
        self._threads: list[threading.Thread] = []
        self._timer: threading.Timer | None = None

    def start(self) -> Splice:
        """Start both directions (and the time cap); returns self."""
        for sock in (self.a, self.b):
            sock.setblocking(True)
        self.started = time.monotonic()
        for index, (source, sink) in enumerate(((self.a, self.b), (self.b, self.a))):
            thread = threading.Thread(
                target=self._direction,
                args=(index, source, sink),
                name=f"{self.name}-{'ab'[index]}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()
        if self.caps.max_seconds > 0:
            self._timer = threading.Timer(
                self.caps.max_seconds, self._finish, args=(SpliceEnd.MAX_SECONDS,)
            )
            self._timer.daemon = True
            self._timer.start()
        return self

    def stop(self) -> None:
        """End the splice now (both sockets close)."""
        self._finish(SpliceEnd.STOPPED)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the splice ended; whether it did within `timeout`."""
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        """Whether the splice ended."""
        return self._done.is_set()

    def _direction(self, index: int, source: socket.socket, sink: socket.socket) -> None:
        cap = self.caps.max_bytes
        rate = self.caps.rate
        ended = SpliceEnd.CLOSED
        try:
            read_fd, write_fd = os.pipe()
        except OSError as error:  # out of file descriptors: this splice cannot run
            logger.warning("%s: no pipe: %s", self.name, error)
            self._finish(SpliceEnd.CLOSED)
            return
        try:
            _enlarge(write_fd)
            while not self._done.is_set():
                want = CHUNK if not cap else min(CHUNK, cap - self.sent[index])
                if want <= 0:
                    ended = SpliceEnd.MAX_BYTES
                    break
                moved = os.splice(source.fileno(), write_fd, want)
                if moved == 0:
                    _shut(sink, socket.SHUT_WR)  # pass the half-close on
                    break
                if rate is not None and rate.limited:
                    self._pace(rate.reserve(moved))
                while moved:
                    written = os.splice(read_fd, sink.fileno(), moved)
                    moved -= written
                    self.sent[index] += written
        except OSError as error:
            if error.errno not in (errno.EBADF, errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN):
                logger.debug("%s: %s", self.name, error)
            self._finish(SpliceEnd.CLOSED)
        finally:
            os.close(read_fd)
            os.close(write_fd)
        if ended is not SpliceEnd.CLOSED:
            self._finish(ended)
        with self._lock:
            self._running -= 1
            last = self._running == 0
        if last:
            self._finish(SpliceEnd.CLOSED)

    def _pace(self, delay: float) -> None:
        deadline = time.monotonic() + delay
        while not self._done.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._done.wait(min(left, PACE_TICK))

    def _finish(self, reason: SpliceEnd) -> None:
        with self._lock:
            if self.end is not None:
                return
            self.end = reason
        for sock in (self.a, self.b):
            _shut(sock, socket.SHUT_RDWR)  # wakes a direction blocked in splice
            sock.close()
        if self._timer is not None:
            self._timer.cancel()
        self._done.set()
        logger.debug(
            "%s ended (%s) after %.1f s: %d and %d bytes",
            self.name,
            reason.value,
            time.monotonic() - self.started,
            *self.sent,
        )
        if self._on_end is not None:
            self._on_end(self)


def _enlarge(pipe_fd: int) -> None:
    """Let the pipe hold a whole chunk, so one splice call moves CHUNK bytes."""
    with contextlib.suppress(OSError):  # the default 64 KiB pipe works too, in more calls
        fcntl.fcntl(pipe_fd, _F_SETPIPE_SZ, CHUNK)


def _shut(sock: socket.socket, how: int) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(how)
