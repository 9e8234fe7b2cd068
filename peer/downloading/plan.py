"""Which pieces each stream of one download fetches, so that every source works at once.

A stream first takes the lowest run of pieces nobody has claimed; when none is left, it takes
the tail of the largest claim, a share of it in proportion to the two peers' rates (so faster
peers get more of the file); when every claim is down to the piece its stream is receiving,
it asks for that piece too (BitTorrent's end-game), and the slower stream is superseded once
the piece is in. A stream that fails releases its claim, and the pieces go to the others.
No I/O and no gRPC: the download engine's threads share a Plan, which guards itself.
"""

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

# Seconds a stream in the end-game may go without a piece before a stream from an idle peer
# may take its place on that piece.
END_GAME_PATIENCE = 5.0


@dataclass(eq=False)
class Claim:
    """The pieces [`start`, `end`) that `peer`'s stream is asked for, `next` the one it
    receives now. `end` shrinks when another stream takes the tail; `superseded` is set when
    others verified every piece left to it (the stream then stops).
    """

    peer: str
    start: int
    next: int
    end: int
    asked_end: int  # `end` when the stream was asked: the range of its request
    duplicate: bool = False  # end-game: another stream fetches these pieces too
    started: float = field(default_factory=time.monotonic)
    progressed: float = field(default_factory=time.monotonic)  # when it last verified a piece
    pieces: int = 0  # pieces this stream verified
    superseded: threading.Event = field(default_factory=threading.Event)

    @property
    def left(self) -> int:
        """Pieces not yet started: the ones after `next` up to `end`."""
        return max(0, self.end - self.next - 1)


class Plan:
    """The pieces of one file: which are verified, and which stream fetches which.

    `done[i]` is non-zero for the pieces already verified (a resumed part's); `streams_per_piece`
    caps how many streams may fetch one piece at once in the end-game, `streams_per_peer` how
    many streams one peer may have (each with a claim of its own; never two on one piece).
    """

    def __init__(
        self, done: Iterable[int], *, streams_per_piece: int = 2, streams_per_peer: int = 1
    ) -> None:
        self._done = bytearray(1 if d else 0 for d in done)
        self._left = self._done.count(0)
        self._claims: list[Claim] = []
        self._rates: dict[str, float] = {}  # pieces per second each peer's last stream gave
        self._per_piece = streams_per_piece
        self._per_peer = streams_per_peer
        self._dropped: set[str] = set()
        self._lock = threading.Lock()

    @property
    def complete(self) -> bool:
        """Whether every piece is verified."""
        return self._left == 0

    @property
    def left(self) -> int:
        """How many pieces are not verified."""
        return self._left

    def claim(self, peer: str) -> Claim | None:
        """Work for a new stream from `peer`, or None when there is none it could do."""
        with self._lock:
            if peer in self._dropped or sum(c.peer == peer for c in self._claims) >= self._per_peer:
                return None
            run = self._free_run()
            if run is not None:
                return self._add(Claim(peer, run[0], run[0], run[1], run[1]))
            victim = max(
                (c for c in self._claims if not c.duplicate), key=lambda c: c.left, default=None
            )
            if victim is not None and victim.left > 0:
                share = self._share(peer, victim)
                middle = victim.end - share
                claim = Claim(peer, middle, middle, victim.end, victim.end)
                victim.end = middle
                return self._add(claim)
            return self._end_game(peer)

    def advance(self, claim: Claim, index: int) -> tuple[bool, bool]:
        """`claim`'s stream verified piece `index` (its `next`): (new, go on).

        `new` is false when another stream had verified it first; `go on` is false when the
        stream has nothing left to fetch (its claim ended or was superseded).
        """
        with self._lock:
            new = not self._done[index]
            if new:
                self._done[index] = 1
                self._left -= 1
            claim.next = index + 1
            claim.pieces += 1
            claim.progressed = time.monotonic()
            for other in self._claims:
                if other is not claim and other.next <= index < other.end and self._all_done(other):
                    other.superseded.set()
            return new, claim.next < claim.end and not claim.superseded.is_set()

    def drop(self, peer: str) -> None:
        """`peer` gets no more claims, and its streams stop (their claims are superseded: what
        they leave goes to the others once released).
        """
        with self._lock:
            self._dropped.add(peer)
            for claim in self._claims:
                if claim.peer == peer:
                    claim.superseded.set()

    def release(self, claim: Claim) -> None:
        """`claim`'s stream ended; the pieces it did not verify are free for others."""
        with self._lock:
            if claim in self._claims:
                self._claims.remove(claim)
            elapsed = time.monotonic() - claim.started
            if claim.pieces and elapsed > 0:
                self._rates[claim.peer] = claim.pieces / elapsed

    def _add(self, claim: Claim) -> Claim:
        self._claims.append(claim)
        return claim

    def _free_run(self) -> tuple[int, int] | None:
        """The lowest run of pieces neither verified nor claimed (a duplicate claims nothing)."""
        taken = bytearray(self._done)
        for c in self._claims:
            if not c.duplicate:
                taken[c.next : c.end] = b"\1" * max(0, c.end - c.next)
        start = taken.find(0)
        if start < 0:
            return None
        end = taken.find(1, start)
        return start, len(taken) if end < 0 else end

    def _share(self, thief: str, victim: Claim) -> int:
        """How many of `victim`'s pieces not yet started `thief` takes: in proportion to their
        rates (half when `thief`'s is not known yet), at least one.
        """
        now = time.monotonic()
        elapsed = now - victim.started
        victim_rate = victim.pieces / elapsed if victim.pieces and elapsed > 0 else 0.0
        victim_rate = victim_rate or self._rates.get(victim.peer, 0.0)
        thief_rate = self._rates.get(thief, 0.0)
        if thief_rate <= 0 or victim_rate <= 0:
            fraction = 0.5
        else:
            fraction = thief_rate / (thief_rate + victim_rate)
        return max(1, min(victim.left, round(victim.left * fraction)))

    def _end_game(self, peer: str) -> Claim | None:
        """Another stream on the piece waited on longest that may have one more; when each has
        its streams, one in place of the stream longest without a piece, if that is longer
        than END_GAME_PATIENCE (two slow peers never hold the last piece against a fast one).
        """
        pending = sorted(
            (
                c
                for c in self._claims
                if c.next < c.end
                and not self._all_done(c)
                and all(o.peer != peer for o in self._covering(c.next))
            ),
            key=lambda c: c.progressed,
        )
        for claim in pending:
            if len(self._covering(claim.next)) < self._per_piece:
                return self._add(Claim(peer, claim.next, claim.next, claim.end, claim.end, True))
        if not pending:
            return None
        stale = min(self._covering(pending[0].next), key=lambda c: c.progressed)
        if time.monotonic() - stale.progressed < END_GAME_PATIENCE:
            return None
        stale.superseded.set()
        self._claims.remove(stale)
        return self._add(Claim(peer, stale.next, stale.next, stale.end, stale.end, True))

    def _covering(self, index: int) -> list[Claim]:
        return [c for c in self._claims if c.next <= index < c.end]

    def _all_done(self, claim: Claim) -> bool:
        return self._done.find(0, claim.next, claim.end) < 0 if claim.next < claim.end else True
