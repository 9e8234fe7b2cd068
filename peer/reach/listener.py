"""The serving side of reach: a peer the tracker could not reach holds its Listen stream, and
for each request on it dials out (to the downloader, or to a relay) and splices that connection
into its own gRPC server, which serves it as any connection it accepted, TLS and all.

grpcio cannot adopt a socket it did not accept (grpc/grpc#23760), hence the splice: a loopback
connection to our own server, joined to the dialled one in the kernel (common.splice). The
spliced connection's calls count for the downloader it carries (peer.serving.callers).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable

from google.protobuf.message import DecodeError
from napshare.common import relay_wire
from napshare.common.address import (
    InvalidAddressError,
    format_address,
    parse_address,
    parse_ip_address,
)
from napshare.common.ratelimit import TokenBucket
from napshare.common.reverse_wire import ReverseHandshakeError, dial_reverse
from napshare.common.splice import Splice
from napshare.peer.backoff import Backoff
from napshare.peer.defaults import (
    DIALBACK_RATE,
    MAX_DIALBACKS,
    RELAY_WAIT,
    REVERSE_WAIT,
    TRACKER_RETRY_CAP,
)
from napshare.peer.errors import ClientError, LeaseLostError
from napshare.peer.reach.paths import Path
from napshare.peer.serving.callers import Callers
from napshare.peer.tracker_client import Listening, Registration, TrackerClient
from napshare.v1 import relay_pb2, tracker_pb2

logger = logging.getLogger(__name__)

SILENT_INTERVALS = 3  # keepalive intervals without a message before the stream is opened again
FIRST_WORD_SECONDS = 60.0  # how long a new stream may take to say `started` (3 default intervals)
WATCH_TICK = 1.0  # seconds between the watchdog's looks at the stream
SERVER_CONNECT_TIMEOUT = 5.0  # seconds to connect to our own server
DROP_REPORT_SECONDS = 60.0  # at most one log line per this long about dropped requests


class ReachListener:
    """Keeps this peer's Listen stream open while its registration is not reachable, and
    answers each request on it, at most `max_dialbacks` open at once and `dialback_rate`
    started a second (past either, requests are dropped, with one log line a minute).

    `server` is where this peer's own gRPC server answers (loopback, or its bound address).
    `on_lost(registration)` is called when the tracker no longer knows the registration (to
    join again); `on_dialled(path)` after each connection spliced in (Path.REVERSE or Path.RELAY);
    `on_listening(listening)` whenever the stream opens or stops being open.
    """

    def __init__(
        self,
        tracker: TrackerClient,
        server: tuple[str, int],
        callers: Callers,
        *,
        max_dialbacks: int = MAX_DIALBACKS,
        dialback_rate: float = DIALBACK_RATE,
        on_lost: Callable[[Registration], None] = lambda _registration: None,
        on_dialled: Callable[[Path], None] = lambda _path: None,
        on_listening: Callable[[bool], None] = lambda _listening: None,
    ) -> None:
        self._tracker = tracker
        self._tracker_host = parse_address(tracker.address)[0]
        self._server = server
        self._callers = callers
        self._on_lost = on_lost
        self._on_dialled = on_dialled
        self._on_listening = on_listening
        self.max_dialbacks = max_dialbacks
        self._slots = threading.BoundedSemaphore(max_dialbacks)
        self._rate = TokenBucket(dialback_rate, max(1.0, 2 * dialback_rate))
        self._lock = threading.Lock()
        self._registration: Registration | None = None
        self._stream: Listening | None = None
        self._heard = 0.0  # when the stream last carried a message
        self._silence = FIRST_WORD_SECONDS  # seconds of silence before it is opened again
        self._ours = False  # the current stream was cancelled by us
        self._splices: set[Splice] = set()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._dropped = 0  # requests dropped since the last line about them
        self._reported = -DROP_REPORT_SECONDS  # when that line was written
        # The registration whose stream is open (its first message came), or None.
        self.listening_with: Registration | None = None

    def start(self) -> None:
        """Start the stream's thread and its watchdog (idle until a registration needs them)."""
        for target, name in ((self._run, "reach-listen"), (self._watch, "reach-watch")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def registered(self, registration: Registration) -> None:
        """A Join happened: listen with this registration if it is not reachable, else not."""
        with self._lock:
            self._registration = registration
            stream = self._stream
        if stream is not None:
            self._cancel(stream)  # the old token's stream: open the new one
        self._wake.set()

    def stop(self) -> None:
        """End the stream and every spliced connection; wait for the threads."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            stream = self._stream
            splices = list(self._splices)
        if stream is not None:
            self._cancel(stream)
        for splice in splices:
            splice.stop()
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        retry = Backoff(TRACKER_RETRY_CAP)
        failing = False
        while not self._stop.is_set():
            registration = self._registration
            if registration is None or registration.reachable:
                self._wake.wait()
                self._wake.clear()
                continue
            try:
                self._listen(registration, retry)
                failing = False
            except LeaseLostError as error:
                if self._forget(registration):
                    logger.info("the Listen stream ended: %s; joining again", error)
                    self._on_lost(registration)
                continue
            except ClientError as error:
                if not self._ours and not self._stop.is_set():
                    level = logging.INFO if failing else logging.WARNING
                    logger.log(level, "the Listen stream failed: %s; opening it again", error)
                    failing = True
            except Exception:
                logger.exception("the Listen stream hit a bug; opening it again")
            finally:
                self._set_listening(None)
            if self._stop.is_set() or self._registration is not registration:
                continue
            if self._wake.wait(retry.next()):
                self._wake.clear()

    def _listen(self, registration: Registration, retry: Backoff) -> None:
        """Hold one stream until it ends (a ClientError, or OK: the tracker stopped it)."""
        stream = self._tracker.listen(registration)
        with self._lock:
            if self._stop.is_set() or self._registration is not registration:
                self._cancel(stream)
                return
            self._stream = stream
            self._ours = False
            self._heard = time.monotonic()
            self._silence = FIRST_WORD_SECONDS
        try:
            for event in stream:
                self._heard = time.monotonic()
                kind = event.WhichOneof("event")
                if kind == "started":
                    interval = max(1, event.started.keepalive_seconds)
                    self._silence = SILENT_INTERVALS * interval
                    retry.reset()
                    self._set_listening(registration)
                    logger.info("listening at %s for connection requests", self._tracker.address)
                elif kind == "reverse_dial":
                    self._dial_back(Path.REVERSE, event.reverse_dial)
                elif kind == "relay_session":
                    self._dial_back(Path.RELAY, event.relay_session)
            logger.info(
                "tracker %s ended the Listen stream; opening it again", self._tracker.address
            )
        finally:
            with self._lock:
                self._stream = None

    def _watch(self) -> None:
        """Open the stream again when it carried nothing for SILENT_INTERVALS keepalives (a
        home router may have dropped the connection's mapping without a word).
        """
        while not self._stop.wait(WATCH_TICK):
            with self._lock:
                stream, heard, silence = self._stream, self._heard, self._silence
            if stream is not None and time.monotonic() - heard > silence:
                logger.warning(
                    "no word from tracker %s for %.0f s on the Listen stream; opening it again "
                    "on a new connection",
                    self._tracker.address,
                    silence,
                )
                self._cancel(stream)
                self._tracker.reconnect()

    def _cancel(self, stream: Listening) -> None:
        self._ours = True
        stream.cancel()

    def _forget(self, registration: Registration) -> bool:
        with self._lock:
            if self._registration is not registration:
                return False
            self._registration = None
            return True

    @property
    def listening(self) -> bool:
        """Whether the stream is open."""
        return self.listening_with is not None

    def _set_listening(self, registration: Registration | None) -> None:
        was = self.listening
        self.listening_with = registration
        if self.listening != was:
            self._on_listening(self.listening)

    def _dial_back(
        self, path: Path, request: tracker_pb2.ReverseDial | tracker_pb2.RelaySession
    ) -> None:
        """Start a dial for `request` in a thread of its own, within the caps."""
        if self._rate.take(1) or not self._slots.acquire(blocking=False):
            self._drop()
            return
        thread = threading.Thread(
            target=self._dial, args=(path, request), name=f"dial-{path.value}", daemon=True
        )
        thread.start()

    def _dial(
        self, path: Path, request: tracker_pb2.ReverseDial | tracker_pb2.RelaySession
    ) -> None:
        """Dial, and splice what answers into our server; the slot is released when the
        connection ends (or at once, if the dial fails).
        """
        spliced = False
        try:
            if isinstance(request, tracker_pb2.ReverseDial):
                target, downloader = _reverse_target(request)
                remote = dial_reverse(target, request.session, request.secret, REVERSE_WAIT)
            else:
                target = relay_wire.relay_target(request.relay_address, self._tracker_host)
                downloader = _ticket_downloader(request.relay_ticket) or target[0]
                remote, _answer = relay_wire.join_relay(target, request.relay_ticket, RELAY_WAIT)
            spliced = self._splice(remote, downloader, path)
        except (InvalidAddressError, ValueError) as error:
            logger.warning("a malformed %s request from the tracker: %s", path.value, error)
        except (OSError, ReverseHandshakeError, relay_wire.RelayRefusedError) as error:
            logger.info("a %s dial-back failed: %s", path.value, error)
        except Exception:
            logger.exception("a %s dial-back hit a bug", path.value)
        finally:
            if not spliced:
                self._slots.release()

    def _splice(self, remote: socket.socket, downloader: str, path: Path) -> bool:
        """Join `remote` to a new connection to our own server; whether it was."""
        try:
            local = socket.create_connection(self._server, timeout=SERVER_CONNECT_TIMEOUT)
        except OSError as error:
            logger.warning("could not connect to this peer's own server: %s", error)
            remote.close()
            return False
        local.settimeout(None)
        for sock in (remote, local):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = format_address(*local.getsockname()[:2])
        self._callers.record(key, downloader)

        def ended(splice: Splice) -> None:
            self._callers.forget(key)
            with self._lock:
                self._splices.discard(splice)
            self._slots.release()

        splice = Splice(remote, local, on_end=ended, name=f"{path.value}-{downloader}")
        with self._lock:
            self._splices.add(splice)
        splice.start()
        logger.info("serving %s over a %s connection", downloader, path.value)
        self._on_dialled(path)
        return True

    def _drop(self) -> None:
        """Count a dropped request; say so at most once per DROP_REPORT_SECONDS."""
        with self._lock:
            self._dropped += 1
            now = time.monotonic()
            if now - self._reported < DROP_REPORT_SECONDS:
                return
            count, self._dropped, self._reported = self._dropped, 0, now
        logger.warning(
            "dropped %d connection requests: this peer dials out at most %d at a time and "
            "%g a second (--max-dialbacks, --dialback-rate)",
            count,
            self.max_dialbacks,
            self._rate.rate,
        )


def _reverse_target(request: tracker_pb2.ReverseDial) -> tuple[tuple[str, int], str]:
    """Where a reverse dial goes, and the downloader's IP it counts for."""
    host, port = parse_ip_address(request.address)
    return (host, port), host


def _ticket_downloader(signed: bytes) -> str:
    """The downloader's IP in a relay ticket (the tracker wrote it), or "" if it holds none."""
    try:
        ticket = relay_pb2.RelayTicket.FromString(
            relay_pb2.SignedRelayTicket.FromString(signed).ticket
        )
        return str(ipaddress.ip_address(ticket.downloader))
    except (DecodeError, ValueError):
        return ""
