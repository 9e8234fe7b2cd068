"""The downloader's side of reach: how to get a connection to each peer, chosen once per peer
per download (peer.reach.proxy hands gRPC the connections it cannot dial itself).

Paths, in order (the timeouts are peer.defaults'): direct to the listed address when the
tracker reached the peer there (a TCP probe first); its local addresses when the tracker says
we share its public address; a reverse connection (the tracker asks the peer to dial the
listener of this process, unless this host is behind a NAT, which would drop the dial); a
relay; and the listed address of a peer the tracker could not reach only as a last resort,
when the tracker has no way to it. gRPC dials direct and local addresses itself. Reverse and
relayed connections are sockets gRPC cannot adopt (grpc/grpc#23760): the peer's channels dial
a loopback proxy instead, and each connection it accepts is spliced (common.splice) to a fresh
connection to the peer by the chosen path. TLS runs end to end over it, pinned to the peer's
listed certificate as always: the proxy, a relay and the tracker see only ciphertext.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from napshare.common import reasons, relay_wire
from napshare.common.address import (
    InvalidAddressError,
    format_address,
    parse_address,
)
from napshare.common.console import tr
from napshare.peer.defaults import DIRECT_PROBE, LOCAL_PROBE, RELAY_WAIT, REVERSE_WAIT
from napshare.peer.errors import (
    CancelledError,
    ClientError,
    ConnectRefusedError,
    PeerError,
    PeerFault,
)
from napshare.peer.reach.addresses import source_towards
from napshare.peer.reach.paths import Path, PathCounts
from napshare.peer.reach.proxy import LoopbackProxy
from napshare.peer.reach.reverse import ReverseListener
from napshare.peer.tracker_client import TrackerClient
from napshare.v1 import relay_pb2, tracker_pb2

logger = logging.getLogger(__name__)

_BUSY = frozenset({reasons.CONNECT_RATE_LIMITED, reasons.PEER_DIALS_BUSY})
CANCEL_POLL = 0.1  # seconds between looks at the download's cancel event while a path is tried


@dataclass(frozen=True)
class Route:
    """How this download reaches one peer: the path, what gRPC dials (the peer id, a local
    address, or the proxy's loopback address), and for the user where it goes through.
    """

    path: Path
    target: str
    via: str = ""  # the local address, or the relay's


class Routes:
    """The route to each peer of one download: chosen at the peer's first connection, kept
    for the download. Reverse and relayed routes get a proxy of their own.

    `reverse()` gives this process's ReverseListener (made when first needed); `note(line)`
    tells the user how a peer that needs more than a direct connection is reached; `counts`
    counts the connections made by each path. Setting `cancel` ends a choice under way at
    once (CancelledError), whatever it waits for (a probe, the tracker, a dial-back, a relay).
    """

    def __init__(
        self,
        tracker: TrackerClient,
        reverse: Callable[[], ReverseListener],
        *,
        note: Callable[[str], None] = lambda _line: None,
        counts: PathCounts | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self._tracker = tracker
        self._cancel = cancel
        self._tracker_host = parse_address(tracker.address)[0]
        self._reverse = reverse
        self._note = note
        self.counts = PathCounts() if counts is None else counts
        self._lock = threading.Lock()
        self._routes: dict[str, Route] = {}
        self._proxies: list[LoopbackProxy] = []
        self._closed = False

    def path_of(self, peer: str) -> Path | None:
        """How `peer` is reached in this download, if that is decided yet."""
        with self._lock:
            route = self._routes.get(peer)
        return None if route is None else route.path

    def route(self, peer: str, *, reachable: bool) -> Route:
        """The route to `peer` (`reachable`: the tracker reached it at its id), choosing it
        now if this is its first connection; PeerError if no path reaches it now.
        """
        with self._lock:
            known = self._routes.get(peer)
        if known is not None:
            return known
        route = self._chosen(peer, reachable)
        with self._lock:
            self._routes[peer] = route
        if route.path is Path.REVERSE:
            self._note(
                tr(
                    "peer {peer} is behind a NAT: reached through a reverse connection",
                    peer=peer,
                )
            )
        elif route.path is Path.RELAY:
            self._note(
                tr(
                    "peer {peer} is behind a NAT: reached through the relay at {relay}",
                    peer=peer,
                    relay=route.via,
                )
            )
        elif route.path is Path.LOCAL:
            self._note(
                tr(
                    "peer {peer} is on this network: reached at its local address {address}",
                    peer=peer,
                    address=route.via,
                )
            )
        return route

    def close(self) -> None:
        """Stop every proxy and the connections it carries."""
        with self._lock:
            self._closed = True
            proxies, self._proxies = self._proxies, []
        for proxy in proxies:
            proxy.close()

    def _chosen(self, peer: str, reachable: bool) -> Route:
        """_choose, in a thread of its own while `cancel` may end the wait for it: each path
        may take seconds (peer.defaults), and a hostile tracker can list many peers that
        need them all. A choice left behind ends in its own time; its route, if any, is
        dropped (its proxy closes with the others).
        """
        if self._cancel is None:
            return self._choose(peer, reachable)
        outcome: list[Route | BaseException] = []
        done = threading.Event()

        def choose() -> None:
            try:
                outcome.append(self._choose(peer, reachable))
            except BaseException as error:  # handed to the caller's thread
                outcome.append(error)
            finally:
                done.set()

        threading.Thread(target=choose, name=f"route-{peer}", daemon=True).start()
        while not done.wait(CANCEL_POLL):
            if self._cancel.is_set():
                raise CancelledError(tr("cancelled while reaching peer {peer}", peer=peer))
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    def _choose(self, peer: str, reachable: bool) -> Route:
        tried: list[str] = []
        if reachable:
            problem = _probe(peer, DIRECT_PROBE)
            if problem is None:
                return Route(Path.DIRECT, peer)
            tried.append(tr("direct: {problem}", problem=problem))
        listener = self._reverse()
        try:
            answer = self._connect(peer, tracker_pb2.CONNECT_PATH_REVERSE, listener.port)
        except _NoWayError as no_way:
            return self._last_resort(peer, reachable, tried, no_way.why)
        if answer.behind_nat:
            tried.append(tr("reverse: this host is behind a NAT, which would drop the dial"))
        if answer.session:
            listener.expect(answer.session, answer.secret)
        for address in answer.local_addresses:
            if _probe(address, LOCAL_PROBE) is None:
                if answer.session:
                    listener.wait(answer.session, 0)  # not wanted: refuse it when it comes
                return Route(Path.LOCAL, address, address)
            tried.append(tr("local address {address}: no answer", address=address))
        if not answer.dialing and not answer.behind_nat:
            return self._last_resort(
                peer, reachable, tried, tr("it does not listen at the tracker now")
            )
        if answer.dialing:
            first = listener.wait(answer.session, REVERSE_WAIT)
            if first is not None:
                self.counts.add(Path.REVERSE)
                return self._proxied(peer, Path.REVERSE, first, "")
            tried.append(
                tr("reverse: no connection within {seconds} s", seconds=format(REVERSE_WAIT, "g"))
            )
        relayed, via = self._relayed(peer, tried)
        if relayed is None:
            raise PeerError(
                peer,
                PeerFault.UNREACHABLE,
                tr("no path reached it ({tried})", tried="; ".join(tried)),
            )
        self.counts.add(Path.RELAY)
        return self._proxied(peer, Path.RELAY, relayed, via)

    def _last_resort(self, peer: str, reachable: bool, tried: list[str], why: str) -> Route:
        """The tracker has no way to `peer` (`why`): dial its listed address anyway, with a
        short timeout, unless that was tried already (it may let our network in, or be an
        anonymous peer, which the tracker never checks); else PeerError (GONE).

        A peer the tracker could not reach is dialled there only now: its public address
        may answer with something else (a router's own service on that port).
        """
        if not reachable:
            problem = _probe(peer, LOCAL_PROBE)
            if problem is None:
                return Route(Path.DIRECT, peer)
            tried.append(tr("direct: {problem}", problem=problem))
        raise _gone(peer, tried, why)

    def _connect(self, peer: str, path: tracker_pb2.ConnectPath, port: int = 0) -> _Answer:
        """Connect through the tracker. _NoWayError when it has none to `peer` now (it holds no
        stream, is anonymous, or the tracker does not answer); PeerError when it is gone
        (MISSING), or the tracker says to come back later (REFUSED).
        """
        own = source_towards(self._tracker.address) if port else None
        try:
            answer = self._tracker.connect(peer, path, port, "" if own is None else str(own))
        except ConnectRefusedError as error:
            if error.reason == reasons.PEER_NOT_REGISTERED:
                raise PeerError(
                    peer, PeerFault.MISSING, tr("the tracker no longer lists it")
                ) from None
            if error.reason in _BUSY:
                raise PeerError(peer, PeerFault.REFUSED, str(error), error.retry_after) from None
            raise _NoWayError(error.details) from None
        except ClientError as error:
            raise _NoWayError(str(error)) from None
        return _Answer(
            answer.local_addresses,
            answer.dialing,
            answer.session,
            answer.secret,
            answer.behind_nat,
        )

    def _relayed(self, peer: str, tried: list[str]) -> tuple[socket.socket | None, str]:
        """A connection to `peer` through the tracker's relay, or None (why goes in `tried`)."""
        try:
            answer = self._tracker.connect(peer, tracker_pb2.CONNECT_PATH_RELAY)
        except ConnectRefusedError as error:
            if error.reason in _BUSY:
                raise PeerError(peer, PeerFault.REFUSED, str(error), error.retry_after) from None
            tried.append(tr("relay: {problem}", problem=error.details))
            return None, ""
        except ClientError as error:
            tried.append(tr("relay: {problem}", problem=str(error)))
            return None, ""
        try:
            target = relay_wire.relay_target(answer.relay_address, self._tracker_host)
            sock, _ = relay_wire.join_relay(target, answer.relay_ticket, RELAY_WAIT)
        except relay_wire.RelayRefusedError as error:
            code = error.answer.code
            if code == relay_pb2.RELAY_ANSWER_CODE_FULL:
                retry = float(error.answer.retry_after_seconds or RELAY_WAIT)
                raise PeerError(peer, PeerFault.REFUSED, str(error), retry) from None
            tried.append(tr("relay: {problem}", problem=error))
            return None, ""
        except (OSError, InvalidAddressError) as error:
            tried.append(tr("relay: {problem}", problem=error))
            return None, ""
        return sock, format_address(*target)

    def _proxied(self, peer: str, path: Path, first: socket.socket, via: str) -> Route:
        """A route through a new loopback proxy whose first connection is spliced to `first`
        and each later one to a new connection to `peer` by `path` (reverse, else relay).
        """

        def dial() -> socket.socket | None:
            return self._again(peer, path)

        proxy = LoopbackProxy(peer, first, dial)
        with self._lock:
            if self._closed:
                proxy.close()
                raise PeerError(peer, PeerFault.GONE, "the download ended")
            self._proxies.append(proxy)
        return Route(path, proxy.target, via)

    def _again(self, peer: str, path: Path) -> socket.socket | None:
        """A further connection to `peer`: by reverse (else relay) or by relay; None if it
        cannot be had now (gRPC then sees the connection fail, and the stream is retried).
        """
        tried: list[str] = []
        try:
            if path is Path.REVERSE:
                listener = self._reverse()
                answer = self._connect(peer, tracker_pb2.CONNECT_PATH_REVERSE, listener.port)
                if answer.dialing and answer.session:
                    listener.expect(answer.session, answer.secret)
                    sock = listener.wait(answer.session, REVERSE_WAIT)
                    if sock is not None:
                        self.counts.add(Path.REVERSE)
                        return sock
            relayed, _ = self._relayed(peer, tried)
        except PeerError as error:
            logger.info("no further connection to %s: %s", peer, error.detail)
            return None
        except _NoWayError as no_way:
            logger.info("no further connection to %s: %s", peer, no_way.why)
            return None
        if relayed is not None:
            self.counts.add(Path.RELAY)
        else:
            logger.info("no further connection to %s: %s", peer, "; ".join(tried))
        return relayed


class _NoWayError(Exception):
    """The tracker has no way to a peer now; `why`, in its words."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass(frozen=True)
class _Answer:
    local_addresses: tuple[str, ...]
    dialing: bool
    session: bytes
    secret: bytes
    behind_nat: bool


def _probe(address: str, timeout: float) -> str | None:
    """None if a TCP connection to `address` opens within `timeout` seconds, else why not."""
    try:
        host, port = parse_address(address)
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except TimeoutError:
        return tr("no answer within {seconds} s", seconds=format(timeout, "g"))
    except (OSError, InvalidAddressError) as error:
        return str(getattr(error, "strerror", None) or error)


def _gone(peer: str, tried: list[str], why: str) -> PeerError:
    """No connection to `peer` now (it may come back): why, after the paths `tried`."""
    return PeerError(peer, PeerFault.GONE, "; ".join([*tried, why]), reached=False)
