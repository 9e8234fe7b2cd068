"""Sessions without sockets: pairing, one-time sides, caps, and used tickets forgotten in time."""

import pytest
from napshare.common.relay_wire import CLOCK_SKEW, TicketError
from napshare.relay.caps import RelayCaps
from napshare.relay.sessions import Sessions
from napshare.v1 import relay_pb2

SERVING = relay_pb2.RELAY_SIDE_SERVING
DOWNLOADING = relay_pb2.RELAY_SIDE_DOWNLOADING
NOW = 1_900_000_000.0


def ticket(
    session: bytes, side: int, peer: str = "203.0.113.20:8776", expires_at: float = NOW + 60
) -> relay_pb2.RelayTicket:
    return relay_pb2.RelayTicket(
        session=session * 16,
        side=side,  # type: ignore[arg-type]
        expires_at=int(expires_at),
        serving_peer=peer,
    )


def test_one_side_of_each_makes_a_pair_with_both_connections() -> None:
    sessions: Sessions[str] = Sessions(RelayCaps())

    first = sessions.arrive(ticket(b"a", DOWNLOADING), "downloader", NOW)
    assert not first.paired
    assert sessions.counts() == (0, 1)
    second = sessions.arrive(ticket(b"a", SERVING), "server", NOW)

    assert second is first
    assert (first.paired, first.serving, first.downloading) == (True, "server", "downloader")
    assert sessions.counts() == (1, 0)
    sessions.leave(first)
    assert sessions.counts() == (0, 0)


def test_a_side_shown_again_is_refused_even_after_its_session_ended() -> None:
    sessions: Sessions[str] = Sessions(RelayCaps())
    session = sessions.arrive(ticket(b"a", SERVING), "one", NOW)
    sessions.leave(session)

    with pytest.raises(TicketError, match="already shown") as caught:
        sessions.arrive(ticket(b"a", SERVING), "two", NOW)
    assert caught.value.code == relay_pb2.RELAY_ANSWER_CODE_TICKET_INVALID


def test_used_tickets_are_forgotten_once_they_expire_and_no_sooner() -> None:
    sessions: Sessions[str] = Sessions(RelayCaps())
    for name in (b"a", b"b", b"c"):
        sessions.leave(sessions.arrive(ticket(name, SERVING), "x", NOW))
    expiry = NOW + 60 + CLOCK_SKEW
    later = NOW + 120

    sessions.leave(sessions.arrive(ticket(b"d", SERVING, expires_at=later), "x", expiry))
    assert sessions.remembered() == 4
    sessions.leave(sessions.arrive(ticket(b"e", SERVING, expires_at=later), "x", expiry + 1))
    assert sessions.remembered() == 2  # d and e; a, b and c expired


def test_a_new_session_past_a_cap_is_full_and_uses_nothing_up() -> None:
    sessions: Sessions[str] = Sessions(RelayCaps(sessions=2, sessions_per_peer=1))
    sessions.arrive(ticket(b"a", SERVING), "x", NOW)

    with pytest.raises(TicketError, match="of this peer") as caught:
        sessions.arrive(ticket(b"b", SERVING), "x", NOW)
    assert caught.value.code == relay_pb2.RELAY_ANSWER_CODE_FULL
    sessions.arrive(ticket(b"c", SERVING, peer="198.51.100.1:1"), "x", NOW)
    with pytest.raises(TicketError, match="as many sessions as it allows"):
        sessions.arrive(ticket(b"d", SERVING, peer="198.51.100.2:1"), "x", NOW)
    assert sessions.remembered() == 2
    # The second side of a session already counted is never refused as full.
    assert sessions.arrive(ticket(b"a", DOWNLOADING), "y", NOW).paired


def test_leaving_twice_or_a_session_not_there_changes_nothing() -> None:
    sessions: Sessions[str] = Sessions(RelayCaps(sessions_per_peer=1))
    session = sessions.arrive(ticket(b"a", SERVING), "x", NOW)
    sessions.leave(session)
    sessions.leave(session)

    assert sessions.counts() == (0, 0)
    sessions.arrive(ticket(b"b", SERVING), "x", NOW)  # the peer's one slot is free
    assert sessions.counts() == (0, 1)
