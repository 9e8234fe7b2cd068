"""Join's address check: the tracker connects back to the claimed address, bounded and shared.

A hostile client may claim any address, a tarpit that never finishes a TLS handshake among
them. So: at most MAX_CHECKS dial at once, each given HANDSHAKE_TIMEOUT to connect and finish
its TLS handshake and CHECK_TIMEOUT in all; the Joins of one network (an IPv4 /24 or an IPv6
/64, whatever their addresses within it: common.addresskey) hold at most
MAX_CHECKS_PER_SOURCE checks at a time, so no client, however many addresses it has, keeps
every slot; and a check that ran out of time (the tarpit's answer), or found a TLS server
with another certificate there (another peer's address: the Join is refused), is remembered
for RESULT_SECONDS for that address and certificate, so Joins that claim it again cost no
dial (and those that come while one is being checked wait for it rather than dial again).
Other answers are not kept: a peer that opens its port is reached at its next Join.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from napshare.common.address import format_address, parse_address
from napshare.common.addresskey import AddressKey
from napshare.common.identity import certificate_pem
from napshare.common.tls import fetch_certificate, pinned_channel
from napshare.tracker.errors import ChecksBusyError, ServedByAnotherError

logger = logging.getLogger(__name__)

# Connect-back checks running at once: each holds one of the tracker's RPC threads for up to
# CHECK_TIMEOUT, so a flood of Joins towards silent addresses leaves the others free.
MAX_CHECKS = 8
CHECK_TIMEOUT = 3.0  # seconds one check may take in all
HANDSHAKE_TIMEOUT = 1.0  # of those, seconds to connect and finish the TLS handshake
MAX_CHECKS_PER_SOURCE = 2  # checks running for the Joins of one network
SOURCE_IPV4_PREFIX = 24  # an IPv4 network whose Joins share MAX_CHECKS_PER_SOURCE
RESULT_SECONDS = 30.0  # how long a check that timed out, or found another peer, is remembered
MAX_RESULTS = 65_536  # such checks remembered; the oldest go first


class _Outcome(enum.Enum):
    """What a check found at an address."""

    REACHED = "reached"  # the peer of the certificate answers its health check there
    NOT_REACHED = "not reached"  # refused, or no TLS, or not serving: said at once
    TIMED_OUT = "timed out"  # no answer within the time: what a tarpit costs
    ANOTHER = "another"  # a TLS server there shows another certificate: another peer's


_REMEMBERED = (_Outcome.TIMED_OUT, _Outcome.ANOTHER)


@dataclass
class _Running:
    """A check in progress, which later Joins for the same address and certificate await."""

    done: threading.Event = field(default_factory=threading.Event)
    outcome: _Outcome = _Outcome.TIMED_OUT


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
        # Outcomes kept for a while (until when), by address and certificate digest.
        self._remembered: OrderedDict[tuple[str, bytes], tuple[float, _Outcome]] = OrderedDict()
        self._running: dict[tuple[str, bytes], _Running] = {}

    def reachable(self, target: str, certificate: bytes, source: str = "") -> bool:
        """Whether `target` (`host:port`) answers a health check over TLS trusting only
        `certificate` (in plain text: answers at all).

        ServedByAnotherError when a TLS server there shows another certificate: the address
        is another peer's. A check of the same address and certificate that ran out of time,
        or found another certificate, in the last RESULT_SECONDS answers the same at once.
        Else ChecksBusyError at once when `source` (the caller's IP address) and its network
        already hold their share of the checks, or every check is running.
        """
        wanted = (target, hashlib.sha256(certificate).digest())
        source_key = self._key(source)
        with self._lock:
            known = self._remembered_locked(wanted)
            if known is not None:
                return _answer(target, known)
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
                ongoing = self._running[wanted] = _Running()
                mine = True
            else:
                mine = False
        try:
            if not mine:
                ongoing.done.wait(self._timeout)
                return _answer(target, ongoing.outcome)
            try:
                ongoing.outcome = self._check(target, certificate)
            finally:
                with self._lock:
                    del self._running[wanted]
                    if ongoing.outcome in _REMEMBERED:
                        self._remember_locked(wanted, ongoing.outcome)
                ongoing.done.set()
                self._slots.release()
            return _answer(target, ongoing.outcome)
        finally:
            with self._lock:
                self._release_source_locked(source_key)

    def _remembered_locked(self, wanted: tuple[str, bytes]) -> _Outcome | None:
        found = self._remembered.get(wanted)
        if found is None:
            return None
        until, outcome = found
        if self._clock() >= until:
            del self._remembered[wanted]
            return None
        return outcome

    def _remember_locked(self, wanted: tuple[str, bytes], outcome: _Outcome) -> None:
        self._remembered[wanted] = (self._clock() + self._result_seconds, outcome)
        self._remembered.move_to_end(wanted)
        while len(self._remembered) > MAX_RESULTS:
            self._remembered.popitem(last=False)

    def _release_source_locked(self, source_key: str) -> None:
        left = self._by_source[source_key] - 1
        if left:
            self._by_source[source_key] = left
        else:
            del self._by_source[source_key]

    def _check(self, target: str, certificate: bytes) -> _Outcome:
        """What checking `target` for the peer of `certificate` finds."""
        started = time.monotonic()
        host, port = parse_address(target)
        outcome = self._handshake(host, port, certificate)
        if outcome is not None:
            return outcome
        if self._tls:
            channel = pinned_channel(target, certificate_pem(certificate))
        else:
            channel = grpc.insecure_channel(target)
        left = max(0.1, self._timeout - (time.monotonic() - started))
        with channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=left
                )
            except grpc.RpcError as error:
                code = error.code() if isinstance(error, grpc.Call) else None
                logger.info("%s is not reachable as claimed: %s", target, code)
                if code is grpc.StatusCode.DEADLINE_EXCEEDED:
                    return _Outcome.TIMED_OUT
                return _Outcome.NOT_REACHED
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            return _Outcome.NOT_REACHED
        return _Outcome.REACHED

    def _handshake(self, host: str, port: int, certificate: bytes) -> _Outcome | None:
        """Connect, and over TLS finish a handshake, within the handshake timeout: None when
        that went well (and the server showed `certificate`), else what it found.
        """
        target = format_address(host, port)
        try:
            if self._tls:
                shown = fetch_certificate(host, port, self._handshake_timeout)
            else:
                socket.create_connection((host, port), timeout=self._handshake_timeout).close()
        except TimeoutError:
            logger.info(
                "%s is not reachable as claimed: no handshake within %g s",
                target,
                self._handshake_timeout,
            )
            return _Outcome.TIMED_OUT
        except OSError as error:  # refused, unreachable, or no TLS there (NoTlsError)
            logger.info("%s is not reachable as claimed: %s", target, error)
            return _Outcome.NOT_REACHED
        if self._tls and shown != certificate:
            logger.info("%s answers with another certificate than the Join's", target)
            return _Outcome.ANOTHER
        return None


def _answer(target: str, outcome: _Outcome) -> bool:
    """What reachable() answers for `outcome`: whether the peer was reached, or the error."""
    if outcome is _Outcome.ANOTHER:
        raise ServedByAnotherError(
            f"a TLS server at {target} shows another certificate than this Join's: that "
            "address is another peer's. Announce the address and port this peer serves at"
        )
    return outcome is _Outcome.REACHED
