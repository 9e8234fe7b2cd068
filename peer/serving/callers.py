"""Who a call really comes from: the downloader behind a connection this peer spliced into its
own server, else the address gRPC reports.

A connection this peer dialled out (a reverse dial, or one to a relay) reaches its gRPC server
through a loopback connection that the splicing code made; gRPC then reports 127.0.0.1 and
that connection's port. The splicing code records that port's address here, with the
downloader's address, so that the per-address upload limits count the downloader, not
127.0.0.1.
"""

import threading

from napshare.common.address import caller_address, caller_ip


class Callers:
    """Spliced connections to this peer's server (`ip:port` of their server-side client end)
    and the downloader each carries; thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spliced: dict[str, str] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._spliced)

    def record(self, local: str, downloader: str) -> None:
        """The connection from `local` (`ip:port`) carries `downloader`'s calls."""
        with self._lock:
            self._spliced[local] = downloader

    def forget(self, local: str) -> None:
        """The connection from `local` ended."""
        with self._lock:
            self._spliced.pop(local, None)

    def address(self, peer: str) -> str:
        """The IP address to count a call from gRPC's `context.peer()` against: the
        downloader's for a spliced connection, else the caller's IP (or `peer` itself).
        """
        connection = caller_address(peer)
        if connection is not None:
            with self._lock:
                downloader = self._spliced.get(connection)
            if downloader is not None:
                return downloader
        return caller_ip(peer) or peer
