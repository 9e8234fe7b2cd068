"""Sessions: one SERVING and one DOWNLOADING ticket of a session paired, each ticket used once.

No sockets here: a side's connection is any object. A (session, side) is remembered from its
first use until its ticket expires (plus the clock skew allowed), so a ticket shown twice, or
a second ticket of a side already shown, is refused. A session counts against the caps from
its first side's arrival until it ends, paired or not.
"""

from __future__ import annotations

import heapq
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from napshare.common.relay_wire import CLOCK_SKEW, TicketError
from napshare.relay.caps import RelayCaps
from napshare.v1 import relay_pb2

Conn = TypeVar("Conn")

# Tickets remembered at most; past it new sessions are answered FULL. A tracker gives at most
# a few tickets a second per caller (its connect rate), each remembered for 90 s at most.
MAX_REMEMBERED = 200_000


@dataclass(eq=False)
class Session(Generic[Conn]):
    """One session: its id, its serving peer, and the sides that arrived."""

    id: bytes
    serving_peer: str
    sides: dict[int, Conn] = field(default_factory=dict)
    paired: bool = False

    @property
    def serving(self) -> Conn:
        """The serving side's connection (once paired)."""
        return self.sides[relay_pb2.RELAY_SIDE_SERVING]

    @property
    def downloading(self) -> Conn:
        """The downloading side's connection (once paired)."""
        return self.sides[relay_pb2.RELAY_SIDE_DOWNLOADING]


class Sessions(Generic[Conn]):
    """The sessions of one relay, waiting or paired, and the tickets already used. Thread-safe."""

    def __init__(self, caps: RelayCaps) -> None:
        self._caps = caps
        self._lock = threading.Lock()
        self._sessions: dict[bytes, Session[Conn]] = {}
        self._per_peer: Counter[str] = Counter()
        self._used: dict[tuple[bytes, int], float] = {}
        self._expiries: list[tuple[float, bytes, int]] = []

    def arrive(self, ticket: relay_pb2.RelayTicket, conn: Conn, now: float) -> Session[Conn]:
        """Let one side in with a verified `ticket` at `now` (Unix seconds).

        Returns its session: paired if the other side was waiting, else waiting for it.
        Raises TicketError: TICKET_INVALID for a side of a session already shown, FULL when
        a new session would pass a cap (the ticket stays unused then).
        """
        key = (ticket.session, int(ticket.side))
        with self._lock:
            self._forget(now)
            if key in self._used:
                raise TicketError(
                    relay_pb2.RELAY_ANSWER_CODE_TICKET_INVALID,
                    "this side of the session was already shown: ask the tracker again",
                )
            session = self._sessions.get(ticket.session)
            if session is None:
                self._check_room(ticket.serving_peer)
                session = Session(ticket.session, ticket.serving_peer)
                self._sessions[ticket.session] = session
                self._per_peer[session.serving_peer] += 1
            self._remember(key, ticket.expires_at + CLOCK_SKEW)
            session.sides[key[1]] = conn
            session.paired = len(session.sides) == 2
            return session

    def leave(self, session: Session[Conn]) -> None:
        """End `session`, paired or not (its tickets stay used): its slot is free again."""
        with self._lock:
            if self._sessions.get(session.id) is not session:
                return
            del self._sessions[session.id]
            self._per_peer[session.serving_peer] -= 1
            if not self._per_peer[session.serving_peer]:
                del self._per_peer[session.serving_peer]

    def counts(self) -> tuple[int, int]:
        """Sessions paired, and sessions waiting for their other side."""
        with self._lock:
            paired = sum(1 for session in self._sessions.values() if session.paired)
            return paired, len(self._sessions) - paired

    def remembered(self) -> int:
        """Tickets remembered as used."""
        with self._lock:
            return len(self._used)

    def _check_room(self, serving_peer: str) -> None:
        full = relay_pb2.RELAY_ANSWER_CODE_FULL
        if len(self._sessions) >= self._caps.sessions:
            raise TicketError(full, "the relay carries as many sessions as it allows")
        if self._per_peer[serving_peer] >= self._caps.sessions_per_peer:
            raise TicketError(full, "the relay carries as many sessions of this peer as it allows")
        if len(self._used) >= MAX_REMEMBERED:
            raise TicketError(full, "the relay remembers as many tickets as it can")

    def _remember(self, key: tuple[bytes, int], until: float) -> None:
        self._used[key] = until
        heapq.heappush(self._expiries, (until, *key))

    def _forget(self, now: float) -> None:
        """Drop the used tickets that have expired: verify_ticket refuses them anyway."""
        while self._expiries and self._expiries[0][0] < now:
            _until, session, side = heapq.heappop(self._expiries)
            self._used.pop((session, side), None)
