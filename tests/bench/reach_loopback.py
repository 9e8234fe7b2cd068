"""What a reverse connection costs against a direct one, on loopback: the same file from a
peer the tracker reaches (direct) and from one it cannot (announced on 127.0.0.1, listening on
127.0.0.2, no local address: reached by a reverse connection through the downloader's splice
and the peer's), each with its own TLS tracker, downloads interleaved round by round.

    .venv/bin/python -m tests.bench.reach_loopback --size 1GiB --rounds 3

Loopback shows the CPU the two splices cost, not a NAT; the namespace bench shows links.
"""

import argparse
import contextlib
import re
import shutil
import sys
import tempfile
from pathlib import Path

from tests.bench import apps
from tests.bench.files import format_size, make_random_file, parse_size
from tests.bench.procs import cpu_seconds, median, running, settled_cpu_seconds, timed_lines
from tests.bench.transfer import MB, sha256_of

FILE_NAME = "reach-lecture-0001.mp4"
LISTENING = re.compile(r"listening on (127\.0\.0\.[12]):(\d+)")
REVERSE_LINE = re.compile(r"reached through a reverse connection")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("1GiB"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="napshare-reach-bench-") as temp,
        contextlib.ExitStack() as stack,
    ):
        root = Path(temp)
        shared = root / "shared"
        shared.mkdir()
        source = make_random_file(shared / FILE_NAME, args.size)
        expected = sha256_of(source)
        trackers = {}
        services = []
        for mode, extra in (
            ("direct", ()),
            ("reverse", ("--bind", "127.0.0.2", "--no-local-addresses")),
        ):
            state = root / f"tracker-{mode}"
            tracker = stack.enter_context(running(f"tracker {mode}", apps.tracker(state_dir=state)))
            pins = apps.pin(state)
            peer = stack.enter_context(
                running(
                    f"peer {mode}",
                    apps.serve(shared, tracker.address, (*pins, *extra, "--log-level", "INFO")),
                    pattern=LISTENING,
                )
            )
            services += [tracker, peer]
            trackers[mode] = (tracker.address, pins, peer.pid)
        seconds: dict[str, list[float]] = {mode: [] for mode in trackers}
        for round_ in range(args.rounds):
            for mode, (address, pins, server) in trackers.items():
                target = root / f"down-{mode}-{round_}"
                target.mkdir()
                server_cpu = cpu_seconds(server)
                try:
                    done = timed_lines(apps.download(FILE_NAME, target, address, pins))
                except Exception:
                    for service in services:
                        print(f"--- {service.name}\n{service.tail(40)}", file=sys.stderr)
                    raise
                said = done.first(REVERSE_LINE) is not None
                if said != (mode == "reverse") or sha256_of(target / FILE_NAME) != expected:
                    print(f"{mode}: wrong path or bytes\n{done.lines}", file=sys.stderr)
                    return 1
                seconds[mode].append(done.timed.seconds)
                server_cpu = settled_cpu_seconds(server) - server_cpu
                print(
                    f"round {round_ + 1} {mode:8} {done.timed.seconds:6.2f} s "
                    f"{args.size / done.timed.seconds / MB:7.1f} MB/s, "
                    f"CPU client {done.timed.cpu_seconds:.1f} s, serving peer {server_cpu:.1f} s",
                    flush=True,
                )
                shutil.rmtree(target)
        rates = {mode: args.size / median(times) / MB for mode, times in seconds.items()}
        print(
            f"{format_size(args.size)}, median of {args.rounds}: direct {rates['direct']:.1f} "
            f"MB/s, reverse {rates['reverse']:.1f} MB/s: reverse / direct = "
            f"{rates['reverse'] / rates['direct']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
