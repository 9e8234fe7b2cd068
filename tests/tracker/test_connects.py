"""The Connect policy on a real index and switchboard: what a caller gets, what the peer is
sent, who gets local addresses, relay tickets, and the caps.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from napshare.common import reasons
from napshare.common.identity import TRACKER_NAME, make_identity
from napshare.common.relay_wire import TICKET_SECONDS, sign_ticket, verify_ticket
from napshare.common.reverse_wire import SECRET_BYTES, SESSION_BYTES
from napshare.tracker.connects import PENDING_SECONDS, Connects
from napshare.tracker.errors import (
    AnonymousPeerError,
    ConnectRateError,
    DialsBusyError,
    InvalidRequestError,
    NotListeningError,
    RelayUnavailableError,
    UnknownPeerError,
)
from napshare.tracker.index import FileEntry, TrackerIndex
from napshare.tracker.switchboard import Switchboard
from napshare.v1 import relay_pb2, tracker_pb2

ENTRY = FileEntry("a.mp4", 1, "ab" * 32)
HOME = "198.51.100.7"  # the public IP address the peer joined from
OUTSIDE = "203.0.113.9"
REVERSE = tracker_pb2.CONNECT_PATH_REVERSE
RELAY = tracker_pb2.CONNECT_PATH_RELAY
TRACKER = make_identity(TRACKER_NAME)


@dataclass(frozen=True)
class Offer:
    """A relay a tracker hands out (tracker.connects.RelayOffer)."""

    address: str
    sign: Callable[[relay_pb2.RelayTicket], bytes]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world():
    """A peer joined from HOME with a local address, holding a Listen stream."""
    index = TrackerIndex()
    board: Switchboard[tracker_pb2.ListenResponse] = Switchboard()
    joined = index.join(
        "198.51.100.7",
        8776,
        [ENTRY],
        HOME,
        identity="f" * 64,
        local_addresses=("192.168.1.20:8776",),
    )
    listener = board.register(joined.peer_id, joined.token)
    return index, board, joined, listener


def test_a_reverse_connect_sends_the_peer_the_callers_address_and_the_same_session(world):
    index, board, joined, listener = world
    connects = Connects(index, board)
    answer = connects.connect(OUTSIDE, joined.peer_id, REVERSE, 40000)
    assert answer.dialing
    assert len(answer.session) == SESSION_BYTES
    assert len(answer.secret) == SECRET_BYTES
    assert list(answer.local_addresses) == []  # another public address: no local ones
    dial = listener.next(1).reverse_dial
    assert (dial.address, dial.session, dial.secret) == (
        f"{OUTSIDE}:40000",
        answer.session,
        answer.secret,
    )
    again = connects.connect(OUTSIDE, joined.peer_id, REVERSE, 40000)
    assert again.session != answer.session
    assert again.secret != answer.secret


def test_a_caller_behind_the_same_public_address_gets_the_local_addresses_too(world):
    index, board, joined, listener = world
    answer = Connects(index, board).connect(HOME, joined.peer_id, REVERSE, 40000)
    assert list(answer.local_addresses) == ["192.168.1.20:8776"]
    assert answer.dialing
    assert listener.next(1).reverse_dial.address == f"{HOME}:40000"


def test_a_peer_without_a_stream_is_reached_only_on_its_own_network(world):
    index, board, joined, listener = world
    board.unregister(listener)
    connects = Connects(index, board)
    answer = connects.connect(HOME, joined.peer_id, REVERSE, 40000)
    assert (list(answer.local_addresses), answer.dialing) == (["192.168.1.20:8776"], False)
    with pytest.raises(NotListeningError):
        connects.connect(OUTSIDE, joined.peer_id, REVERSE, 40000)


def test_a_relay_connect_gives_each_side_its_signed_ticket_for_one_session(world):
    index, board, joined, listener = world
    offer = Offer(":1100", functools.partial(sign_ticket, TRACKER))
    now = 1_000_000.0
    connects = Connects(index, board, relay=offer, wall_clock=lambda: now)
    answer = connects.connect(OUTSIDE, joined.peer_id, RELAY)
    session = listener.next(1).relay_session
    assert answer.relay_address == session.relay_address == ":1100"
    # What the relay checks: signed by this tracker, for each side of one session.
    mine, theirs = (
        verify_ticket(t, [TRACKER.certificate_der], now)
        for t in (answer.relay_ticket, session.relay_ticket)
    )
    assert mine.session == theirs.session
    assert len(mine.session) == SESSION_BYTES
    assert (mine.side, theirs.side) == (
        relay_pb2.RELAY_SIDE_DOWNLOADING,
        relay_pb2.RELAY_SIDE_SERVING,
    )
    for ticket in (mine, theirs):
        assert ticket.expires_at == 1_000_000 + TICKET_SECONDS
        assert (ticket.serving_peer, ticket.downloader) == (joined.peer_id, OUTSIDE)
    assert not answer.secret  # the relay path has no reverse secret


def test_without_a_relay_a_relay_connect_is_unavailable(world):
    index, board, joined, _ = world
    with pytest.raises(RelayUnavailableError):
        Connects(index, board).connect(OUTSIDE, joined.peer_id, RELAY)


@pytest.mark.parametrize(
    ("path", "port", "reason"),
    [
        (tracker_pb2.CONNECT_PATH_UNSPECIFIED, 1, reasons.CONNECT_PATH_INVALID),
        (7, 1, reasons.CONNECT_PATH_INVALID),
        (REVERSE, 0, reasons.ADDRESS_INVALID),
        (REVERSE, 70000, reasons.ADDRESS_INVALID),
    ],
)
def test_a_connect_without_a_path_or_port_is_invalid(world, path, port, reason):
    index, board, joined, _ = world
    with pytest.raises(InvalidRequestError) as caught:
        Connects(index, board).connect(OUTSIDE, joined.peer_id, path, port)
    assert caught.value.reason == reason


def test_unknown_malformed_and_anonymous_peers_are_refused(world):
    index, board, _, _ = world
    connects = Connects(index, board)
    with pytest.raises(UnknownPeerError):
        connects.connect(OUTSIDE, "10.9.9.9:1", REVERSE, 1)
    with pytest.raises(InvalidRequestError) as caught:
        connects.connect(OUTSIDE, "no port", REVERSE, 1)
    assert caught.value.reason == reasons.PEER_ID_INVALID
    anonymous = index.join("10.0.0.5", 1, [ENTRY], "10.0.0.5")
    board.register(anonymous.peer_id, anonymous.token)
    with pytest.raises(AnonymousPeerError):
        connects.connect(OUTSIDE, anonymous.peer_id, REVERSE, 1)


def test_a_caller_is_held_to_its_rate_and_told_when_to_come_back(world):
    index, board, joined, _ = world
    clock = Clock()
    connects = Connects(index, board, rate=2, max_peer_dials=100, clock=clock)
    for _ in range(8):  # a burst of four seconds of the rate
        connects.connect(OUTSIDE, joined.peer_id, REVERSE, 1)
    with pytest.raises(ConnectRateError) as caught:
        connects.connect(OUTSIDE, joined.peer_id, REVERSE, 1)
    assert caught.value.retry_delay == pytest.approx(0.5)
    connects.connect(HOME, joined.peer_id, REVERSE, 1)  # another caller has its own bucket
    clock.now += 0.5
    connects.connect(OUTSIDE, joined.peer_id, REVERSE, 1)


def test_a_peer_gets_at_most_its_pending_dials_until_they_are_old(world):
    index, board, joined, _ = world
    clock = Clock()
    connects = Connects(index, board, max_peer_dials=3, clock=clock)
    for caller in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
        connects.connect(caller, joined.peer_id, REVERSE, 1)
    with pytest.raises(DialsBusyError) as caught:
        connects.connect("203.0.113.4", joined.peer_id, REVERSE, 1)
    assert caught.value.retry_delay == pytest.approx(PENDING_SECONDS)
    clock.now += PENDING_SECONDS
    connects.connect("203.0.113.4", joined.peer_id, REVERSE, 1)


def test_a_connect_from_no_ip_address_is_refused(world):
    index, board, joined, _ = world
    with pytest.raises(InvalidRequestError) as caught:
        Connects(index, board).connect(None, joined.peer_id, REVERSE, 1)
    assert caught.value.reason == reasons.CALLER_ADDRESS_UNKNOWN


def test_callers_of_one_ipv6_network_share_one_rate(world):
    index, board, joined, _ = world
    clock = Clock()
    connects = Connects(index, board, rate=2, max_peer_dials=100, clock=clock)
    # Eight addresses of one /64, a call each: the burst of four seconds is theirs together.
    for n in range(1, 9):
        connects.connect(f"2001:db8:7:1::{n:x}", joined.peer_id, REVERSE, 1)
    with pytest.raises(ConnectRateError) as caught:
        connects.connect("2001:db8:7:1:abcd::9", joined.peer_id, REVERSE, 1)
    assert "2001:db8:7:1::/64" in str(caught.value)
    connects.connect("2001:db8:7:2::1", joined.peer_id, REVERSE, 1)  # another /64


def test_a_caller_from_the_peers_ipv6_network_gets_its_local_addresses():
    index = TrackerIndex()
    board: Switchboard[tracker_pb2.ListenResponse] = Switchboard()
    joined = index.join(
        "2001:db8:5::20",
        8776,
        [ENTRY],
        "2001:db8:5::20",
        identity="f" * 64,
        local_addresses=("[fd00::20]:8776",),
    )
    board.register(joined.peer_id, joined.token)
    connects = Connects(index, board)
    near = connects.connect("2001:db8:5::99", joined.peer_id, REVERSE, 1)
    assert list(near.local_addresses) == ["[fd00::20]:8776"]
    far = connects.connect("2001:db8:6::99", joined.peer_id, REVERSE, 1)
    assert list(far.local_addresses) == []


@pytest.mark.parametrize(
    ("seen", "own", "behind"),
    [
        (OUTSIDE, "192.168.1.9", True),  # a home router's LAN address: a NAT
        (OUTSIDE, OUTSIDE, False),  # its own address is the one seen: a dial may get in
        (OUTSIDE, f"::ffff:{OUTSIDE}", False),  # the same address, IPv4-mapped
        (OUTSIDE, "2001:db8::9", False),  # another family: nothing to compare, dial anyway
        (OUTSIDE, "", False),  # not given: dial, as callers did before caller_ip
    ],
)
def test_a_caller_behind_a_nat_is_told_so_and_nobody_is_asked_to_dial_it(world, seen, own, behind):
    index, board, joined, listener = world
    connects = Connects(index, board)
    answer = connects.connect(seen, joined.peer_id, REVERSE, 40000, own)
    assert answer.caller_behind_nat is behind
    assert answer.dialing is not behind
    if behind:
        assert not answer.session
        assert connects.answered()["behind_nat"] == 1
        assert listener.next(0.2) is None
    else:
        assert listener.next(1).reverse_dial.session == answer.session


def test_a_caller_behind_a_nat_still_gets_the_local_addresses_of_a_peer_on_its_network(world):
    index, board, joined, _ = world
    answer = Connects(index, board).connect(HOME, joined.peer_id, REVERSE, 40000, "10.0.0.9")
    assert answer.caller_behind_nat
    assert list(answer.local_addresses) == ["192.168.1.20:8776"]


def test_a_caller_ip_that_is_no_ip_address_is_invalid(world):
    index, board, joined, _ = world
    with pytest.raises(InvalidRequestError) as caught:
        Connects(index, board).connect(OUTSIDE, joined.peer_id, REVERSE, 1, "home.lan")
    assert caught.value.reason == reasons.ADDRESS_INVALID
