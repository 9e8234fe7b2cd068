"""Connections per address to a gRPC server of this process: counted, the excess closed, and
an address at its cap kept out in the kernel until it is under it again.

gRPC Python has no hook at accept, so this watches from beside it: every so often it lists
this process's sockets connected to the server's port (by their file descriptors), counts
them per address key (common.addresskey: an IPv6 /64 is one address), shuts down the newest
beyond `per_address` of an address (gRPC then closes them), and gives the server's listening
sockets a filter (common.bpf) that drops the SYNs of every address at its cap, so that a
flood of connections from one address (half-open TLS handshakes, say) cannot take the file
descriptors everyone else needs; once under it, the address may connect again. A connection
this process made to its own server (splice_source) is never counted nor kept out.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from napshare.common import bpf
from napshare.common.addresskey import AddressKey

logger = logging.getLogger(__name__)

MIN_INTERVAL = 0.25  # seconds between two looks at the connections, at least
MAX_INTERVAL = 5.0  # ... and at most
LOAD = 0.05  # the share of one core the looks may take: the interval grows with their cost
HOLD_SECONDS = 5.0  # an address at its cap stays kept out at least this long
_FD_DIR = "/proc/self/fd"


@dataclass(frozen=True)
class _Connection:
    fd: int
    inode: int  # grows with each new socket: the newest have the largest
    key: str


class ConnectionCap:
    """Keeps the connections of each address to the server listening on `port` (in this
    process) at most `per_address`. `address_key` says what one address is; `address_of`
    may name who is behind a connection (peer, a spliced one's downloader), `skip` which
    connections are this process's own.
    """

    def __init__(
        self,
        port: int,
        per_address: int,
        address_key: AddressKey | None = None,
        *,
        skip: Callable[[str, int], bool] = lambda _ip, _port: False,
        min_interval: float = MIN_INTERVAL,
    ) -> None:
        if per_address < 1:
            raise ValueError(f"connections per address must be at least 1, not {per_address}")
        self.port = port
        self.per_address = per_address
        self._key = address_key or AddressKey()
        self._skip = skip
        self._min_interval = min_interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._held: dict[str, float] = {}  # kept-out address -> when it may be let in
        self._filtered: frozenset[str] = frozenset()
        self._listeners: list[int] = []
        self.closed = 0  # connections shut down for being past the cap
        self._thread = threading.Thread(target=self._run, name="connection-cap", daemon=True)

    def start(self) -> ConnectionCap:
        """Start watching (in a thread of its own); returns self."""
        # A socket object made for a descriptor changes nothing of it but with a default
        # timeout (which would make it non-blocking): napshare sets none.
        assert socket.getdefaulttimeout() is None, "a default socket timeout is set"
        self._listeners = _listening_fds(self.port)
        if not self._listeners:
            logger.warning("no listening socket on port %d to cap connections of", self.port)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching, and let every address in again (if the server still listens)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._filtered:
            self._filter(frozenset())

    def counts(self) -> dict[str, int]:
        """Connections per address key at the last look."""
        with self._lock:
            return dict(self._counts)

    def kept_out(self) -> frozenset[str]:
        """The address keys kept out now."""
        with self._lock:
            return self._filtered

    def look(self) -> None:
        """Count the connections, close those past the cap, and keep out or let in."""
        connections = self._connections()
        by_key: dict[str, list[_Connection]] = defaultdict(list)
        for connection in connections:
            by_key[connection.key].append(connection)
        now = time.monotonic()
        for key, mine in by_key.items():
            if len(mine) >= self.per_address:
                self._held[key] = now + HOLD_SECONDS
            if len(mine) > self.per_address:
                mine.sort(key=lambda c: c.inode)
                self._close(key, mine[self.per_address :])
        self._held = {key: until for key, until in self._held.items() if until > now}
        kept_out = frozenset(
            sorted(self._held, key=lambda k: -len(by_key.get(k, ())))[: bpf.MAX_NETWORKS]
        )
        with self._lock:
            self._counts = {key: len(mine) for key, mine in by_key.items()}
        if kept_out != self._filtered:
            self._filter(kept_out)

    def _run(self) -> None:
        interval = self._min_interval
        while not self._stop.wait(interval):
            started = time.monotonic()
            try:
                self.look()
            except Exception:
                logger.exception("counting connections failed; trying again")
            cost = time.monotonic() - started
            interval = min(MAX_INTERVAL, max(self._min_interval, cost / LOAD))

    def _connections(self) -> list[_Connection]:
        """This process's sockets connected to the server's port, with their address keys."""
        found: list[_Connection] = []
        for name in os.listdir(_FD_DIR):
            fd = int(name)
            try:
                link = os.readlink(f"{_FD_DIR}/{name}")
            except OSError:
                continue
            if not link.startswith("socket:["):
                continue
            peer = _peer_of(fd, self.port)
            if peer is None or self._skip(*peer):
                continue
            found.append(_Connection(fd, int(link[8:-1]), self._key(peer[0])))
        return found

    def _close(self, key: str, extra: Iterable[_Connection]) -> None:
        count = 0
        for connection in extra:
            # The fd may have been closed and reused since: shut it only if it still is a
            # connection of this address to this port.
            peer = _peer_of(connection.fd, self.port)
            if peer is None or self._key(peer[0]) != key:
                continue
            with contextlib.suppress(OSError), _borrowed(connection.fd) as sock:
                sock.shutdown(socket.SHUT_RDWR)
                count += 1
        if count:
            self.closed += count
            logger.warning(
                "closed %d connections of %s past the cap of %d per address",
                count,
                key,
                self.per_address,
            )

    def _filter(self, kept_out: frozenset[str]) -> None:
        networks = [ipaddress.ip_network(key, strict=False) for key in kept_out if _is_ip(key)]
        for fd in self._listeners:
            if not _listens_on(fd, self.port):
                continue  # the server closed it (it stopped); the number may be another's now
            try:
                bpf.attach(fd, networks)
            except OSError as error:
                logger.warning(
                    "cannot filter the listening socket of port %d: %s", self.port, error
                )
        with self._lock:
            added = kept_out - self._filtered
            self._filtered = kept_out
        for key in sorted(added):
            logger.warning(
                "%s holds %d connections, the most one address may: it may open no more for now",
                key,
                self.per_address,
            )


def _is_ip(key: str) -> bool:
    try:
        ipaddress.ip_network(key, strict=False)
    except ValueError:
        return False
    return True


@contextlib.contextmanager
def _borrowed(fd: int) -> Iterator[socket.socket]:
    """A socket object for `fd`, which stays open (and someone else's) afterwards."""
    sock = socket.socket(fileno=fd)
    try:
        yield sock
    finally:
        sock.detach()


def _peer_of(fd: int, port: int) -> tuple[str, int] | None:
    """The (ip, port) of the other end of socket `fd` if it is a TCP connection to `port`."""
    try:
        with _borrowed(fd) as sock:
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                return None
            if sock.type != socket.SOCK_STREAM or sock.getsockname()[1] != port:
                return None
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                return None
            peer = sock.getpeername()
    except OSError:
        return None
    return str(peer[0]), int(peer[1])


def _listening_fds(port: int) -> list[int]:
    """The file descriptors of this process's sockets listening on TCP `port`."""
    return [fd for fd in map(int, os.listdir(_FD_DIR)) if _listens_on(fd, port)]


def _listens_on(fd: int, port: int) -> bool:
    """Whether `fd` is a socket listening on TCP `port`."""
    try:
        with _borrowed(fd) as sock:
            return bool(
                sock.family in (socket.AF_INET, socket.AF_INET6)
                and sock.type == socket.SOCK_STREAM
                and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                and sock.getsockname()[1] == port
            )
    except OSError:
        return False
