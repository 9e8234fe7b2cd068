"""Swarm memory: the downloading client's peak RSS with four uncapped serving peers, per file
size: under 100 MiB and flat from the smallest size to the largest (issue 10).
"""

import contextlib
import shutil
import sys
from dataclasses import dataclass

from tests.bench import swarm
from tests.bench.config import Config
from tests.bench.files import MIB, format_size, make_sparse_file
from tests.bench.memory import DOWNLOADS, GROWTH_SLACK, SWARM_LIMIT
from tests.bench.report import Row, Section

PEERS = 4


@dataclass(frozen=True)
class Peak:
    """The client's highest peak RSS over its downloads of one size, and how many sources each
    download says it used.
    """

    size: int
    clients: list[int]  # each download's peak
    sources: list[int | None]

    @property
    def client(self) -> int:
        """The highest of the downloads' peaks."""
        return max(self.clients)


def _name(size: int) -> str:
    return f"swarm-lecture-{size // MIB:05d}-memory-check.mp4"


def _downloads(config: Config) -> int:
    return 1 if config.quick else DOWNLOADS


def _measure(config: Config, tracker: str, size: int) -> Peak:
    name = _name(size)
    into = config.workdir / "swarm-memory-download"
    fetched = [
        swarm.fetch(name, into, tracker, size, config.download_args)
        for _ in range(_downloads(config))
    ]
    shutil.rmtree(into)
    peak = Peak(size, [f.timed.max_rss_bytes for f in fetched], [f.sources for f in fetched])
    print(f"swarm memory {format_size(size)}: client {peak.client / MIB:.0f} MiB", file=sys.stderr)
    return peak


def run(config: Config) -> Section:
    """PEERS peers sharing a sparse file of each size; DOWNLOADS downloads of each (one with
    --quick), one after another; /usr/bin/time's %M.
    """
    share = config.workdir / "swarm-memory-share"
    shutil.rmtree(share, ignore_errors=True)
    share.mkdir(parents=True)
    for size in config.memory_sizes:
        make_sparse_file(share / _name(size), size)
    with swarm.tracker() as tracker, contextlib.ExitStack() as stack:
        peers = swarm.Swarm(stack, share, tracker.address, config.serve_args)
        peers.grow(PEERS)
        peaks = [_measure(config, tracker.address, size) for size in config.memory_sizes]
        setup = peers.setup_note()
    shutil.rmtree(share, ignore_errors=True)
    rows = [
        Row(
            f"downloading client, {PEERS} serving peers, peak RSS, {format_size(peak.size)}",
            peak.client / MIB,
            "MiB",
            f"< {SWARM_LIMIT // MIB} MiB",
            peak.client < SWARM_LIMIT,
        )
        for peak in peaks
    ]
    first, last = peaks[0], peaks[-1]
    growth = last.client - first.client
    rows.append(
        Row(
            f"downloading client, {PEERS} serving peers, growth "
            f"{format_size(first.size)} → {format_size(last.size)}",
            growth / MIB,
            "MiB",
            f"none (≤ {GROWTH_SLACK // MIB} MiB)",
            growth <= GROWTH_SLACK,
        )
    )
    details = [
        f"{PEERS} uncapped serving peers share a sparse file of each size (hard links, one "
        f"folder each); {_downloads(config)} client(s) in turn download each file to disk, "
        "choosing their sources from what the tracker lists (all peers listed first). Client: "
        "`/usr/bin/time -f %M`, the highest of its runs ("
        + "; ".join(
            f"{format_size(p.size)}: " + ", ".join(f"{c / MIB:.1f}" for c in p.clients) + " MiB"
            for p in peaks
        )
        + "). Sources each download says it fetched from (its INFO log): "
        + "; ".join(
            f"{format_size(p.size)}: "
            + ", ".join("not said" if s is None else str(s) for s in p.sources)
            for p in peaks
        )
        + ".",
        "",
        setup,
    ]
    return Section(
        f"Swarm memory ({PEERS} serving peers)", config.reproduce("swarm-memory"), rows, details
    )
