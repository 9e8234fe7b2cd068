"""Swarm rate: one serving peer capped at R, then three each capped at R, share one file; the
rate of one download from them against 2.7 × R (issue 10).
"""

import contextlib
import shutil
import sys

from tests.bench import swarm
from tests.bench.config import Config
from tests.bench.files import MIB, format_size, make_random_file
from tests.bench.procs import BenchError
from tests.bench.report import Row, Section
from tests.bench.transfer import sha256_of

FILE_NAME = "swarm-lecture-0007-capped-sources.mp4"
PEERS = 3
TARGET = 2.7  # × R, for PEERS peers each capped at R


def _fetch(config: Config, tracker: str, expected: str) -> swarm.Fetch:
    into = config.workdir / "swarm-rate-download"
    fetched = swarm.fetch(FILE_NAME, into, tracker, config.transfer_size, config.download_args)
    if sha256_of(into / FILE_NAME) != expected:
        raise BenchError("the swarm download produced different bytes")
    shutil.rmtree(into)
    return fetched


def _label(fetched: swarm.Fetch) -> str:
    return "by its own lines" if fetched.own_rate else "process start to exit"


def run(config: Config) -> Section:
    """Download from one capped peer, then from three (the first and two more)."""
    cap = config.swarm_rate
    share = config.workdir / "swarm-rate-share"
    share.mkdir(parents=True, exist_ok=True)
    source = make_random_file(share / FILE_NAME, config.transfer_size)
    expected = sha256_of(source)
    serve_args = [f"--max-upload-rate={cap}", *config.serve_args]
    with swarm.tracker() as tracker, contextlib.ExitStack() as stack:
        peers = swarm.Swarm(stack, share, tracker.address, serve_args)
        peers.grow(1)
        one = _fetch(config, tracker.address, expected)
        print(f"swarm rate: 1 capped peer {one.rate / MIB:.1f} MiB/s", file=sys.stderr)
        peers.grow(PEERS)
        many = _fetch(config, tracker.address, expected)
        print(f"swarm rate: {PEERS} capped peers {many.rate / MIB:.1f} MiB/s", file=sys.stderr)
        setup = peers.setup_note()
    return _section(config, one, many, setup)


def _section(config: Config, one: swarm.Fetch, many: swarm.Fetch, setup: str) -> Section:
    cap = config.swarm_rate
    best_one = one.own_rate or one.rate
    best_many = many.own_rate or many.rate
    rows = [
        Row(f"1 peer capped at R: {_label(one)}", best_one / MIB, "MiB/s"),
        Row("1 peer capped at R: process start to exit", one.rate / MIB, "MiB/s"),
        Row(
            f"{PEERS} peers each capped at R: {_label(many)}",
            best_many / MIB,
            "MiB/s",
            f"≥ {TARGET * cap / MIB:.0f} MiB/s ({TARGET:g} × R)",
            best_many >= TARGET * cap,
        ),
        Row(f"{PEERS} peers each capped at R: process start to exit", many.rate / MIB, "MiB/s"),
        Row(f"{PEERS} capped peers / R ({_label(many)})", best_many / cap, "×"),
        Row(f"{PEERS} capped peers / 1 capped peer ({_label(many)})", best_many / best_one, "×"),
    ]
    sources = ", ".join(
        f"{label}: {'not said' if f.sources is None else f.sources}"
        for label, f in (("one peer", one), (f"{PEERS} peers", many))
    )
    details = [
        f"R = {format_size(cap)}/s (`serve --max-upload-rate`), a "
        f"{format_size(config.transfer_size)} file of random bytes, one download from one "
        f"capped peer, then one from {PEERS}; "
        "each download's sha256 checked after it. `download` chooses its sources itself from "
        "what the tracker lists, and every serving peer was listed before it started. "
        "“By its own lines”: from the download's `downloading NAME: SIZE` line (sources found) "
        "to its `downloaded successfully` line (verified, renamed), as this process read them "
        "off its output; “process start to exit” adds interpreter start, the tracker lookup "
        f"and gRPC's shutdown. Sources the download says it fetched from (its INFO log): "
        f"{sources}.",
        "",
        setup,
    ]
    return Section(
        f"Swarm rate ({PEERS} peers capped at {format_size(cap)}/s, "
        f"{format_size(config.transfer_size)})",
        config.reproduce("swarm-rate"),
        rows,
        details,
    )
