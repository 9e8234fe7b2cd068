"""The Connect policy: who may ask the tracker to reach a peer, how often, and what they get.

A caller asks to reach a peer it cannot dial. The tracker checks the caller's rate (a token
bucket per caller IP, `--connect-rate`), the peer's pending dials (`--max-peer-dials` in the
last PENDING_SECONDS), then sends the peer, over its Listen stream (tracker.switchboard), a
reverse dial to the caller (a fresh session and secret) or a relay session (tickets signed by
the tracker for each side), and answers the caller with its half. A caller from the public IP
address the peer joined from (its IPv6 network: common.addresskey) also gets the peer's local
addresses. No gRPC here.
"""

from __future__ import annotations

import collections
import ipaddress
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from napshare.common import reasons, relay_wire, reverse_wire
from napshare.common.address import InvalidAddressError, format_address, parse_ip_address
from napshare.common.protocol import MAX_LOCAL_ADDRESSES
from napshare.common.ratelimit import TokenBucket
from napshare.tracker.errors import (
    AnonymousPeerError,
    ConnectRateError,
    DialsBusyError,
    InvalidRequestError,
    NotListeningError,
    RelayUnavailableError,
)
from napshare.tracker.store.base import Contact, IndexStore
from napshare.tracker.switchboard import Switchboard
from napshare.v1 import relay_pb2, tracker_pb2

CONNECT_RATE = 10.0  # Connect calls per second per caller address key (--connect-rate)
CONNECT_BURST_SECONDS = 4.0  # a caller may spend this many seconds of its rate at once
MAX_PEER_DIALS = 16  # dials sent to one peer in the last PENDING_SECONDS (--max-peer-dials)
PENDING_SECONDS = 10.0  # how long a dial counts as pending: the longest a side waits for it
MAX_CALLERS = 65_536  # caller IPs whose rate is remembered; the least recent are forgotten


class RelayOffer(Protocol):
    """The relay a tracker hands out: its address as Connect gives it (`:PORT` for the
    tracker's own host), and what signs a ticket for it (a serialized SignedRelayTicket,
    relay_wire.sign_ticket with the tracker's identity).
    """

    @property
    def address(self) -> str: ...

    @property
    def sign(self) -> Callable[[relay_pb2.RelayTicket], bytes]: ...


def check_local_addresses(addresses: Sequence[str]) -> tuple[str, ...]:
    """A Join's `local_addresses` in normal form, or InvalidRequestError (ADDRESS_INVALID)
    naming the first bad one: each an IP literal and a port, none unspecified or multicast,
    at most MAX_LOCAL_ADDRESSES.
    """
    if len(addresses) > MAX_LOCAL_ADDRESSES:
        raise InvalidRequestError(
            f"{len(addresses)} local addresses; the limit is {MAX_LOCAL_ADDRESSES}",
            reasons.ADDRESS_INVALID,
            {"field": "local_addresses", "limit": str(MAX_LOCAL_ADDRESSES)},
        )
    checked: list[str] = []
    for position, text in enumerate(addresses):
        where = f"local_addresses[{position}]"
        try:
            host, port = parse_ip_address(text)
        except InvalidAddressError as error:
            raise InvalidRequestError(
                f"{where}: {error}", reasons.ADDRESS_INVALID, {"field": where}
            ) from None
        ip = ipaddress.ip_address(host)
        if ip.is_unspecified or ip.is_multicast:
            raise InvalidRequestError(
                f"{where}: {host} is not an address a peer can be dialled at",
                reasons.ADDRESS_INVALID,
                {"field": where},
            )
        address = format_address(host, port)
        if address not in checked:
            checked.append(address)
    return tuple(checked)


class Connects:
    """The Connect policy of one tracker; thread-safe."""

    def __init__(
        self,
        index: IndexStore,
        switchboard: Switchboard[tracker_pb2.ListenResponse],
        *,
        rate: float = CONNECT_RATE,
        max_peer_dials: int = MAX_PEER_DIALS,
        relay: RelayOffer | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if rate <= 0 or max_peer_dials < 1:
            raise ValueError("the connect rate and max peer dials must be positive")
        self._index = index
        self._switchboard = switchboard
        self.rate = rate
        self.max_peer_dials = max_peer_dials
        self.relay = relay
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._callers: collections.OrderedDict[str, TokenBucket] = collections.OrderedDict()
        self._dials: dict[str, collections.deque[float]] = {}  # per peer id: when sent
        self._answered = {"reverse": 0, "relay": 0, "local": 0, "behind_nat": 0}  # by path

    def connect(
        self,
        caller: str | None,
        peer_id: str,
        path: int,
        reverse_port: int = 0,
        caller_ip: str = "",
    ) -> tracker_pb2.ConnectResponse:
        """Ask `peer_id` to dial `caller` (its IP address; None when the call came from no IP)
        by `path`, and return the caller's half. Raises a TrackerError.

        `caller_ip` is the caller's own address as it gives it: when `caller` is another, a
        NAT stands between them, which would drop a reverse dial; nobody is then asked to dial.
        """
        if path not in (tracker_pb2.CONNECT_PATH_REVERSE, tracker_pb2.CONNECT_PATH_RELAY):
            raise InvalidRequestError(
                "path must be CONNECT_PATH_REVERSE or CONNECT_PATH_RELAY",
                reasons.CONNECT_PATH_INVALID,
                {"field": "path"},
            )
        reverse = path == tracker_pb2.CONNECT_PATH_REVERSE
        if reverse and not 1 <= reverse_port <= 65535:
            raise InvalidRequestError(
                f"reverse_port {reverse_port} is outside 1..65535",
                reasons.ADDRESS_INVALID,
                {"field": "reverse_port"},
            )
        own = _own_ip(caller_ip) if reverse and caller_ip else None
        if caller is None:
            raise InvalidRequestError(
                "the call comes from no IP address, so no peer could dial it",
                reasons.CALLER_ADDRESS_UNKNOWN,
            )
        caller_key = self._index.address_key(caller)  # an IPv6 caller counts per /64
        self._charge(caller_key)
        contact = self._index.contact(peer_id)  # PEER_ID_INVALID, PEER_NOT_REGISTERED
        if not contact.identity:
            raise AnonymousPeerError(
                f"peer {contact.peer_id} joined anonymously: nothing could check who answers "
                "a dial, so the tracker connects nobody to it"
            )
        local = contact.local_addresses if contact.source == caller_key else ()
        if not reverse and self.relay is None:
            raise RelayUnavailableError(
                "this tracker offers no relay (it runs with --no-relay, or serves plain text)"
            )
        if not self._switchboard.listening(contact.peer_id, contact.token):
            if local:
                self._count("local")
                return tracker_pb2.ConnectResponse(local_addresses=local, dialing=False)
            raise _not_listening(contact.peer_id)
        seen = _own_ip(caller)
        if own is not None and own.version == seen.version and own != seen:
            self._count("behind_nat")
            return tracker_pb2.ConnectResponse(local_addresses=local, caller_behind_nat=True)
        self._count_dial(contact.peer_id)
        if reverse:
            session = secrets.token_bytes(reverse_wire.SESSION_BYTES)
            secret = secrets.token_bytes(reverse_wire.SECRET_BYTES)
            event = tracker_pb2.ListenResponse(
                reverse_dial=tracker_pb2.ReverseDial(
                    address=format_address(caller, reverse_port), session=session, secret=secret
                )
            )
            answer = tracker_pb2.ConnectResponse(
                local_addresses=local, dialing=True, session=session, secret=secret
            )
        else:
            assert self.relay is not None
            session = secrets.token_bytes(relay_wire.SESSION_BYTES)
            tickets = [self._ticket(contact, caller, session, side) for side in relay_wire.SIDES]
            event = tracker_pb2.ListenResponse(
                relay_session=tracker_pb2.RelaySession(
                    relay_address=self.relay.address, relay_ticket=tickets[0]
                )
            )
            answer = tracker_pb2.ConnectResponse(
                local_addresses=local,
                dialing=True,
                relay_address=self.relay.address,
                relay_ticket=tickets[1],
            )
        if not self._switchboard.deliver(contact.peer_id, contact.token, event):
            if not self._switchboard.listening(contact.peer_id, contact.token):
                raise _not_listening(contact.peer_id)  # its stream ended just now
            raise DialsBusyError(
                f"peer {contact.peer_id} has as many dials waiting as its stream holds; "
                f"ask again in {PENDING_SECONDS:g} s",
                retry_delay=PENDING_SECONDS,
            )
        self._count("reverse" if reverse else "relay")
        return answer

    def answered(self) -> dict[str, int]:
        """Connect calls answered so far, by path: reverse and relay (the peer was asked to
        dial), local (only local addresses to offer), behind_nat (a reverse dial could not have
        reached the caller).
        """
        with self._lock:
            return dict(self._answered)

    def _count(self, path: str) -> None:
        with self._lock:
            self._answered[path] += 1

    def _charge(self, caller: str) -> None:
        """Take one call from the bucket of `caller` (an address key), or ConnectRateError."""
        with self._lock:
            bucket = self._callers.get(caller)
            if bucket is None:
                bucket = TokenBucket(
                    self.rate, self.rate * CONNECT_BURST_SECONDS, clock=self._clock
                )
                self._callers[caller] = bucket
                if len(self._callers) > MAX_CALLERS:
                    self._callers.popitem(last=False)
            else:
                self._callers.move_to_end(caller)
        wait = bucket.take(1)
        if wait:
            raise ConnectRateError(
                f"{caller} asked for more than {self.rate:g} connections a second; ask again "
                f"in {wait:.1f} s",
                metadata={"limit": f"{self.rate:g}", "flag": "--connect-rate"},
                retry_delay=wait,
            )

    def _count_dial(self, peer_id: str) -> None:
        """Count one dial to `peer_id`, or DialsBusyError if MAX_PEER_DIALS are pending."""
        now = self._clock()
        with self._lock:
            sent = self._dials.setdefault(peer_id, collections.deque())
            while sent and now - sent[0] >= PENDING_SECONDS:
                sent.popleft()
            if len(sent) >= self.max_peer_dials:
                retry = PENDING_SECONDS - (now - sent[0])
                raise DialsBusyError(
                    f"peer {peer_id} has {len(sent)} dials pending, as many as the tracker "
                    f"sends one peer; ask again in {retry:.1f} s",
                    metadata={"limit": str(self.max_peer_dials), "flag": "--max-peer-dials"},
                    retry_delay=retry,
                )
            sent.append(now)
            if len(self._dials) > MAX_CALLERS:
                self._forget_idle_locked(now)

    def _forget_idle_locked(self, now: float) -> None:
        idle = [
            peer_id
            for peer_id, sent in self._dials.items()
            if not sent or now - sent[-1] >= PENDING_SECONDS
        ]
        for peer_id in idle:
            del self._dials[peer_id]

    def _ticket(
        self, contact: Contact, caller: str, session: bytes, side: relay_pb2.RelaySide
    ) -> bytes:
        assert self.relay is not None
        ticket = relay_pb2.RelayTicket(
            session=session,
            side=side,
            expires_at=int(self._wall_clock()) + relay_wire.TICKET_SECONDS,
            serving_peer=contact.peer_id,
            downloader=caller,
        )
        return self.relay.sign(ticket)


def _not_listening(peer_id: str) -> NotListeningError:
    return NotListeningError(
        f"peer {peer_id} holds no Listen stream, so it cannot be asked to dial, and has no "
        "address on the caller's network"
    )


def _own_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """`text` as an IP address (an IPv4-mapped IPv6 one as IPv4), or InvalidRequestError."""
    try:
        ip = ipaddress.ip_address(text.removeprefix("[").removesuffix("]"))
    except ValueError:
        raise InvalidRequestError(
            f"caller_ip {text[:80]!r} is not an IP address",
            reasons.ADDRESS_INVALID,
            {"field": "caller_ip"},
        ) from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
