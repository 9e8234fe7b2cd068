"""Join's address check: the tracker connects back to the claimed address, bounded and shared.

A hostile client may claim any address, a tarpit that never finishes a TLS handshake among
them. So: at most MAX_CHECKS dial at once, each given HANDSHAKE_TIMEOUT to connect and finish
its TLS handshake and CHECK_TIMEOUT in all; the Joins of one network (an IPv4 /24 or an IPv6
/64, whatever their addresses within it: common.addresskey) hold at most
MAX_CHECKS_PER_SOURCE checks at a time, so no client, however many addresses it has, keeps
every slot; and the answer for an address and certificate is kept for RESULT_SECONDS, so
Joins that claim it again cost no dial (those that come while it is being checked wait for
that check rather than dial again).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from napshare.common.addresskey import AddressKey
from napshare.common.identity import certificate_pem
from napshare.common.tls import pinned_channel
from napshare.tracker.errors import ChecksBusyError

logger = logging.getLogger(__name__)

# Connect-back checks running at once: each holds one of the tracker's RPC threads for up to
# CHECK_TIMEOUT, so a flood of Joins towards silent addresses leaves the others free.
MAX_CHECKS = 8
CHECK_TIMEOUT = 3.0  # seconds one check may take in all
HANDSHAKE_TIMEOUT = 1.0  # of those, seconds to connect and finish the TLS handshake
MAX_CHECKS_PER_SOURCE = 2  # checks running for the Joins of one network
SOURCE_IPV4_PREFIX = 24  # an IPv4 network whose Joins share MAX_CHECKS_PER_SOURCE
RESULT_SECONDS = 30.0  # how long the answer for one address and certificate is kept
MAX_RESULTS = 65_536  # answers kept; the oldest go first


@dataclass
class _Running:
    """A check in progress, which later Joins for the same address and certificate await."""

    done: threading.Event = field(default_factory=threading.Event)
    reachable: bool = False


class AddressCheck:
    """Whether the peer answering at an address holds a certificate (TLS pinned to it)."""

    def __init__(
        self,
        *,
        tls: bool,
        timeout: float = CHECK_TIMEOUT,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        max_checks: int = MAX_CHECKS,
        max_per_source: int = MAX_CHECKS_PER_SOURCE,
        address_key: AddressKey | None = None,
        result_seconds: float = RESULT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tls = tls
        self._timeout = timeout
        self._handshake_timeout = min(handshake_timeout, timeout)
        self._max_checks = max_checks
        self._max_per_source = max_per_source
        self._key = (address_key or AddressKey()).with_ipv4_prefix(SOURCE_IPV4_PREFIX)
        self._result_seconds = result_seconds
        self._clock = clock
        self._slots = threading.BoundedSemaphore(max_checks)
        self._lock = threading.Lock()
        self._by_source: dict[str, int] = {}
        self._results: OrderedDict[tuple[str, bytes], tuple[float, bool]] = OrderedDict()
        self._running: dict[tuple[str, bytes], _Running] = {}

    def reachable(self, target: str, certificate: bytes, source: str = "") -> bool:
        """Whether `target` (`host:port`) answers a health check over TLS trusting only
        `certificate` (in plain text: answers at all).

        An answer from the last RESULT_SECONDS is given again at once. Else ChecksBusyError
        at once when `source` (the caller's IP address) and its network already hold their
        share of the checks, or every check is running.
        """
        wanted = (target, hashlib.sha256(certificate).digest())
        source_key = self._key(source)
        with self._lock:
            known = self._known_locked(wanted)
            if known is not None:
                return known
            running = self._by_source.get(source_key, 0)
            if running >= self._max_per_source:
                raise ChecksBusyError(
                    f"the tracker is checking {running} other addresses for Joins from "
                    f"{source_key}; join again in {self._timeout:g} s",
                    retry_delay=self._timeout,
                )
            self._by_source[source_key] = running + 1
            ongoing = self._running.get(wanted)
            if ongoing is None:
                if not self._slots.acquire(blocking=False):
                    self._release_source_locked(source_key)
                    raise ChecksBusyError(
                        f"the tracker is checking {self._max_checks} other addresses; join "
                        f"again in {self._timeout:g} s",
                        retry_delay=self._timeout,
                    )
                mine = self._running[wanted] = _Running()
        try:
            if ongoing is not None:
                ongoing.done.wait(self._timeout)
                return ongoing.reachable
            try:
                mine.reachable = self._check(target, certificate)
            finally:
                with self._lock:
                    del self._running[wanted]
                    self._remember_locked(wanted, mine.reachable)
                mine.done.set()
                self._slots.release()
            return mine.reachable
        finally:
            with self._lock:
                self._release_source_locked(source_key)

    def _known_locked(self, wanted: tuple[str, bytes]) -> bool | None:
        found = self._results.get(wanted)
        if found is None:
            return None
        until, reachable = found
        if self._clock() >= until:
            del self._results[wanted]
            return None
        return reachable

    def _remember_locked(self, wanted: tuple[str, bytes], reachable: bool) -> None:
        self._results[wanted] = (self._clock() + self._result_seconds, reachable)
        self._results.move_to_end(wanted)
        while len(self._results) > MAX_RESULTS:
            self._results.popitem(last=False)

    def _release_source_locked(self, source_key: str) -> None:
        left = self._by_source[source_key] - 1
        if left:
            self._by_source[source_key] = left
        else:
            del self._by_source[source_key]

    def _check(self, target: str, certificate: bytes) -> bool:
        started = time.monotonic()
        if self._tls:
            channel = pinned_channel(target, certificate_pem(certificate))
        else:
            channel = grpc.insecure_channel(target)
        with channel:
            if not self._connected(channel):
                logger.info(
                    "%s is not reachable as claimed: no handshake within %g s",
                    target,
                    self._handshake_timeout,
                )
                return False
            left = max(0.1, self._timeout - (time.monotonic() - started))
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=left
                )
            except grpc.RpcError as error:
                code = error.code() if isinstance(error, grpc.Call) else None
                logger.info("%s is not reachable as claimed: %s", target, code)
                return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def _connected(self, channel: grpc.Channel) -> bool:
        """Whether `channel` connects, its TLS handshake done, within the handshake timeout;
        False at its first failure (another certificate, a refusal) or when the time is up.
        """
        settled = threading.Event()
        states: list[grpc.ChannelConnectivity] = []
        ends = (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.TRANSIENT_FAILURE)

        def changed(state: grpc.ChannelConnectivity) -> None:
            if state in ends:
                states.append(state)
                settled.set()

        channel.subscribe(changed, try_to_connect=True)
        try:
            settled.wait(self._handshake_timeout)
        finally:
            channel.unsubscribe(changed)
        return bool(states) and states[0] is grpc.ChannelConnectivity.READY
