"""Reach over network namespaces (issue 19 part 6): is a reverse connection as fast as a direct
one over the same links, and how fast is the relay?

One host behind a home router shares the same bytes twice, under two names: on a port the
router forwards (the tracker reaches it: downloads go direct) and on one it does not (downloads
come by a reverse connection, the peer dialling out). A public host downloads both, rounds
interleaved: the same veths, the same router, its NAT and conntrack either way. A host behind a
second router downloads the second through the tracker's relay, with the relay's default caps.
The links are veths between namespaces (tests/support/netns.py): no loopback shortcut, and a NAT
on the path.
"""

import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from napshare.relay.caps import RelayCaps

from tests.bench.config import REACH_MAX_ROUNDS, Config
from tests.bench.files import format_size, make_random_file
from tests.bench.procs import BenchError, Timed, median, timed_lines
from tests.bench.report import Row, Section
from tests.bench.transfer import MB, sha256_of
from tests.support import netns, programs
from tests.support.programs import ServingPeer, Tracker

TITLE = "Reach over network namespaces"
# One file, hard-linked under two names: a download of either name finds one source only.
FORWARDED_NAME = "reach-lecture-0001.mp4"
CLOSED_NAME = "reach-lecture-0001-copy.mp4"
TARGET = 0.8  # reverse / direct: a reverse connection is a direct TCP path (issue 19)
FORWARDED_PORT = programs.PEER_PORT  # the router forwards it to the serving host
CLOSED_PORT = programs.PEER_PORT + 1  # the router forwards nothing here

DIRECT = "direct"
REVERSE = "reverse"
RELAY = "relay"
# What the download must say of its source on each path (direct: neither).
SAYS = {REVERSE: programs.THROUGH_REVERSE, RELAY: programs.THROUGH_RELAY}
BEGINS = re.compile(r"^downloading \S+: ")
DONE = re.compile(r"^File \S+ downloaded successfully")


@dataclass(frozen=True)
class Run:
    """One download: process start to exit, and when (seconds after its start) it had found
    its path (said how it reached the peer; for direct, said it began) and had the file.
    """

    timed: Timed
    found: float
    done: float


@dataclass
class Route:
    """One path to the file: who downloads, from which of the two serving peers; its runs."""

    label: str
    downloader: netns.Host
    source: ServingPeer
    name: str
    runs: list[Run] = field(default_factory=list)

    def speeds(self, size: int) -> list[float]:
        """MB/s of each download, process start to exit."""
        return [size / MB / run.timed.seconds for run in self.runs]

    def carried(self, size: int) -> list[float]:
        """MB/s of each download once its path was found: what the path itself carries."""
        return [size / MB / (run.done - run.found) for run in self.runs]

    def finding(self) -> float:
        """The median seconds from process start to the path found."""
        return median([run.found for run in self.runs])


def run(config: Config) -> Section:
    """The three paths, `rounds` interleaved downloads each (at most 5), each checked."""
    section = Section(TITLE, config.reproduce("reach"))
    why_not = netns.missing()
    if why_not:
        print(f"reach: skipped: {why_not}", file=sys.stderr, flush=True)
        section.details.append(f"Not measured on this machine: {why_not}.")
        return section
    size = config.transfer_size
    rounds = min(config.rounds, REACH_MAX_ROUNDS)
    work = config.workdir / "reach"
    share = work / "share"
    share.mkdir(parents=True, exist_ok=True)
    source = make_random_file(share / FORWARDED_NAME, size)
    expected = sha256_of(source)
    with netns.Internet(work / "internet") as internet:
        paths = _build(internet, work, source)
        if not config.quick:
            for path in paths:  # untimed: the source file in the page cache, both ways warm
                _download(path, work, size, expected=None)
        for number in range(rounds):
            order = paths if number % 2 == 0 else paths[::-1]
            for path in order:
                path.runs.append(_download(path, work, size, expected if number == 0 else None))
                print(
                    f"reach round {number + 1}/{rounds}: {path.label} "
                    f"{path.speeds(size)[-1]:,.0f} MB/s",
                    file=sys.stderr,
                    flush=True,
                )
    shutil.rmtree(work, ignore_errors=True)
    return _section(section, config, paths, rounds)


def _build(internet: netns.Internet, work: Path, source: Path) -> list[Route]:
    """The tracker, the home router with its serving host and two peers, the downloaders."""
    tracker = Tracker(internet.public_host("tracker"), work / "tracker")
    home = internet.home_router("home")
    alice = home.lan_host("alice")
    home.forward_port(FORWARDED_PORT, alice)
    folders = []
    for port, name in ((FORWARDED_PORT, FORWARDED_NAME), (CLOSED_PORT, CLOSED_NAME)):
        folder = work / f"alice-{port}"
        folder.mkdir(parents=True, exist_ok=True)
        os.link(source, folder / name)
        folders.append(folder)
    forwarded = ServingPeer(alice, folders[0], tracker, port=FORWARDED_PORT)
    closed = ServingPeer(alice, folders[1], tracker, port=CLOSED_PORT)
    forwarded.wait_for(programs.REACHABLE, timeout=60)
    closed.wait_for(programs.NOT_REACHABLE, timeout=60)
    carol = internet.public_host("carol")
    bob = internet.home_router("away").lan_host("bob")
    return [
        Route(DIRECT, carol, forwarded, FORWARDED_NAME),
        Route(REVERSE, carol, closed, CLOSED_NAME),
        Route(RELAY, bob, closed, CLOSED_NAME),
    ]


def _download(path: Route, work: Path, size: int, expected: str | None) -> Run:
    """One download of the path's name (its source alone has it) into a fresh folder: what it
    said of the path, its size and, when `expected` is given, its bytes checked.
    """
    into = work / f"into-{path.label}"
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    os.sync()  # no write-back of the last download during this one
    # A path that fails fails in 30 s, not after the default 120 s of silence.
    command = programs.download_command(
        path.source.tracker, path.name, into, "--give-up-after", "30"
    )
    lines = timed_lines(path.downloader.exec(command), env=programs.ENV)
    output = "\n".join(line for _, line in lines.lines)
    found = lines.first(SAYS.get(path.label, BEGINS))
    done = lines.first(DONE)
    if found is None or done is None:
        raise BenchError(f"the {path.label} download did not say it went so:\n{output[-2000:]}")
    got = into / path.name
    if not got.exists() or got.stat().st_size != size:
        raise BenchError(f"the {path.label} download did not produce the whole file")
    if expected is not None and sha256_of(got) != expected:
        raise BenchError(f"the {path.label} download produced different bytes")
    shutil.rmtree(into)
    return Run(lines.timed, found, done)


def _section(section: Section, config: Config, paths: list[Route], rounds: int) -> Section:
    size = config.transfer_size
    direct, reverse, relay = paths
    ratios = [r / d for r, d in zip(reverse.speeds(size), direct.speeds(size), strict=True)]
    ratio = median(ratios)
    section.rows += [
        Row(
            "direct, through a port the router forwards (end to end)",
            median(direct.speeds(size)),
            "MB/s",
        ),
        Row(
            "reverse connection, the peer dialling out (end to end)",
            median(reverse.speeds(size)),
            "MB/s",
        ),
        Row("reverse / direct, same links", ratio, "×", f"≥ {TARGET:.2f}×", ratio >= TARGET),
        Row(
            "relay, default caps, both peers behind routers (end to end)",
            median(relay.speeds(size)),
            "MB/s",
        ),
        Row("relay / direct", median(relay.speeds(size)) / median(direct.speeds(size)), "×"),
        Row(
            "relay, from the path found to the file verified",
            median(relay.carried(size)),
            "MB/s",
        ),
        Row("relay: seconds before the path is found", relay.finding(), "s"),
    ]
    warm = "" if config.quick else ", after an untimed one of each"
    section.details += [
        f"A {format_size(size)} file of random bytes, shared twice (hard links) by one host "
        f"behind a home router: on port {FORWARDED_PORT}, which the router forwards, and on "
        f"port {CLOSED_PORT}, which it does not, each under a name of its own. `napshare-peer "
        "download NAME` over TLS as a user runs it, from a public host (direct and reverse) "
        "and from a host behind a second router (relay: the tracker's own, default caps, so "
        f"{format_size(RelayCaps().session_bytes)} per session each way; gRPC opens a connection, "
        "so a session, per stream). A downloader behind a router knows that a reverse dial "
        f"could not reach it (ConnectRequest.caller_ip) and asks for the relay at once. {rounds} "
        f"round{'s' if rounds > 1 else ''}, the order reversed every other round{warm}; each "
        "download's size checked, its SHA-256 in the first round. MB/s from process start to "
        "exit, medians; the ratio is the median of the per-round ratios "
        f"({', '.join(f'{r:.2f}' for r in ratios)}). The links are veths between network "
        "namespaces: no delay or loss, but a real NAT and conntrack on the path.",
        "",
        "| Path | MB/s per round, end to end | MB/s per round, from the path found "
        "| Seconds to find the path (median) |",
        "|---|---|---|---|",
    ]
    for path in paths:
        section.details.append(
            f"| {path.label} | {', '.join(f'{v:,.0f}' for v in path.speeds(size))} "
            f"| {', '.join(f'{v:,.0f}' for v in path.carried(size))} | {path.finding():.2f} |"
        )
    return section
