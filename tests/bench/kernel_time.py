"""The downloader's kernel time, download after download (issue 12): wall, user and system
seconds of each plain-text download of one file, this checkout interleaved with another
revision's downloader, so an unsteady kernel shows round by round.

    .venv/bin/python -m tests.bench.kernel_time --against e2ff86d --rounds 6

Each download starts after `os.sync()` and its output is deleted after it, as in the
transfer bench; the tracker and the serving peer are this checkout's, in plain text.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.bench import apps, baseline, swarm
from tests.bench.files import format_size, make_random_file, parse_size
from tests.bench.procs import TIME, BenchError, child_env, median

NAME = "kernel-time.bin"
_FIELDS = "%e %U %S %M"  # wall, user, system seconds, peak RSS (KiB)


def _download(code: baseline.Code, tracker: str, folder: Path, size: int) -> list[float]:
    """One timed download into a fresh `folder`: wall, user, system seconds, peak RSS (MiB)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.sync()
    times = folder.parent / "time.txt"
    command = [TIME, "-o", str(times), "-f", _FIELDS]
    command += apps.download(NAME, folder, tracker, apps.PLAINTEXT, program=code.peer)
    done = subprocess.run(
        command, env=child_env(code.env), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"{code.label}: the download failed: {done.stderr[-800:]}")
    out = folder / NAME
    if out.stat().st_size != size:
        raise BenchError(f"{code.label}: the download is {out.stat().st_size} bytes, not {size}")
    out.unlink()
    wall, user, system, peak_kib = times.read_text().split()[-4:]
    return [float(wall), float(user), float(system), int(peak_kib) / 1024]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", help="a revision whose downloader runs beside this one")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--size", type=parse_size, default=parse_size("1GiB"))
    parser.add_argument("--workdir", type=Path, help="default: a temporary folder, removed")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="napshare-kernel-time-"))
    codes = [baseline.CURRENT] + ([baseline.build(args.against)] if args.against else [])
    share = workdir / "share"
    share.mkdir(parents=True, exist_ok=True)
    make_random_file(share / NAME, args.size)
    runs: dict[str, list[list[float]]] = {code.label: [] for code in codes}
    try:
        with swarm.tracker() as tracker, swarm.serving_peer(share, tracker.address, NAME):
            for number in range(args.rounds + 1):  # round 0 warms up, untimed
                for code in codes:
                    run = _download(code, tracker.address, workdir / "download", args.size)
                    if number:
                        runs[code.label].append(run)
                        wall, user, system, peak = run
                        print(
                            f"round {number} {code.label}: wall {wall:.2f} s, user {user:.2f} s, "
                            f"sys {system:.2f} s, peak RSS {peak:.0f} MiB",
                            flush=True,
                        )
    finally:
        baseline.remove_builds()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"{format_size(args.size)}, {args.rounds} rounds, medians:")
    for label, measured in runs.items():
        wall, user, system = (median([run[i] for run in measured]) for i in range(3))
        systems = " / ".join(f"{run[2]:.2f}" for run in measured)
        print(f"  {label}: wall {wall:.2f} s, user {user:.2f} s, sys {system:.2f} s ({systems})")


if __name__ == "__main__":
    try:
        main()
    except BenchError as error:
        sys.exit(f"kernel_time: {error}")
