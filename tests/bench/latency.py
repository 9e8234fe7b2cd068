"""Transfer over a long link: napshare and curl fetch the same file through the same delay proxy."""

import sys
from dataclasses import dataclass, field

from tests.bench import apps, swarm
from tests.bench.config import Config
from tests.bench.files import MIB, format_size, make_random_file
from tests.bench.procs import PYTHON, BenchError, Service, Timed, median, running, timed_run
from tests.bench.report import Row, Section
from tests.bench.transfer import FILE_NAME, MB, sha256_of

# Round trips of this length and longer are where the target applies.
TARGET_DELAYS_MS = (25.0, 50.0)
TARGET_RATIO = 0.8
MAX_PEAK_RSS = 100 * MIB


@dataclass
class _Delay:
    """The runs at one one-way delay: napshare's and curl's, in round order."""

    delay_ms: float
    napshare: list[Timed] = field(default_factory=list)
    curl: list[Timed] = field(default_factory=list)

    def speeds(self, runs: list[Timed], size: int) -> list[float]:
        return [size / MB / run.seconds for run in runs]


def _proxy(target: str, delay_ms: float, buffer: int) -> list[str]:
    return [
        PYTHON,
        "-m",
        "tests.support.delayproxy",
        target,
        "--delay-ms",
        f"{delay_ms:g}",
        "--buffer",
        str(buffer),
    ]


def _once(command: list[str], config: Config, size: int, expected: str | None) -> Timed:
    folder = config.workdir / "latency-download"
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / FILE_NAME
    out.unlink(missing_ok=True)
    timed = timed_run(command)
    if not out.exists() or out.stat().st_size != size:
        raise BenchError(f"{command[0]} did not produce the whole file through the delay proxy")
    if expected is not None and sha256_of(out) != expected:
        raise BenchError(f"{command[0]} produced different bytes through the delay proxy")
    out.unlink()
    return timed


def run(config: Config) -> Section:
    """At each delay, download `rounds` times with napshare and curl, alternating; medians."""
    size = config.latency_size
    share = config.workdir / "latency-share"
    share.mkdir(parents=True, exist_ok=True)
    source = make_random_file(share / FILE_NAME, size)
    expected = sha256_of(source)
    delays = [_Delay(d) for d in config.latency_delays_ms]
    with (
        swarm.tracker() as tracker,
        swarm.serving_peer(share, tracker.address, FILE_NAME, config.serve_args) as peer,
        running("http.server", apps.http_serve(share), pattern=apps.HTTP_PORT) as http,
    ):
        for delay in delays:
            _measure(config, delay, (tracker, peer, http), size, expected)
    return _section(config, delays, size)


def _measure(
    config: Config,
    delay: _Delay,
    services: tuple[Service, Service, Service],
    size: int,
    expected: str,
) -> None:
    tracker, peer, http = services
    buffer = config.latency_buffer
    with (
        running("delay proxy", _proxy(peer.address, delay.delay_ms, buffer)) as to_peer,
        running("delay proxy", _proxy(http.address, delay.delay_ms, buffer)) as to_http,
    ):
        download_dir = config.workdir / "latency-download"
        napshare = apps.download(
            FILE_NAME,
            download_dir,
            tracker.address,
            [*apps.PLAINTEXT, "--from", to_peer.address, *config.download_args],
        )
        curl = apps.curl(f"http://{to_http.address}/{FILE_NAME}", download_dir / FILE_NAME)
        # One untimed pass each checks the bytes and warms both paths.
        _once(napshare, config, size, expected)
        _once(curl, config, size, expected)
        for round_number in range(1, config.rounds + 1):
            delay.napshare.append(_once(napshare, config, size, None))
            delay.curl.append(_once(curl, config, size, None))
            print(
                f"latency {delay.delay_ms:g} ms round {round_number}/{config.rounds}: "
                f"napshare {size / MB / delay.napshare[-1].seconds:,.0f} MB/s, "
                f"curl {size / MB / delay.curl[-1].seconds:,.0f} MB/s",
                file=sys.stderr,
                flush=True,
            )


def _section(config: Config, delays: list[_Delay], size: int) -> Section:
    rows = []
    peak = 0
    for delay in delays:
        own = delay.speeds(delay.napshare, size)
        theirs = delay.speeds(delay.curl, size)
        ratio = median([n / c for n, c in zip(own, theirs, strict=True)])
        rtt = f"{delay.delay_ms:g} ms one way ({2 * delay.delay_ms:g} ms RTT)"
        targeted = delay.delay_ms in TARGET_DELAYS_MS
        rows += [
            Row(f"napshare download, {rtt}", median(own), "MB/s"),
            Row(f"curl, {rtt}", median(theirs), "MB/s"),
            Row(
                f"napshare / curl, {rtt}",
                ratio,
                "×",
                f"≥ {TARGET_RATIO:.2f}×" if targeted else "",
                ratio >= TARGET_RATIO if targeted else None,
            ),
        ]
        peak = max([peak, *(run.max_rss_bytes for run in delay.napshare)])
    rows.append(
        Row(
            "downloader peak RSS through the proxy",
            peak / MIB,
            "MiB",
            f"≤ {MAX_PEAK_RSS // MIB} MiB",
            peak <= MAX_PEAK_RSS,
        )
    )
    details = [
        f"A {format_size(size)} file of random bytes, fetched by `napshare-peer download "
        "--from PROXY` (every piece verified) and by `curl -o` from `python -m http.server`, each "
        "through its own `tests/support/delayproxy.py`: a loopback TCP relay that holds every "
        "byte, in each direction, for the one-way delay before passing it on, with at most "
        f"{format_size(config.latency_buffer)} held per direction (it stops reading when full, "
        "so the sender feels the backpressure). That caps either tool at buffer / delay: "
        f"{config.latency_buffer / MB / 0.05:,.0f} MB/s at 50 ms. The tracker is reached "
        "directly. At each delay: one untimed, checked download each, then "
        f"{config.rounds} round{'s' if config.rounds > 1 else ''} of napshare then curl; "
        "medians of MB/s and of the ratios taken round by round (neighbours in time share the "
        "machine's load; other work shared the 2 cores). Wall time of the whole command, "
        "process start included. napshare's CPU is the downloader's (`/usr/bin/time`), per GiB "
        "and as cores busy over its wall time (medians): a downloader that keeps well under "
        "its cores while slower than curl is held by the link's flow, not by its own work.",
        "",
        "| One-way delay | napshare MB/s per round | curl MB/s per round | napshare peak RSS "
        "| napshare CPU s per GiB | napshare cores busy |",
        "|---|---|---|---|---|---|",
    ]
    for delay in delays:
        own = ", ".join(f"{s:,.0f}" for s in delay.speeds(delay.napshare, size))
        theirs = ", ".join(f"{s:,.0f}" for s in delay.speeds(delay.curl, size))
        rss = max(run.max_rss_bytes for run in delay.napshare) / MIB
        cpu = median([run.cpu_seconds for run in delay.napshare]) / (size / 2**30)
        busy = median([run.cpu_seconds / run.seconds for run in delay.napshare])
        details.append(
            f"| {delay.delay_ms:g} ms | {own} | {theirs} | {rss:.0f} MiB | {cpu:.2f} s "
            f"| {busy:.2f} |"
        )
    return Section(
        f"Transfer over latency ({format_size(size)})", config.reproduce("latency"), rows, details
    )
