"""A realistic shared-file catalog for loading the tracker, and its requests as wire bytes.

Names look like `cs101-lecture-0042-intro-to-distributed-systems.mp4`. Peers pick files by a
Zipf-like popularity, so a few files are shared by thousands of peers and most by a handful.
Requests are encoded once into protobuf bytes so the load costs the loader almost nothing.
"""

import hashlib
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

from napshare.v1 import file_info_pb2, tracker_pb2

_COURSES = [
    f"{dept}{number}"
    for dept in ("cs", "ee", "math", "phys", "bio", "chem", "econ", "hist", "art", "mus")
    for number in (101, 102, 110, 201, 220, 250, 301, 340, 410, 450)
]
_KINDS = ["lecture", "lab", "seminar", "talk", "tutorial", "recitation", "review", "demo"]
_TOPICS = (
    "intro to distributed systems consensus raft paxos replication sharding caching "
    "networks sockets protocols routing congestion control security crypto hashing "
    "databases indexes transactions recovery logging storage filesystems kernels "
    "scheduling memory paging threads locks concurrency parallel gpu compilers parsing "
    "types lambda calculus algebra linear calculus probability statistics graphs trees "
    "sorting search dynamic programming greedy flows matching geometry signals circuits "
    "quantum mechanics optics thermodynamics genetics evolution cells proteins ecology "
    "markets auctions games history renaissance baroque jazz harmony rhythm painting "
    "sculpture film editing color lighting design review final midterm exam part one two "
    "three advanced basics overview deep dive case study project workshop"
)
_WORDS = _TOPICS.split()
_EXTENSIONS = ["mp4"] * 6 + ["mkv", "webm", "pdf", "pdf", "mp3", "avi"]
_HOSTS_PER_OCTET = 250


@dataclass(frozen=True)
class Entry:
    """One distinct shared file: what every peer that has it announces."""

    name: str
    size: int
    sha256: str


def _name(rng: random.Random, serial: int) -> str:
    course, kind = rng.choice(_COURSES), rng.choice(_KINDS)
    topic = "-".join(rng.sample(_WORDS, rng.randint(2, 4)))
    return f"{course}-{kind}-{serial:04d}-{topic}.{rng.choice(_EXTENSIONS)}"


def make_catalog(distinct: int, seed: int = 42) -> list[Entry]:
    """`distinct` different files, most popular first, with sizes and stable fake digests."""
    rng = random.Random(seed)
    entries: list[Entry] = []
    seen: set[str] = set()
    for serial in itertools.count():
        if len(entries) == distinct:
            break
        name = _name(rng, serial % 10000)
        if name in seen:
            continue
        seen.add(name)
        big = name.endswith(("mp4", "mkv", "webm", "avi"))
        size = rng.randint(50_000_000, 2_500_000_000) if big else rng.randint(100_000, 20_000_000)
        entries.append(Entry(name, size, hashlib.sha256(name.encode()).hexdigest()))
    return entries


def peer_host(index: int) -> str:
    """A distinct private IPv4 address per peer (announced, never contacted)."""
    high, rest = divmod(index, _HOSTS_PER_OCTET**2)
    middle, low = divmod(rest, _HOSTS_PER_OCTET)
    return f"10.{high % 256}.{middle}.{low + 1}"


def pick_files(
    catalog: list[Entry], peers: int, per_peer: int, exponent: float = 0.9, seed: int = 7
) -> Iterator[list[int]]:
    """For each peer, `per_peer` distinct catalog indexes drawn by Zipf popularity."""
    rng = random.Random(seed)
    weights = list(itertools.accumulate(1 / (rank + 1) ** exponent for rank in range(len(catalog))))
    population = range(len(catalog))
    for _ in range(peers):
        chosen: set[int] = set()
        while len(chosen) < per_peer:
            chosen.update(rng.choices(population, cum_weights=weights, k=per_peer - len(chosen)))
        yield sorted(chosen)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


class Encoder:
    """Turns catalog indexes into serialized JoinRequest bytes, each FileInfo encoded once."""

    def __init__(self, catalog: list[Entry]) -> None:
        self._catalog = catalog
        self._files: dict[int, bytes] = {}

    def _file(self, index: int) -> bytes:
        encoded = self._files.get(index)
        if encoded is None:
            entry = self._catalog[index]
            info = file_info_pb2.FileInfo(name=entry.name, size=entry.size, sha256=entry.sha256)
            body = info.SerializeToString()
            encoded = b"\x1a" + _varint(len(body)) + body
            self._files[index] = encoded
        return encoded

    def join(self, host: str, port: int, indexes: list[int]) -> bytes:
        """A JoinRequest for a peer at host:port sharing the given catalog files."""
        head = tracker_pb2.JoinRequest(host=host, port=port).SerializeToString()
        return head + b"".join(self._file(index) for index in indexes)


def exact_searches(names: list[str], count: int, seed: int = 11) -> list[bytes]:
    """Search-by-name requests for `count` names drawn uniformly from `names`, without repeats
    while there are names enough, so that caching answers gains only what repetition gives."""
    rng = random.Random(seed)
    picked = rng.sample(names, count) if count <= len(names) else rng.choices(names, k=count)
    return [tracker_pb2.SearchRequest(name=name).SerializeToString() for name in picked]


def keyword_queries(catalog: list[Entry], count: int, seed: int = 13) -> list[str]:
    """What users type: two or three words of a popular file's name (first 1% of the catalog),
    each query different, up to `count` of them."""
    rng = random.Random(seed)
    head = catalog[: max(1, len(catalog) // 100)]
    queries: dict[str, None] = {}
    for _ in range(count * 20):
        if len(queries) == count:
            break
        words = [w for w in rng.choice(head).name.rsplit(".", 1)[0].split("-") if w != "to"]
        queries[" ".join(rng.sample(words, min(len(words), rng.choice((2, 3)))))] = None
    return list(queries)


def keyword_searches(queries: list[str]) -> list[bytes]:
    """Search-by-keywords requests for the given queries."""
    return [tracker_pb2.SearchRequest(query=q).SerializeToString() for q in queries]
