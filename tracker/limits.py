"""The tracker's size limits, per source address and for the whole index: one home for each default.

Limits count what a request would leave in memory: registrations, (peer, file) entries and
UTF-8 bytes of file names. An address's names count once per registration that announces
them; the whole index's, once per distinct name (what memory holds). Per-address limits
count by the IP address a call comes from, not the host a Join claims.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from napshare.common import reasons
from napshare.tracker.errors import CapacityError

MIB = 1024 * 1024
# Connections the tracker's gRPC server holds at once (--max-connections), within its open
# files, and from one address (--max-connections-per-address): every peer keeps one, a NAT's
# dozens of peers one each (peers_per_address), downloaders one per search or download.
MAX_CONNECTIONS = 16_384
MAX_CONNECTIONS_PER_ADDRESS = 128


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


# The order in which a Join or Update is checked against the limits: the first one passed is
# the one reported. The per-address ones apply only to calls that come from an address.
PER_ADDRESS = ("peers_per_address", "files_per_address", "name_bytes_per_address")
WHOLE_INDEX = ("peers", "files", "name_bytes")
WHOLE_INDEX_WHO = "the tracker"


def address_who(source: str) -> str:
    """How a limit's message names the address `source`."""
    return f"address {source}"


def check(whose: str, limit: str, current: int, added: int, limits: Limits) -> None:
    """CapacityError if `current` + `added` passes the limit named `limit`, and grows."""
    value = getattr(limits, limit)
    if added > 0 and current + added > value:
        raise exceeded(whose, limit, current + added, value)


def exceeded(whose: str, limit: str, after: int, value: int) -> CapacityError:
    """The error for `whose` (an address, or the tracker) reaching `after` of `limit`, whose
    value is `value`.
    """
    what = _COUNTED[limit]
    return CapacityError(
        f"{whose} would have {after:,} {what}; the limit is {value:,} ({flag(limit)})",
        reason=_REASONS[limit],
        metadata={"limit": str(value), "flag": flag(limit)},
    )


def too_many_files(peer_id: str, files: int, max_files: int) -> CapacityError:
    """The error for an Update that would leave one registration with `files` files."""
    return CapacityError(
        f"peer {peer_id} would share {files} files; the limit is {max_files} per peer",
        metadata={"limit": str(max_files)},
    )


_COUNTED = {
    "peers_per_address": "registrations",
    "files_per_address": "files",
    "name_bytes_per_address": "bytes of file names",
    "peers": "registrations",
    "files": "files",
    "name_bytes": "bytes of file names",
}
_REASONS = {
    "peers_per_address": reasons.ADDRESS_PEER_LIMIT,
    "files_per_address": reasons.ADDRESS_FILE_LIMIT,
    "name_bytes_per_address": reasons.ADDRESS_NAME_BYTES_LIMIT,
    "peers": reasons.INDEX_PEER_LIMIT,
    "files": reasons.INDEX_FULL,
    "name_bytes": reasons.INDEX_NAME_BYTES_LIMIT,
}
