"""create_relay: a started relay that pairs ticket holders and splices their connections.

One thread reads every connection's hello (non-blocking, each with its deadline), checks the
ticket and pairs the sides; a paired session is handed to common.splice, which moves its bytes
in the kernel: the relay never reads a relayed byte into Python, and what the peers send is
their own TLS anyway. Connections not yet paired, sessions and their bytes, seconds and rate
are all capped (relay.caps).
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import logging
import math
import resource
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from napshare.common.addresskey import AddressKey
from napshare.common.metrics import Metrics
from napshare.common.ratelimit import TokenBucket
from napshare.common.relay_wire import (
    HelloError,
    HelloReader,
    TicketError,
    answer_bytes,
    verify_ticket,
)
from napshare.common.serving import port_in_use
from napshare.common.splice import Splice, SpliceCaps, SpliceEnd
from napshare.relay.caps import RETRY_AFTER_SECONDS, RelayCaps, session_rate
from napshare.relay.sessions import Session, Sessions
from napshare.v1 import relay_pb2

logger = logging.getLogger(__name__)

BACKLOG = 512  # connections the kernel queues before the loop accepts them
ACCEPTS_PER_TURN = 64  # connections accepted at once, so the others' hellos are read too
STOP_SECONDS = 5.0  # how long stop() waits for the loop and the splices to end
FDS_PER_SESSION = 6  # a paired session's two sockets and its two pipes' four ends
FDS_SPARE = 64  # the listener, the wake-up pair, the selector, logs, metrics
ACCEPT_PAUSE = 0.1  # seconds the loop stops accepting when it has no file descriptor left
# accept() errors that say the process or the kernel is out of something for now
_OUT_OF = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)

# Why a connection ended before it was paired: the `reason` label of the refused counter.
REFUSED = {
    relay_pb2.RELAY_ANSWER_CODE_TICKET_INVALID: "ticket_invalid",
    relay_pb2.RELAY_ANSWER_CODE_TICKET_EXPIRED: "ticket_expired",
    relay_pb2.RELAY_ANSWER_CODE_FULL: "full",
    relay_pb2.RELAY_ANSWER_CODE_TIMEOUT: "timeout",
}
HELLO_MALFORMED = "hello_malformed"  # not the magic, or a ticket over the largest
HELLO_TIMEOUT = "hello_timeout"  # the hello did not arrive whole in time
LEFT = "left"  # the side closed its connection before it was paired


@dataclass(frozen=True)
class RelayStats:
    """What a relay did: sessions paired now and waiting for their other side, connections
    not paired yet, how sessions ended, why connections were refused, and the bytes relayed
    (both ways, of ended and running sessions).
    """

    paired: int
    unpaired: int
    waiting: int
    ended: dict[str, int]
    refused: dict[str, int]
    bytes: int


@dataclass(eq=False)
class _Arrival:
    """A connection not paired yet: reading its hello, then waiting for its other side."""

    sock: socket.socket
    address: str
    deadline: float
    hello: HelloReader = field(default_factory=HelloReader)
    session: Session[_Arrival] | None = None
    watched: bool = True  # registered with the selector


class Relay:
    """A running relay; stop() ends it and every session it carries."""

    def __init__(
        self,
        listener: socket.socket,
        trusted: Sequence[bytes],
        caps: RelayCaps,
        clock: Callable[[], float],
        address_key: AddressKey,
    ) -> None:
        self.caps = caps
        self._address_key = address_key
        self._listener = listener
        self._port: int = listener.getsockname()[1]
        self._trusted = list(trusted)
        self._clock = clock
        self._sessions: Sessions[_Arrival] = Sessions(caps)
        self._shared_rate = TokenBucket(caps.rate) if caps.rate else None
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = socket.socketpair()
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # guards the splices and the counters below
        self._splices: set[Splice] = set()
        self._ended: Counter[str] = Counter()
        self._refused: Counter[str] = Counter()
        self._bytes_ended = 0
        self._arrivals: set[_Arrival] = set()  # the loop thread's alone
        self._per_address: Counter[str] = Counter()
        self._deadlines: list[tuple[float, int, _Arrival]] = []
        self._order = itertools.count()
        self._accepting_again: float | None = None  # when a paused accept resumes
        self._thread = threading.Thread(target=self._run, name="relay-loop", daemon=True)

    @property
    def port(self) -> int:
        """The port the relay listens on."""
        return self._port

    def start(self) -> Relay:
        """Start the loop thread; returns self."""
        self._listener.setblocking(False)
        self._wake_read.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ, "listen")
        self._selector.register(self._wake_read, selectors.EVENT_READ, "wake")
        self._thread.start()
        return self

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Stop accepting, drop the connections not paired and end every session (their
        connections close); wait up to `timeout` seconds for it all.
        """
        if self._stopping.is_set():
            return
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_write.send(b"x")
        self._thread.join(timeout)
        with self._lock:
            splices = list(self._splices)
        for splice in splices:
            splice.stop()
        for splice in splices:
            splice.wait(timeout)
        self._wake_write.close()

    def stats(self) -> RelayStats:
        """What the relay did so far."""
        with self._lock:
            live = sum(sum(splice.sent) for splice in self._splices)
            ended, refused, total = dict(self._ended), dict(self._refused), self._bytes_ended
        paired, unpaired = self._sessions.counts()
        return RelayStats(paired, unpaired, len(self._arrivals), ended, refused, total + live)

    # The loop thread.

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                for key, _events in self._selector.select(self._timeout()):
                    if key.data == "listen":
                        self._accept()
                    elif key.data == "wake":
                        with contextlib.suppress(OSError):
                            self._wake_read.recv(64)
                    else:
                        self._each(key.data)
                self._expire()
                self._resume_accepting()
        except Exception:
            logger.exception("the relay's loop failed; it stops")
        finally:
            for arrival in list(self._arrivals):
                self._drop(arrival)
            self._selector.close()
            self._listener.close()
            self._wake_read.close()

    def _each(self, arrival: _Arrival) -> None:
        """Read from one connection; a failure drops that connection alone."""
        try:
            self._readable(arrival)
        except Exception:
            logger.exception("the relay dropped a connection from %s", arrival.address)
            if arrival.session is not None:
                self._sessions.leave(arrival.session)
            self._drop(arrival)

    def _timeout(self) -> float | None:
        wake = [deadline for deadline, _order, _arrival in self._deadlines[:1]]
        if self._accepting_again is not None:
            wake.append(self._accepting_again)
        if not wake:
            return None
        return max(0.0, min(wake) - time.monotonic())

    def _pause_accepting(self) -> None:
        """Out of file descriptors: stop watching the listener for a moment rather than
        spin on it (the kernel keeps the new connections queued meanwhile).
        """
        if self._accepting_again is None:
            self._selector.unregister(self._listener)
            self._accepting_again = time.monotonic() + ACCEPT_PAUSE

    def _resume_accepting(self) -> None:
        if self._accepting_again is not None and time.monotonic() >= self._accepting_again:
            self._accepting_again = None
            self._selector.register(self._listener, selectors.EVENT_READ, "listen")

    def _accept(self) -> None:
        for _ in range(ACCEPTS_PER_TURN):
            try:
                sock, peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                logger.warning("the relay cannot accept a connection: %s", error)
                if error.errno in _OUT_OF:
                    self._pause_accepting()
                return
            address = self._address_key(str(peer[0]))  # an IPv6 address counts per /64
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if (
                len(self._arrivals) >= self.caps.waiting
                or self._per_address[address] >= self.caps.waiting_per_address
            ):
                self._count_refused(REFUSED[relay_pb2.RELAY_ANSWER_CODE_FULL])
                _discard_hello(sock)
                _refuse(sock, _full("the relay has as many connections waiting as it allows"))
                continue
            arrival = _Arrival(sock, address, time.monotonic() + self.caps.hello_seconds)
            self._arrivals.add(arrival)
            self._per_address[address] += 1
            self._selector.register(sock, selectors.EVENT_READ, arrival)
            self._push_deadline(arrival)

    def _readable(self, arrival: _Arrival) -> None:
        if arrival.session is not None:
            self._waiting_readable(arrival)
            return
        try:
            data = arrival.sock.recv(arrival.hello.wants())
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._count_refused(LEFT)
            self._drop(arrival)
            return
        try:
            arrival.hello.feed(data)
        except HelloError as error:
            self._count_refused(HELLO_MALFORMED)
            self._drop(arrival, _answer(relay_pb2.RELAY_ANSWER_CODE_TICKET_INVALID, str(error)))
            return
        if arrival.hello.ticket is not None:
            self._check(arrival, arrival.hello.ticket)

    def _check(self, arrival: _Arrival, data: bytes) -> None:
        now = self._clock()
        try:
            ticket = verify_ticket(data, self._trusted, now)
            session = self._sessions.arrive(ticket, arrival, now)
        except TicketError as error:
            self._count_refused(REFUSED[error.code])
            answer = _answer(error.code, str(error))
            if error.code == relay_pb2.RELAY_ANSWER_CODE_FULL:
                answer.retry_after_seconds = RETRY_AFTER_SECONDS
            self._drop(arrival, answer)
            return
        arrival.session = session
        if session.paired:
            self._pair(session)
        else:
            arrival.deadline = time.monotonic() + self.caps.pairing_seconds
            self._push_deadline(arrival)

    def _waiting_readable(self, arrival: _Arrival) -> None:
        """A side waiting for the other sent something: it left, or it sent bytes early (kept
        in the kernel for the other side; it is no longer watched, its deadline still runs).
        """
        try:
            peeked = arrival.sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            peeked = b""
        if peeked:
            self._unwatch(arrival)
            return
        assert arrival.session is not None
        self._sessions.leave(arrival.session)
        self._count_refused(LEFT)
        self._drop(arrival)

    def _pair(self, session: Session[_Arrival]) -> None:
        paired = _answer(relay_pb2.RELAY_ANSWER_CODE_PAIRED, "paired")
        paired.max_bytes = self.caps.session_bytes
        paired.max_seconds = math.ceil(self.caps.session_seconds)  # 0 stays "no cap"
        sides = (session.serving, session.downloading)
        for arrival in sides:
            self._forget(arrival)
            _send_answer(arrival.sock, paired)
        splice = Splice(
            session.serving.sock,
            session.downloading.sock,
            SpliceCaps(
                self.caps.session_bytes,
                self.caps.session_seconds,
                session_rate(self.caps, self._shared_rate),
            ),
            on_end=lambda ended: self._ended_session(session, ended),
            name=f"relay-{session.id[:4].hex()}",
        )
        with self._lock:
            self._splices.add(splice)
        logger.debug("relay session %s of %s paired", session.id.hex(), session.serving_peer)
        splice.start()

    def _expire(self) -> None:
        now = time.monotonic()
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, _order, arrival = heapq.heappop(self._deadlines)
            if arrival not in self._arrivals or arrival.deadline != deadline:
                continue  # gone, or its deadline moved on
            if arrival.session is None:
                self._count_refused(HELLO_TIMEOUT)
                self._drop(arrival)
                continue
            self._sessions.leave(arrival.session)
            code = relay_pb2.RELAY_ANSWER_CODE_TIMEOUT
            self._count_refused(REFUSED[code])
            self._drop(arrival, _answer(code, "the other side did not come in time"))

    def _push_deadline(self, arrival: _Arrival) -> None:
        heapq.heappush(self._deadlines, (arrival.deadline, next(self._order), arrival))

    def _unwatch(self, arrival: _Arrival) -> None:
        if arrival.watched:
            arrival.watched = False
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(arrival.sock)

    def _forget(self, arrival: _Arrival) -> None:
        """The loop lets go of `arrival` (its socket stays open)."""
        self._unwatch(arrival)
        if arrival in self._arrivals:
            self._arrivals.discard(arrival)
            self._per_address[arrival.address] -= 1
            if not self._per_address[arrival.address]:
                del self._per_address[arrival.address]

    def _drop(self, arrival: _Arrival, answer: relay_pb2.RelayAnswer | None = None) -> None:
        """Let go of `arrival` and close it, after `answer` if any."""
        self._forget(arrival)
        if answer is None:
            arrival.sock.close()
        else:
            _refuse(arrival.sock, answer)

    def _count_refused(self, reason: str) -> None:
        with self._lock:
            self._refused[reason] += 1

    # Splice threads.

    def _ended_session(self, session: Session[_Arrival], splice: Splice) -> None:
        self._sessions.leave(session)
        end = (splice.end or SpliceEnd.CLOSED).value
        with self._lock:
            self._splices.discard(splice)
            self._ended[end] += 1
            self._bytes_ended += sum(splice.sent)
        logger.debug("relay session %s ended (%s): %d and %d bytes", session.id.hex(), end,
                     *splice.sent)  # fmt: skip


def create_relay(
    host: str = "0.0.0.0",
    port: int = 0,
    trusted: Sequence[bytes] = (),
    caps: RelayCaps | None = None,
    *,
    metrics: Metrics | None = None,
    clock: Callable[[], float] = time.time,
    address_key: AddressKey | None = None,
) -> tuple[Relay, int]:
    """Start a relay on host:port (0 picks a free port) that accepts the tickets of the
    trackers whose certificates (DER) are `trusted`; return it with its port.

    With `metrics`, its sessions, refusals and bytes are reported there (relay_metrics).
    `clock` is the Unix time tickets are checked against; `address_key` what one address is
    to the cap on connections waiting per address (IPv6 per /64 by default). Raises
    common.serving.PortInUseError if the address cannot be bound.
    """
    caps = caps or RelayCaps()
    _fit_descriptor_limit(caps)
    try:
        family, kind, proto, _name, bind_to = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        listener = socket.socket(family, kind, proto)
    except OSError as error:
        raise port_in_use(host, port) from error
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(bind_to)
        listener.listen(BACKLOG)
    except OSError as error:
        listener.close()
        raise port_in_use(host, port) from error
    relay = Relay(listener, trusted, caps, clock, address_key or AddressKey()).start()
    if metrics is not None:
        relay_metrics(metrics, relay)
    logger.debug("relay listening on port %d", relay.port)
    return relay, relay.port


def _fit_descriptor_limit(caps: RelayCaps) -> None:
    """Raise this process's limit of open files (its soft limit, up to the hard one) to what
    the caps may use; say so if it cannot be reached.
    """
    needed = caps.waiting + caps.sessions * FDS_PER_SESSION + FDS_SPARE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        logger.warning(
            "the relay may need %d open files at its caps but may open only %d: lower its "
            "caps on sessions or on connections waiting, or raise the limit (ulimit -n)",
            needed,
            soft,
        )


def relay_metrics(metrics: Metrics, relay: Relay) -> None:
    """Report `relay`'s sessions, refusals and bytes in `metrics` (names {prefix}_relay_...)."""
    metrics.reading(
        "gauge",
        "relay_sessions_paired",
        "Relayed sessions paired now.",
        lambda: relay.stats().paired,
    )
    metrics.reading(
        "gauge",
        "relay_sessions_unpaired",
        "Relayed sessions waiting for their second side.",
        lambda: relay.stats().unpaired,
    )
    metrics.reading(
        "gauge",
        "relay_connections_waiting",
        "Connections to the relay not paired yet (sending their ticket, or waiting).",
        lambda: relay.stats().waiting,
    )
    metrics.reading(
        "counter",
        "relay_bytes",
        "Bytes the relay carried, both ways, of ended and running sessions.",
        lambda: relay.stats().bytes,
    )
    metrics.labelled_reading(
        "counter",
        "relay_sessions_ended",
        "Paired sessions ended, by how: closed, max_bytes, max_seconds or stopped.",
        "end",
        lambda: relay.stats().ended,
    )
    metrics.labelled_reading(
        "counter",
        "relay_connections_refused",
        "Connections ended before they were paired, by why.",
        "reason",
        lambda: relay.stats().refused,
    )


def _answer(code: relay_pb2.RelayAnswerCode, message: str) -> relay_pb2.RelayAnswer:
    return relay_pb2.RelayAnswer(code=code, message=message)


def _full(message: str) -> relay_pb2.RelayAnswer:
    answer = _answer(relay_pb2.RELAY_ANSWER_CODE_FULL, message)
    answer.retry_after_seconds = RETRY_AFTER_SECONDS
    return answer


def _send_answer(sock: socket.socket, answer: relay_pb2.RelayAnswer) -> None:
    """Send an answer on a non-blocking socket: a few dozen bytes always fit in its new send
    buffer, so a reader that does not read cannot hold the loop.
    """
    with contextlib.suppress(OSError):
        sock.send(answer_bytes(answer))


def _refuse(sock: socket.socket, answer: relay_pb2.RelayAnswer) -> None:
    _send_answer(sock, answer)
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    sock.close()


def _discard_hello(sock: socket.socket) -> None:
    """Read what already came of a refused connection's hello, so that closing it sends the
    answer and a FIN rather than a reset that may destroy the answer unread.
    """
    with contextlib.suppress(OSError):
        sock.recv(4096)
