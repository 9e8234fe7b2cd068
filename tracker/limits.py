"""The tracker's size limits, per source address and for the whole index: one home for each default.

Limits count what a request would leave in memory: registrations, (peer, file) entries and
UTF-8 bytes of file names. An address's names count once per registration that announces
them; the whole index's, once per distinct name (what memory holds). Per-address limits
count by the IP address a call comes from, not the host a Join claims.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """How much one source address, and the whole index, may register (each at least 1)."""

    # Many honest peers can share one IP (an office or campus NAT, a carrier's CGNAT); a
    # registration costs well under a kilobyte, and the two below bound what they share.
    peers_per_address: int = 64
    files_per_address: int = 100_000
    name_bytes_per_address: int = 16 * MIB
    # Measured RSS: ~116 B an entry when names are shared (BENCHMARKS.md, 1,000,000 entries);
    # a distinct name adds ~230 B plus ~5.3 B per byte (the string and its trigrams). The
    # worst case, 2,000,000 distinct names in 64 MiB, is about 820 MB.
    peers: int = 100_000
    files: int = 2_000_000
    name_bytes: int = 64 * MIB

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"limit {field.name} must be a whole number of at least 1")


def flag(limit: str) -> str:
    """The napshare-tracker flag that sets the Limits field `limit`."""
    return "--max-" + limit.replace("_", "-")
