"""Poisoning: a lying peer asked first, an honest napshare peer beside it; the bytes fetched twice
and the time to a verified file, against a clean download from the honest peer alone.
"""

import re
import shutil
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench import apps, swarm
from tests.bench.config import Config
from tests.bench.files import MIB, format_size, make_random_file
from tests.bench.procs import PYTHON, BenchError, Service, median, running, timed_run
from tests.bench.report import Row, Section
from tests.bench.transfer import FILE_NAME, sha256_of

# (label, the liar's lie or None for no liar)
SCENARIOS = (
    ("clean (honest peer only)", None),
    ("wrong bytes in the last chunk", "last chunk"),
    ("corrupted first chunk, then a drop", "first chunk then drop"),
)
FEW_PIECES = 4 * MIB  # "a few pieces" of 1 MiB
_METRICS = re.compile(r"metrics on (http://\S+/metrics)")
_SERVED = re.compile(r"^napshare_peer_served_bytes_total (\S+)$", re.MULTILINE)


@dataclass
class Scenario:
    """One scenario's rounds: seconds to a verified file, and bytes sent more than once."""

    label: str
    lie: str | None
    seconds: list[float] = field(default_factory=list)
    twice: list[int] = field(default_factory=list)


def _served(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    found = _SERVED.search(text)
    return int(float(found.group(1))) if found else 0


def _metrics_url(peer: Service) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = _METRICS.search(peer.log.read_text(errors="replace"))
        if found:
            return found.group(1)
        time.sleep(0.1)
    raise BenchError(f"the serving peer printed no metrics address:\n{peer.tail()}")


def _liar_sent(stats: Path) -> int:
    try:
        return int(stats.read_text() or 0)
    except FileNotFoundError:
        return 0


def _round(
    config: Config, tracker: str, url: str, scenario: Scenario, *, liar: str | None, stats: Path
) -> None:
    size = config.transfer_size
    out = config.workdir / "poison-download"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    honest_before, liar_before = _served(url), _liar_sent(stats)
    extra = [*apps.PLAINTEXT, *config.download_args, *(["--from", liar] if liar else [])]
    timed = timed_run(apps.download(FILE_NAME, out, tracker, extra))
    got = out / FILE_NAME
    if not got.exists() or got.stat().st_size != size:
        raise BenchError(f"the download under '{scenario.label}' did not produce the whole file")
    sent = _served(url) - honest_before + _liar_sent(stats) - liar_before
    scenario.seconds.append(timed.seconds)
    scenario.twice.append(sent - size)


def run(config: Config) -> Section:
    """Each scenario `rounds` times (at most 3), the same file, the same honest peer."""
    size = config.transfer_size
    rounds = min(config.rounds, 3)
    share = config.workdir / "poison-share"
    share.mkdir(parents=True, exist_ok=True)
    source = make_random_file(share / FILE_NAME, size)
    expected = sha256_of(source)
    scenarios = [Scenario(label, lie) for label, lie in SCENARIOS]
    serve_args = ["--metrics-port", "0", *config.serve_args]
    with (
        swarm.tracker() as tracker,
        swarm.serving_peer(share, tracker.address, FILE_NAME, serve_args) as honest,
    ):
        url = _metrics_url(honest)
        for scenario in scenarios:
            stats = config.workdir / "liar-stats.txt"
            stats.unlink(missing_ok=True)
            if scenario.lie is None:
                for _ in range(rounds):
                    _round(config, tracker.address, url, scenario, liar=None, stats=stats)
                continue
            command = [
                PYTHON, "-m", "tests.support.liar", str(source), "--tracker", tracker.address,
                "--lie", scenario.lie, "--stats", str(stats),
            ]  # fmt: skip
            with running("lying peer", command) as liar:
                for _ in range(rounds):
                    _round(config, tracker.address, url, scenario, liar=liar.address, stats=stats)
            print(f"poisoning: {scenario.label} done", file=sys.stderr, flush=True)
        if sha256_of(share / FILE_NAME) != expected:
            raise BenchError("the shared file changed during the poisoning benchmark")
    return _section(config, scenarios, rounds)


def _section(config: Config, scenarios: list[Scenario], rounds: int) -> Section:
    clean = median(scenarios[0].seconds)
    rows = []
    for scenario in scenarios[1:]:
        worst = max(scenario.twice)
        rows.append(
            Row(
                f"{scenario.label}: bytes fetched twice (worst round)",
                worst / MIB,
                "MiB",
                f"≤ {FEW_PIECES // MIB} MiB",
                worst <= FEW_PIECES,
            )
        )
        rows.append(
            Row(f"{scenario.label}: time / clean download", median(scenario.seconds) / clean, "×")
        )
    details = [
        f"A {format_size(config.transfer_size)} file, {rounds} round"
        f"{'s' if rounds > 1 else ''} per scenario. A lying peer (`tests/support/liar.py`: the "
        "true name, size, sha256 and pieces root, wrong bytes) is asked first (`--from`); an "
        "honest napshare peer shares the same file. Bytes fetched twice are what both peers "
        "sent (its metrics, the liar's own count) minus the file size; every download ends "
        "with the file verified.",
        "",
        "| Scenario | Seconds per round | Bytes fetched twice per round |",
        "|---|---|---|",
    ]
    for scenario in scenarios:
        seconds = ", ".join(f"{s:.2f}" for s in scenario.seconds)
        twice = ", ".join(format_size(t) if t else "0" for t in scenario.twice)
        details.append(f"| {scenario.label} | {seconds} | {twice} |")
    return Section(
        f"Poisoning ({format_size(config.transfer_size)})",
        config.reproduce("poisoning"),
        rows,
        details,
    )
