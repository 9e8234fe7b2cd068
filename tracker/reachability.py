"""Join's address check: the tracker connects back to the claimed address, bounded in number.

A hostile client could claim any address; at most MAX_CHECKS dial at once, each for at most
CHECK_TIMEOUT seconds, so the tracker never dials more than that many addresses at a time, and
at most MAX_CHECKS_PER_SOURCE of them for Joins from one IP address, so one client cannot keep
every slot busy and starve the Joins of others.
"""

import logging
import threading

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from napshare.common.address import format_address
from napshare.common.identity import certificate_pem
from napshare.common.tls import pinned_channel
from napshare.tracker.errors import ChecksBusyError

logger = logging.getLogger(__name__)

# Connect-back checks running at once: each holds one of the tracker's 16 RPC threads for up
# to CHECK_TIMEOUT, so a flood of Joins towards silent addresses leaves the others free.
MAX_CHECKS = 8
CHECK_TIMEOUT = 3.0  # seconds one check may take
MAX_CHECKS_PER_SOURCE = 2


class AddressCheck:
    """Whether the peer answering at an address holds a certificate (TLS pinned to it)."""

    def __init__(
        self,
        *,
        tls: bool,
        timeout: float = CHECK_TIMEOUT,
        max_checks: int = MAX_CHECKS,
        max_per_source: int = MAX_CHECKS_PER_SOURCE,
    ) -> None:
        self._tls = tls
        self._timeout = timeout
        self._max_checks = max_checks
        self._max_per_source = max_per_source
        self._slots = threading.BoundedSemaphore(max_checks)
        self._lock = threading.Lock()
        self._by_source: dict[str, int] = {}

    def reachable(self, host: str, port: int, certificate: bytes, source: str = "") -> bool:
        """Whether host:port answers a health check over TLS trusting only `certificate`
        (in plain text: answers at all). ChecksBusyError at once if every slot is taken, or
        `source` (the caller's IP address) already has its share of them.
        """
        with self._lock:
            running = self._by_source.get(source, 0)
            if running >= self._max_per_source:
                raise ChecksBusyError(
                    f"the tracker is checking {running} other addresses for Joins from "
                    f"{source}; join again in {self._timeout:g} s",
                    retry_delay=self._timeout,
                )
            if not self._slots.acquire(blocking=False):
                raise ChecksBusyError(
                    f"the tracker is checking {self._max_checks} other addresses; join again "
                    f"in {self._timeout:g} s",
                    retry_delay=self._timeout,
                )
            self._by_source[source] = running + 1
        try:
            return self._check(host, port, certificate)
        finally:
            with self._lock:
                left = self._by_source[source] - 1
                if left:
                    self._by_source[source] = left
                else:
                    del self._by_source[source]
            self._slots.release()

    def _check(self, host: str, port: int, certificate: bytes) -> bool:
        target = format_address(host, port)
        try:
            if self._tls:
                channel = pinned_channel(target, certificate_pem(certificate))
            else:
                channel = grpc.insecure_channel(target)
            with channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=self._timeout
                )
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else None
            logger.info("%s is not reachable as claimed: %s", target, code)
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
