"""Transfer speed: napshare (TLS and --plaintext), raw TCP and curl download the same file,
interleaved round by round.
"""

import hashlib
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench import apps, swarm
from tests.bench.config import Config
from tests.bench.files import MIB, format_size, make_random_file
from tests.bench.procs import BenchError, Service, Timed, cpu_seconds, median, running, timed_run
from tests.bench.report import Row, Section

FILE_NAME = "cs101-lecture-0042-intro-to-distributed-systems.mp4"
MB = 1_000_000


@dataclass(frozen=True)
class Run:
    """One timed download, and the CPU time its server spent meanwhile."""

    client: Timed
    server_cpu: float


@dataclass
class Method:
    """One way to download the file: its server, and the command for one download into `out`."""

    label: str
    server: Service
    command: Callable[[Path], list[str]]
    shown: str
    runs: list[Run] = field(default_factory=list)

    def speeds(self, size: int) -> list[float]:
        """MB/s of each run."""
        return [size / MB / run.client.seconds for run in self.runs]


def sha256_of(path: Path) -> str:
    """The file's SHA-256 as hex."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(4 * MIB):
            digest.update(block)
    return digest.hexdigest()


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _download_once(method: Method, folder: Path, size: int, expected: str | None) -> Run:
    out = _fresh(folder) / FILE_NAME
    os.sync()  # every download starts with no dirty pages waiting to be written back
    server_before = cpu_seconds(method.server.pid)
    timed = timed_run(method.command(out))
    server_cpu = cpu_seconds(method.server.pid) - server_before
    if not out.exists() or out.stat().st_size != size:
        raise BenchError(f"{method.label} did not produce the whole file: {method.shown}")
    if expected is not None and sha256_of(out) != expected:
        raise BenchError(f"{method.label} produced different bytes: {method.shown}")
    out.unlink()
    return Run(timed, server_cpu)


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(config: Config) -> Section:
    """Download the file `rounds` times with each method (A B C A B C ...); medians and ratios."""
    size = config.transfer_size
    share = config.workdir / "share"
    share.mkdir(parents=True, exist_ok=True)
    source = make_random_file(share / FILE_NAME, size)
    expected = sha256_of(source)
    state = config.workdir / "tracker-state"
    with (
        swarm.tracker(state) as tls_tracker,
        swarm.serving_peer(
            share, tls_tracker.address, FILE_NAME, config.serve_args, state_dir=state
        ) as tls_peer,
        swarm.tracker() as tracker,
        swarm.serving_peer(share, tracker.address, FILE_NAME, config.serve_args) as peer,
        running("raw TCP sender", apps.raw_serve(source)) as raw,
        running("http.server", apps.http_serve(share), pattern=apps.HTTP_PORT) as http,
    ):
        url = f"http://{http.address}/{FILE_NAME}"
        methods = [
            Method(
                "napshare",
                tls_peer,
                lambda out: apps.download(
                    FILE_NAME,
                    out.parent,
                    tls_tracker.address,
                    [*apps.pin(state), *config.download_args],
                ),
                "napshare-peer download NAME --dir DIR --tracker TRACKER --tracker-cert CERT",
            ),
            Method(
                "napshare --plaintext",
                peer,
                lambda out: apps.download(
                    FILE_NAME, out.parent, tracker.address, [*apps.PLAINTEXT, *config.download_args]
                ),
                "napshare-peer download --plaintext NAME --dir DIR --tracker TRACKER",
            ),
            Method(
                "raw TCP",
                raw,
                lambda out: apps.raw_fetch(raw.address, out),
                "python -m tests.bench.rawtcp fetch ADDRESS OUT",
            ),
            Method(
                "curl", http, lambda out: apps.curl(url, out), "curl -o OUT http://ADDRESS/NAME"
            ),
        ]
        # One untimed pass warms every server and checks every method delivers the right bytes.
        for method in methods:
            _download_once(method, config.workdir / "download", size, expected)
        startup = median([timed_run(apps.peer_help()).seconds for _ in range(3)])
        for round_number in range(1, config.rounds + 1):
            for method in methods:
                run = _download_once(method, config.workdir / "download", size, None)
                method.runs.append(run)
                _progress(
                    f"transfer round {round_number}/{config.rounds}: {method.label} "
                    f"{size / MB / run.client.seconds:,.0f} MB/s"
                )
    return _section(config, methods, startup)


def _section(config: Config, methods: list[Method], startup: float) -> Section:
    size = config.transfer_size
    napshare, plaintext, raw, curl = (median(m.speeds(size)) for m in methods)
    # Ratios per round, then the median: neighbours in time share the machine's mood.
    own, clear, machine, user = (m.speeds(size) for m in methods)
    to_raw = median([n / r for n, r in zip(own, machine, strict=True)])
    to_curl = median([n / c for n, c in zip(own, user, strict=True)])
    to_clear = median([n / c for n, c in zip(own, clear, strict=True)])
    rows = [
        Row("napshare download over TLS (end to end, sha256 verified)", napshare, "MB/s"),
        Row("napshare download --plaintext", plaintext, "MB/s"),
        Row("raw TCP: sendfile → recv_into → file", raw, "MB/s"),
        Row("python -m http.server → curl -o", curl, "MB/s"),
        Row("napshare TLS / --plaintext", to_clear, "×", "≥ 0.85×", to_clear >= 0.85),
        Row("napshare TLS / raw TCP", to_raw, "×", "≥ 0.80×", to_raw >= 0.8),
        Row("napshare TLS / curl", to_curl, "×", "≥ 1.00×", to_curl >= 1.0),
    ]
    details = [
        f"A {format_size(size)} file of random bytes, downloaded onto local disk over loopback, "
        f"{config.rounds} round{'s' if config.rounds > 1 else ''} in the order napshare (TLS), "
        "napshare --plaintext, raw TCP, curl; medians of MB/s (MB = 10⁶ bytes), and of the "
        "ratios taken round by round. "
        "Each time is the wall time of one download command, process start "
        "included; the servers stay up and warm between rounds, the downloaded file is "
        "deleted after every download, and a `sync` before each one leaves no earlier write-back "
        "pending. An untimed first pass checks each method's bytes. Starting the napshare "
        f"command line alone (`napshare-peer --help`) takes {startup:.2f} s, "
        f"{startup / (size / MB / napshare):.0%} of its median download time.",
        "",
        "| Method | Command | MB/s per round | CPU s per GiB: downloader + server "
        "| Downloader peak RSS |",
        "|---|---|---|---|---|",
    ]
    gib = size / 2**30
    for method in methods:
        speeds = ", ".join(f"{s:,.0f}" for s in method.speeds(size))
        client_cpu = median([run.client.cpu_seconds for run in method.runs]) / gib
        server_cpu = median([run.server_cpu for run in method.runs]) / gib
        peak = max(run.client.max_rss_bytes for run in method.runs) / MIB
        details.append(
            f"| {method.label} | `{method.shown}` | {speeds} | "
            f"{client_cpu:.2f} + {server_cpu:.2f} | {peak:.0f} MiB |"
        )
    return Section(
        f"Transfer speed ({format_size(size)})", config.reproduce("transfer"), rows, details
    )
