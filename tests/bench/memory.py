"""Memory: the peak RSS of the serving peer and of the downloading client, per file size."""

import shutil
import sys
from dataclasses import dataclass

from tests.bench import apps, swarm
from tests.bench.config import Config
from tests.bench.files import MIB, format_size, make_sparse_file
from tests.bench.procs import BenchError, peak_rss_bytes, timed_run
from tests.bench.report import Row, Section

LIMIT = 80 * MIB  # each side, one source
SWARM_LIMIT = 100 * MIB  # issue 10: the downloader with 4 sources (tests/bench/swarm_memory.py)
GROWTH_SLACK = 4 * MIB  # "flat" from the smallest size to the largest
# The client's peak varies from run to run (how far gRPC reads ahead), so take the worst of a few.
DOWNLOADS = 2


@dataclass(frozen=True)
class Peaks:
    """The peak RSS of both sides for one file size."""

    size: int
    server_idle: int
    server: int
    client: int


def _measure(config: Config, tracker_address: str, size: int) -> Peaks:
    name = f"cs101-lecture-{size // MIB:05d}-memory-check.mp4"
    share = config.workdir / f"memory-share-{size}"
    target = config.workdir / f"memory-download-{size}"
    share.mkdir(parents=True, exist_ok=True)
    target.mkdir(parents=True, exist_ok=True)
    make_sparse_file(share / name, size)
    try:
        with swarm.serving_peer(share, tracker_address, name, config.serve_args) as peer:
            idle = peak_rss_bytes(peer.pid)
            clients = []
            for _ in range(DOWNLOADS):
                command = apps.download(
                    name, target, tracker_address, [*apps.PLAINTEXT, *config.download_args]
                )
                clients.append(timed_run(command).max_rss_bytes)
                if (target / name).stat().st_size != size:
                    raise BenchError(f"the {format_size(size)} download is incomplete")
                (target / name).unlink()
            server = peak_rss_bytes(peer.pid)
    finally:
        shutil.rmtree(share, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
    print(
        f"memory {format_size(size)}: serving peer {server / MIB:.0f} MiB, "
        f"client {max(clients) / MIB:.0f} MiB",
        file=sys.stderr,
        flush=True,
    )
    return Peaks(size, idle, server, max(clients))


def run(config: Config) -> Section:
    """A fresh serving peer per size, a few downloads each; VmHWM and /usr/bin/time's %M."""
    with swarm.tracker() as tracker:
        peaks = [_measure(config, tracker.address, size) for size in config.memory_sizes]
    rows = []
    for peak in peaks:
        label = format_size(peak.size)
        rows += [
            Row(
                f"serving peer, peak RSS, {label}",
                peak.server / MIB,
                "MiB",
                f"≤ {LIMIT // MIB} MiB",
                peak.server <= LIMIT,
            ),
            Row(
                f"downloading client, peak RSS, {label}",
                peak.client / MIB,
                "MiB",
                f"≤ {LIMIT // MIB} MiB",
                peak.client <= LIMIT,
            ),
        ]
    first, last = peaks[0], peaks[-1]
    span = f"{format_size(first.size)} → {format_size(last.size)}"
    for side, low, high in (
        ("serving peer", first.server, last.server),
        ("downloading client", first.client, last.client),
    ):
        growth = high - low
        rows.append(
            Row(
                f"{side}, growth {span}",
                growth / MIB,
                "MiB",
                f"none (≤ {GROWTH_SLACK // MIB} MiB)",
                growth <= GROWTH_SLACK,
            )
        )
    details = [
        "Each size gets a fresh serving peer (so its peak is its own) sharing a sparse file; "
        f"{DOWNLOADS} clients in turn download it to disk. Serving peer: VmHWM from "
        "/proc/PID/status after the downloads, which includes hashing the file at start. "
        "Client: `/usr/bin/time -f %M`, the highest of its runs. "
        "The page cache holds file data outside both processes and is not counted.",
        "",
        "Serving peer right after start (before any download): "
        + ", ".join(f"{format_size(p.size)}: {p.server_idle / MIB:.0f} MiB" for p in peaks)
        + ".",
    ]
    return Section("Memory", config.reproduce("memory"), rows, details)
