"""One version of the file a download fetches (size, sha256, pieces root) and its sources:
which may be asked now, which are busy until when, which failed, lied or left.
"""

import time
from collections.abc import Iterator

from napshare.peer.errors import PeerError
from napshare.peer.tracker_client import Source


class Target:
    """One version (size, sha256, pieces root) of the file and the peers that have it, in
    asking order. Every operation on one peer is O(1) and the asking order is walked lazily,
    so a version listed by a hundred thousand peers costs no more per peer than one by two.
    """

    def __init__(self, size: int, sha256: str, pieces_root: str, peers: list[str]) -> None:
        self.size = size
        self.sha256 = sha256
        self.pieces_root = pieces_root
        self._order: dict[str, None] = {}  # the asking order (a dict keeps insertion order)
        self.banned: set[str] = set()  # their bytes failed verification, or they broke rules
        self.impostors: set[str] = set()  # banned: another certificate than the tracker lists
        self.dropped: set[str] = set()  # they do not have this version
        self.warned: set[str] = set()  # the user was told they failed
        self.told = 0  # failures told by name (the engine tells at most TOLD_FAILURES)
        self.not_before: dict[str, float] = {}  # busy peers: monotonic time to ask them again
        self.failures: dict[str, PeerError] = {}  # each peer's last failure since it sent
        self.listed: set[str] = set()  # the tracker listed them with this version
        self.unlisted: set[str] = set()  # listed once, not any more: they left or expired
        self.kept = False  # the part held bytes of this version when it failed
        self.add(peers)

    @property
    def order(self) -> list[str]:
        return list(self._order)

    def knows(self, peer: str) -> bool:
        return peer in self._order

    def usable(self, peer: str) -> bool:
        """Whether `peer` may still be asked for this version (now or later)."""
        return peer not in self.banned and peer not in self.dropped and peer not in self.unlisted

    def candidates(self) -> list[str]:
        return [p for p in self._order if self.usable(p)]

    def down(self) -> list[PeerError]:
        """The failures of the candidates, if no connection to any of them could be made
        since they last sent (else []): nobody can be reached now.
        """
        failures = [self.failures.get(p) for p in self.candidates()]
        if not failures or any(f is None or f.reached for f in failures):
            return []
        return [f for f in failures if f is not None]

    def all_failed(self) -> bool:
        """Whether every candidate failed since it last sent (none is untried or sending)."""
        candidates = self.candidates()
        return bool(candidates) and all(p in self.failures for p in candidates)

    def ready(self, now: float) -> Iterator[str]:
        """The candidates that may be asked at `now` (busy ones only once their wait is
        over), in asking order, walked lazily: take what is needed and drop the rest.
        """
        return (p for p in self._order if self.usable(p) and self.not_before.get(p, now) <= now)

    def any_ready(self, now: float) -> bool:
        return next(self.ready(now), None) is not None

    def wait(self, now: float) -> float:
        """Seconds from `now` until some candidate may be asked; 0 if one may be now."""
        waits = [self.not_before.get(p, now) - now for p in self.candidates()]
        return max(0.0, min(waits, default=0.0))

    def to_back(self, peer: str) -> None:
        self._order.pop(peer, None)
        self._order[peer] = None

    def add(self, peers: list[str]) -> None:
        for peer in peers:
            self._order.setdefault(peer, None)

    def has(self, source: Source) -> bool:
        """Whether `source` offers this version."""
        return (source.size, source.sha256, source.pieces_root) == (
            self.size,
            self.sha256,
            self.pieces_root,
        )


def following(target: Target, peer: str) -> str | None:
    """The next peer to ask after `peer` fails, or None when there is none now."""
    return next((p for p in target.ready(time.monotonic()) if p != peer), None)
