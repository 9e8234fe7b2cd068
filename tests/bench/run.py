"""`make bench`: run the benchmarks, print the table, write BENCHMARKS.md.

.venv/bin/python -m tests.bench.run                  everything, full sizes (about 22 minutes)
.venv/bin/python -m tests.bench.run --quick --out /tmp/B.md    tiny sizes, seconds
.venv/bin/python -m tests.bench.run --only transfer --size 256MiB --rounds 3
.venv/bin/python -m tests.bench.run --only latency --rounds 3 --latency-delays 0,50
.venv/bin/python -m tests.bench.run --only ratelimit --rate-cap 30MiB --rate-seconds 10
.venv/bin/python -m tests.bench.run --only poisoning --size 1GiB --rounds 3
.venv/bin/python -m tests.bench.run --only swarm-rate --size 1GiB --swarm-rate 30MiB
.venv/bin/python -m tests.bench.run --only swarm-memory --memory-sizes 1GiB,4GiB
.venv/bin/python -m tests.bench.run --only single-source --size 1GiB --rounds 7 --baseline 2bb7e67
.venv/bin/python -m tests.bench.run --only tracker-redis --peers 10000 --files-per-peer 100
.venv/bin/python -m tests.bench.run --only relay --size 1GiB --rounds 5
.venv/bin/python -m tests.bench.run --only reach --size 1GiB --rounds 5    (as root: namespaces)
"""

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.bench import (
    baseline,
    big_joins,
    latency,
    memory,
    poisoning,
    ratelimit,
    reach,
    relay,
    single_source,
    swarm_memory,
    swarm_rate,
    tracker_scale,
    tracker_store,
    transfer,
)
from tests.bench.apps import napshare_ready
from tests.bench.config import RUNNER, Config
from tests.bench.files import parse_size
from tests.bench.procs import ROOT, BenchError
from tests.bench.report import Section, markdown, terminal_text, write_json

SECTIONS: dict[str, Callable[[Config], Section]] = {
    "transfer": transfer.run,
    "memory": memory.run,
    "tracker": tracker_scale.run,
    "tracker-redis": tracker_store.run,
    "latency": latency.run,
    "ratelimit": ratelimit.run,
    "big-joins": big_joins.run,
    "poisoning": poisoning.run,
    "swarm-rate": swarm_rate.run,
    "swarm-memory": swarm_memory.run,
    "single-source": single_source.run,
    "relay": relay.run,
    "reach": reach.run,
}
NOTES = Path(__file__).with_name("NOTES.md")
# The table of the last `make soak` (tests/bench/soak.py writes it): it goes after the notes,
# so that regenerating BENCHMARKS.md keeps it.
SOAK_RESULT = Path(__file__).with_name("soak-result.md")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.run",
        description="Measure napshare against raw TCP, curl, aria2c, rsync and a bare gRPC server.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks, not numbers")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(SECTIONS),
        help="run only this benchmark (repeatable; default: all)",
    )
    parser.add_argument(
        "--size",
        type=parse_size,
        help="file size of transfer, poisoning, swarm-rate, single-source, relay, reach "
        "(default 1GiB)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="rounds of transfer, single-source, relay (default 7, at least 3); of reach, at "
        "most 5",
    )
    parser.add_argument(
        "--memory-sizes",
        type=lambda text: [parse_size(part) for part in text.split(",")],
        help="file sizes for the memory and swarm-memory benchmarks (default 1GiB,4GiB)",
    )
    parser.add_argument(
        "--latency-size", type=parse_size, help="file size over the delay proxy (default 1GiB)"
    )
    parser.add_argument(
        "--latency-delays",
        type=lambda text: [float(part) for part in text.split(",")],
        help="one-way delays in ms for the latency benchmark (default 0,5,25,50)",
    )
    parser.add_argument(
        "--latency-buffer",
        type=parse_size,
        help="bytes the delay proxy holds per direction (default 8MiB)",
    )
    parser.add_argument(
        "--rate-cap", type=parse_size, help="the cap of the rate-limit bench (default 30MiB)"
    )
    parser.add_argument(
        "--rate-seconds", type=float, help="seconds at the cap the file lasts (default 10)"
    )
    parser.add_argument(
        "--swarm-rate",
        type=parse_size,
        help="the upload cap R of each serving peer in the swarm-rate bench (default 30MiB)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="the revision the single-source bench runs beside the current code "
        "(default 2bb7e67, the last before the swarm engine)",
    )
    parser.add_argument("--peers", type=int, help="peers loaded into the tracker (default 10000)")
    parser.add_argument("--files-per-peer", type=int, help="files per loaded peer (default 100)")
    parser.add_argument("--load-seconds", type=float, help="seconds per search-load round")
    parser.add_argument("--load-processes", type=int, help="load generator processes")
    parser.add_argument("--load-channels", type=int, help="channels per generator process")
    parser.add_argument("--load-concurrency", type=int, help="calls in flight per channel")
    parser.add_argument(
        "--serve-arg", action="append", default=[], help="extra argument for napshare-peer serve"
    )
    parser.add_argument(
        "--download-arg",
        action="append",
        default=[],
        help="extra argument for napshare-peer download",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="markdown report to write (default: BENCHMARKS.md at the repo root for a full "
        "run; nothing for --quick or --only, so a partial run never replaces the report)",
    )
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--notes", type=Path, default=NOTES, help="notes appended to the report")
    parser.add_argument("--workdir", type=Path, help="folder for test files (default: a temp dir)")
    return parser


def _config(args: argparse.Namespace, workdir: Path) -> Config:
    config = Config.tiny(workdir) if args.quick else Config(workdir=workdir)
    overrides = {
        "transfer_size": args.size,
        "rounds": args.rounds,
        "memory_sizes": args.memory_sizes,
        "peers": args.peers,
        "files_per_peer": args.files_per_peer,
        "load_seconds": args.load_seconds,
        "load_processes": args.load_processes,
        "load_channels": args.load_channels,
        "load_concurrency": args.load_concurrency,
        "latency_size": args.latency_size,
        "latency_delays_ms": args.latency_delays,
        "latency_buffer": args.latency_buffer,
        "rate_cap": args.rate_cap,
        "rate_seconds": args.rate_seconds,
        "swarm_rate": args.swarm_rate,
        "baseline": args.baseline,
    }
    for key, value in overrides.items():
        if value is not None:
            setattr(config, key, value)
    config.serve_args = list(args.serve_arg)
    config.download_args = list(args.download_arg)
    return config


def _load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks; 0 when they ran (targets missed or not), 1 when one failed."""
    args = _parser().parse_args(argv)
    if not args.quick and args.rounds is not None and args.rounds < 3:
        print("error: --rounds must be at least 3 for a median (or use --quick)", file=sys.stderr)
        return 2
    missing = napshare_ready()
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 1
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="napshare-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    tempfile.tempdir = str(workdir)  # logs and scratch files of this run stay in its workdir
    config = _config(args, workdir)
    names = args.only or list(SECTIONS)
    load_at_start = _load_average()
    began = time.monotonic()
    sections = []
    try:
        for name in names:
            print(f"== {name}", file=sys.stderr, flush=True)
            sections.append(SECTIONS[name](config))
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        baseline.remove_builds()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    minutes = (time.monotonic() - began) / 60
    command = RUNNER + "".join(f" {shlex.quote(a)}" for a in (argv or sys.argv[1:]))
    load = (
        f"Took {minutes:.1f} min; load average (1/5 min) {load_at_start} at the start, "
        f"{_load_average()} at the end."
    )
    notes = args.notes.read_text() if args.notes.exists() else ""
    if SOAK_RESULT.exists():
        notes = notes.rstrip("\n") + "\n\n" + SOAK_RESULT.read_text()
    print(terminal_text(sections))
    out = args.out or (None if args.quick or args.only else ROOT / "BENCHMARKS.md")
    if out is not None:
        out.write_text(markdown(sections, command, load, notes))
        print(f"\nwrote {out}", file=sys.stderr)
    if args.json:
        write_json(args.json, sections)
    return 0


if __name__ == "__main__":
    sys.exit(main())
