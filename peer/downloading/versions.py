"""The versions of one file name that a search lists, best first: the order a download tries
them in, and the one `search` shows them in.

A version is one (size, sha256, pieces root). Listings cost an attacker nothing (any number
of ports, identities and made-up digests), so how many listings a version has says little.
What costs is addresses, and being where one claims to be: versions are ranked by the address
blocks (common.address.address_block: an IPv4 /24, an IPv6 /64) that list them from where the
tracker reached and pinned them, then by the blocks that list them at all, and only then by
their listings.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from napshare.common.address import address_block
from napshare.peer.tracker_client import Source


@dataclass(frozen=True)
class Version:
    """One version of a file and the sources that list it, in the tracker's order."""

    size: int
    sha256: str
    pieces_root: str
    sources: tuple[Source, ...]
    blocks: int  # distinct address blocks among its sources
    reached_blocks: int  # distinct address blocks among the sources the tracker reached

    @property
    def key(self) -> tuple[int, str, str]:
        return (self.size, self.sha256, self.pieces_root)

    @property
    def peers(self) -> list[str]:
        return [s.peer for s in self.sources]

    def matches(self, sha256: str = "", pieces_root: str = "") -> bool:
        """Whether this is the version with this sha256 and pieces root ("": any)."""
        return sha256 in ("", self.sha256) and pieces_root in ("", self.pieces_root)


def versions_of(sources: Iterable[Source]) -> list[Version]:
    """The versions `sources` list, best first (see the module); ties keep the tracker's order."""
    groups: dict[tuple[int, str, str], list[Source]] = {}
    blocks: dict[str, str] = {}  # by host: each is worked out once
    for source in sources:
        groups.setdefault((source.size, source.sha256, source.pieces_root), []).append(source)
        host = source.peer.rpartition(":")[0]  # peer ids are in normal form (tracker_client)
        if host not in blocks:
            blocks[host] = address_block(host)
    versions = [
        Version(
            size,
            sha256,
            root,
            tuple(listed),
            len({blocks[s.peer.rpartition(":")[0]] for s in listed}),
            len({blocks[s.peer.rpartition(":")[0]] for s in listed if s.reachable}),
        )
        for (size, sha256, root), listed in groups.items()
    ]
    return sorted(versions, key=lambda v: (-v.reached_blocks, -v.blocks, -len(v.sources)))


def matching(versions: Sequence[Version], sha256: str, pieces_root: str) -> list[Version]:
    """The versions with this sha256 and pieces root ("": any), in their order."""
    return [v for v in versions if v.matches(sha256, pieces_root)]
