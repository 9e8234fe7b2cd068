"""`make soak`: minutes of churn against one tracker and a few real peers, reported per slice.

It lives with the benchmarks (not in tests/) because it is built from their parts (processes,
RSS, percentiles, the tracker's catalog of made-up files) and its table goes into
BENCHMARKS.md; it is not part of `make test`, whose smoke test runs it for seconds only.

    .venv/bin/python -m tests.bench.soak --minutes 3          the run whose table is committed
    .venv/bin/python -m tests.bench.soak --seconds 15 --sim-peers 20 --real-peers 2 --no-report

What runs at once, on loopback: a tracker (short heartbeat interval, so leases run out during
the soak); hundreds of simulated peers in a few worker processes (gRPC clients claiming
distinct ports that Join with made-up files, Heartbeat, Update, Leave and come back); keyword
and exact-name searches; a handful of real `napshare-peer serve` processes sharing real files,
one of them SIGKILLed at random every so often and restarted; real `napshare-peer download`
processes whose results are checked against the files' sha256; slow readers holding raw
Download streams open, reading one chunk every few seconds. Per time slice it reports the
errors by status code per RPC, the p99 latency of Search and of the health checks, and the
RSS of the tracker and of the real peers. Then three tracker replicas on one Redis take a
storm of calls while they are SIGKILLed in turn, and the Redis restarts empty under two of
them (tests/support/chaos.py). The exit code is 1 when any answer was UNKNOWN or INTERNAL,
when a finished download did not verify, or when a replica check failed.
"""

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from napshare.v1 import file_info_pb2, peer_pb2, peer_pb2_grpc, tracker_pb2, tracker_pb2_grpc

from tests.bench import apps, catalog
from tests.bench.files import MIB, make_random_file
from tests.bench.procs import (
    PYTHON,
    ROOT,
    Service,
    child_env,
    percentile,
    rss_bytes,
    start_service,
    stop,
)
from tests.support.chaos import Report, Storm, store_loss
from tests.support.redis import RedisServer, store_url

RESULT = Path(__file__).with_name("soak-result.md")
BENCHMARKS = ROOT / "BENCHMARKS.md"
BEGIN, END = "<!-- soak: begin -->", "<!-- soak: end -->"
BUGS = {"UNKNOWN", "INTERNAL"}
FIRST_SIM_PORT = 20_000  # below the kernel's ephemeral range, where the real peers listen
REAL_NAME = "soak-real-{}.bin"
RPC_TIMEOUT = 10.0
OPEN_AT_END = "still open at the end"  # a slow reader's stream the soak ended, not the peer
DOWNLOAD_PROCESS = "napshare-peer download"  # not an RPC: a process, verified or its exit code


def _code(error: grpc.RpcError) -> str:
    return str(error.code().name)  # type: ignore[attr-defined]


@dataclass
class Tally:
    """Calls by (slice, RPC, status code) and latencies in ms by (slice, RPC)."""

    start: float
    slice_seconds: float
    counts: Counter[tuple[int, str, str]] = field(default_factory=Counter)
    latencies: dict[tuple[int, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def slice_of(self, when: float) -> int:
        return int((when - self.start) // self.slice_seconds)

    def add(self, rpc: str, code: str, began: float, timed: bool = False) -> None:
        now = time.time()
        index = self.slice_of(began)
        with self.lock:
            self.counts[index, rpc, code] += 1
            if timed:
                self.latencies[index, rpc].append((now - began) * 1000)

    def call(self, rpc: str, function: Any, request: Any, timed: bool = False) -> Any:
        """Call `function(request)`; count its status; the response, or None if it failed."""
        began = time.time()
        try:
            response = function(request, timeout=RPC_TIMEOUT)
        except grpc.RpcError as error:
            self.add(rpc, _code(error), began, timed)
            return None
        self.add(rpc, "OK", began, timed)
        return response

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": [[i, rpc, code, n] for (i, rpc, code), n in self.counts.items()],
            "latencies": [[i, rpc, values] for (i, rpc), values in self.latencies.items()],
        }

    def merge(self, data: dict[str, Any]) -> None:
        for i, rpc, code, n in data["counts"]:
            self.counts[i, rpc, code] += n
        for i, rpc, values in data["latencies"]:
            self.latencies[i, rpc].extend(values)


# ---- simulated peers and searches (one worker process each) -------------------------------


def _info(entry: catalog.Entry) -> file_info_pb2.FileInfo:
    return file_info_pb2.FileInfo(name=entry.name, size=entry.size, sha256=entry.sha256)


def _simulate(
    tally: Tally,
    stub: tracker_pb2_grpc.TrackerServiceStub,
    peers: list[int],
    *,
    entries: list[catalog.Entry],
    files: int,
    interval: float,
    until: float,
) -> None:
    """Drive `peers` (indexes) through Join, Heartbeat, Update and Leave until `until`."""
    rng = random.Random(peers[0])
    state: dict[int, tuple[str, str, list[int]] | None] = dict.fromkeys(peers)
    due = {peer: time.time() + rng.uniform(0, interval) for peer in peers}
    while True:
        peer = min(due, key=due.__getitem__)
        wait = due[peer] - time.time()
        if due[peer] >= until:
            break
        if wait > 0:
            time.sleep(wait)
        joined = state[peer]
        if joined is None:
            chosen = rng.sample(range(len(entries)), files)
            request = tracker_pb2.JoinRequest(
                host="127.0.0.1",
                port=FIRST_SIM_PORT + peer,
                files=[_info(entries[i]) for i in chosen],
            )
            answer = tally.call("Join", stub.Join, request)
            if answer is not None:
                state[peer] = (answer.peer_id, answer.token, chosen)
            due[peer] = time.time() + (interval * rng.uniform(0.5, 0.9) if answer else 2.0)
            continue
        peer_id, token, chosen = joined
        roll = rng.random()
        if roll < 0.08:
            tally.call("Leave", stub.Leave, tracker_pb2.LeaveRequest(peer_id=peer_id, token=token))
            state[peer] = None
            due[peer] = time.time() + rng.uniform(1.0, interval)
            continue
        if roll < 0.2:
            gone = rng.sample(chosen, 2)
            added = [i for i in rng.sample(range(len(entries)), 3) if i not in chosen]
            request = tracker_pb2.UpdateRequest(
                peer_id=peer_id,
                token=token,
                files=[_info(entries[i]) for i in added],
                removed_names=[entries[i].name for i in gone],
            )
            if tally.call("Update", stub.Update, request) is not None:
                state[peer] = (peer_id, token, [i for i in chosen if i not in gone] + added)
        else:
            request = tracker_pb2.HeartbeatRequest(peer_id=peer_id, token=token)
            if tally.call("Heartbeat", stub.Heartbeat, request) is None:
                state[peer] = None  # lease lost (or the tracker refused): join again
        due[peer] = time.time() + interval * rng.uniform(0.5, 0.9)


def _search(
    tally: Tally,
    stub: tracker_pb2_grpc.TrackerServiceStub,
    *,
    entries: list[catalog.Entry],
    real_files: int,
    pause: float,
    until: float,
    seed: int,
) -> None:
    """Exact names and keyword queries, one at a time with `pause` s between, until `until`."""
    rng = random.Random(seed)
    while time.time() < until:
        roll = rng.random()
        if roll < 0.4:
            words = rng.choice(entries).name.split("-")[2:4]
            request = tracker_pb2.SearchRequest(query=" ".join(words), page_size=100)
        elif roll < 0.8:
            request = tracker_pb2.SearchRequest(name=rng.choice(entries).name)
        else:
            request = tracker_pb2.SearchRequest(name=REAL_NAME.format(rng.randrange(real_files)))
        tally.call("Search", stub.Search, request, timed=True)
        time.sleep(pause)


def worker(argv: Sequence[str]) -> int:
    """One worker process: its share of the simulated peers and of the searches."""
    parser = argparse.ArgumentParser(prog="soak worker")
    for flag in ("--tracker", "--out"):
        parser.add_argument(flag, required=True)
    for flag in ("--first", "--count", "--files", "--distinct", "--searchers", "--real-files"):
        parser.add_argument(flag, type=int, required=True)
    for flag in ("--start", "--until", "--slice", "--interval", "--search-pause"):
        parser.add_argument(flag, type=float, required=True)
    args = parser.parse_args(argv)
    tally = Tally(args.start, args.slice)
    entries = catalog.make_catalog(args.distinct)
    peers = list(range(args.first, args.first + args.count))
    channels = [grpc.insecure_channel(args.tracker) for _ in range(2)]
    threads = []
    groups = [peers[i::8] for i in range(8)]
    for n, group in enumerate(g for g in groups if g):
        stub = tracker_pb2_grpc.TrackerServiceStub(channels[n % 2])
        threads.append(
            threading.Thread(
                target=_simulate,
                args=(tally, stub, group),
                kwargs={
                    "entries": entries,
                    "files": args.files,
                    "interval": args.interval,
                    "until": args.until,
                },
            )
        )
    for n in range(args.searchers):
        stub = tracker_pb2_grpc.TrackerServiceStub(channels[n % 2])
        threads.append(
            threading.Thread(
                target=_search,
                args=(tally, stub),
                kwargs={
                    "entries": entries,
                    "real_files": args.real_files,
                    "pause": args.search_pause,
                    "until": args.until,
                    "seed": n,
                },
            )
        )
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for channel in channels:
        channel.close()
    Path(args.out).write_text(json.dumps(tally.to_json()))
    return 0


# ---- real peers, downloads, slow readers, health, RSS (in the soak's own process) ----------


@dataclass
class RealPeer:
    """One `napshare-peer serve` process slot: its folder, and the process now running."""

    index: int
    folder: Path
    extra: list[str]
    service: Service | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, tracker: str) -> None:
        command = apps.serve(self.folder, tracker, [*apps.PLAINTEXT, *self.extra])
        self.service = start_service(f"real peer {self.index}", command)

    @property
    def address(self) -> str | None:
        service = self.service
        return None if service is None or service.process.poll() is not None else service.address


@dataclass
class Outcomes:
    """What happened to downloads, slow readers, kills and RSS samples, by slice."""

    downloads: Counter[str] = field(default_factory=Counter)
    kills: Counter[int] = field(default_factory=Counter)
    tracker_rss: dict[int, int] = field(default_factory=dict)
    peer_rss: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(4 * MIB):
            digest.update(block)
    return digest.hexdigest()


def _downloads(
    tally: Tally, outcomes: Outcomes, *, tracker: str, digests: list[str], until: float, seed: int
) -> None:
    """Real `napshare-peer download` processes one after another, each result verified."""
    rng = random.Random(seed)
    scratch = Path(tempfile.mkdtemp(prefix="soak-download-"))
    try:
        while time.time() < until:
            index = rng.randrange(len(digests))
            into = scratch / str(rng.random())[2:]
            into.mkdir()
            name = REAL_NAME.format(index)
            extra = [*apps.PLAINTEXT, "--stall-timeout", "5", "--give-up-after", "60"]
            extra += ["--log-level", "error"]
            began = time.time()
            result = subprocess.run(
                apps.download(name, into, tracker, extra),
                cwd=ROOT,
                env=child_env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=600,
                check=False,
            )
            if result.returncode == 0:
                good = _sha256(into / name) == digests[index]
                outcome = "verified" if good else "CORRUPT"
            else:
                outcome = f"exit {result.returncode}"
            tally.add(DOWNLOAD_PROCESS, outcome, began)
            with outcomes.lock:
                outcomes.downloads[outcome] += 1
            shutil.rmtree(into, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _slow_reader(
    tally: Tally, peers: list[RealPeer], pause: float, until: float, seed: int
) -> None:
    """Raw Download streams that take one chunk every `pause` s, until the peer ends them."""
    rng = random.Random(seed)
    while time.time() < until:
        address = rng.choice(peers).address
        if address is None:
            time.sleep(0.5)
            continue
        began = time.time()
        code = OPEN_AT_END
        # No BDP probing, as the real downloader: else gRPC's window grows to megabytes that
        # this reader takes minutes to drain before it sees how its stream ended.
        with grpc.insecure_channel(address, options=[("grpc.http2.bdp_probe", 0)]) as channel:
            stub = peer_pb2_grpc.PeerServiceStub(channel)
            name = REAL_NAME.format(rng.randrange(2))
            # A deadline past the soak's end and the reader's last pause: not one of the ends.
            deadline = until - began + 2 * pause + 10
            stream = stub.Download(peer_pb2.DownloadRequest(name=name), timeout=deadline)
            try:
                for _ in stream:
                    if time.time() >= until:
                        stream.cancel()
                        break
                    time.sleep(pause)
                else:
                    code = "OK"
            except grpc.RpcError as error:
                code = _code(error)
        if code != "CANCELLED" or time.time() < until:
            tally.add("Download (slow reader)", code, began)
        if code not in {"OK", OPEN_AT_END}:
            time.sleep(1.0)


def _health(tally: Tally, tracker: str, peers: list[RealPeer], until: float) -> None:
    """Health checks of the tracker and of a live real peer, four times a second."""
    rng = random.Random(3)
    with grpc.insecure_channel(tracker) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        while time.time() < until:
            tally.call("Health (tracker)", check, health_pb2.HealthCheckRequest(), timed=True)
            address = rng.choice(peers).address
            if address is not None:
                with grpc.insecure_channel(address) as peer_channel:
                    peer_check = health_pb2_grpc.HealthStub(peer_channel).Check
                    tally.call("Health (peer)", peer_check, health_pb2.HealthCheckRequest(), True)
            time.sleep(0.25)


def _killer(
    tally: Tally,
    outcomes: Outcomes,
    tracker: str,
    peers: list[RealPeer],
    timing: tuple[float, float],
) -> None:
    """SIGKILL a random real peer every `every` s (give or take), and restart it soon after."""
    every, until = timing
    rng = random.Random(11)
    while True:
        time.sleep(every * rng.uniform(0.5, 1.5))
        if time.time() > until - 2:
            return
        victim = rng.choice(peers)
        with victim.lock:
            service = victim.service
            if service is None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.process.pid, 9)
            service.process.wait()
            service.log.unlink(missing_ok=True)
            with outcomes.lock:
                outcomes.kills[tally.slice_of(time.time())] += 1
            time.sleep(rng.uniform(1.0, 4.0))
            victim.start(tracker)


def _sample_rss(
    tally: Tally, outcomes: Outcomes, tracker: Service, peers: list[RealPeer], until: float
) -> None:
    while time.time() < until:
        index = tally.slice_of(time.time())
        sizes = []
        for peer in peers:
            service = peer.service
            with contextlib.suppress(Exception):
                if service is not None:
                    sizes.append(rss_bytes(service.pid))
        with contextlib.suppress(Exception):
            tracker_rss = rss_bytes(tracker.pid)
            with outcomes.lock:
                outcomes.tracker_rss[index] = max(outcomes.tracker_rss.get(index, 0), tracker_rss)
                if sizes:
                    outcomes.peer_rss[index] = max(outcomes.peer_rss.get(index, 0), *sizes)
        time.sleep(1.0)


# ---- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """How big a soak is; the defaults fit a 2-core machine shared with other work."""

    seconds: float = 180.0
    slice_seconds: float = 30.0
    sim_peers: int = 300
    workers: int = 2
    files_per_peer: int = 20
    distinct: int = 3000
    heartbeat: float = 5.0
    searchers_per_worker: int = 3
    search_pause: float = 0.05
    real_peers: int = 4
    real_files: int = 3
    file_size: int = 24 * MIB
    downloaders: int = 2
    slow_readers: int = 3
    slow_pause: float = 20.0  # one 1 MiB chunk per 20 s: under the 64 KiB/s minimum
    kill_every: float = 20.0
    tracker_args: tuple[str, ...] = ()
    serve_args: tuple[str, ...] = ()
    replica_seconds: float = 60.0  # then: three replicas on one Redis, one SIGKILLed every
    replica_kill_every: float = 3.0  # this many seconds (0 seconds: no replica phase)


# Fair slots that act within a soak: a slow reader loses its slot after grace + window (15 s).
# Every client here is 127.0.0.1, so the per-address limit is raised to the slot count; the
# first peer runs under an upload cap, so that a capped peer is soaked too.
SERVE_FLAGS = [
    "--max-uploads",
    "6",
    "--max-uploads-per-address",
    "6",
    "--upload-grace",
    "5",
    "--upload-rate-window",
    "10",
    "--log-level",
    "error",
]
CAPPED = ["--max-upload-rate", "16M"]
# The simulated peers all call from 127.0.0.1: one address may hold them all. The soak runs
# in plain text: it is about load, and TLS has its own row in make bench.
TRACKER_FLAGS = ["--max-peers-per-address", "10000"]


def run(shape: Shape, workdir: Path) -> tuple[Tally, Outcomes]:
    """Run the soak; every process it starts is stopped however it ends."""
    sources = workdir / "files"
    sources.mkdir()
    digests = [
        _sha256(make_random_file(sources / REAL_NAME.format(i), shape.file_size + i * 4099))
        for i in range(shape.real_files)
    ]
    tracker_command = [*apps.tracker(shape.heartbeat), *TRACKER_FLAGS, *shape.tracker_args]
    tracker = start_service("tracker", tracker_command)
    peers: list[RealPeer] = []
    workers: list[subprocess.Popen[bytes]] = []
    start = time.time()
    tally = Tally(start, shape.slice_seconds)
    outcomes = Outcomes()
    try:
        for index in range(shape.real_peers):
            folder = workdir / f"peer-{index}"
            folder.mkdir()
            for i in range(shape.real_files):
                name = REAL_NAME.format(i)
                os.link(sources / name, folder / name)
            extra = SERVE_FLAGS + (CAPPED if index == 0 else []) + list(shape.serve_args)
            peer = RealPeer(index, folder, extra)
            peer.start(tracker.address)
            peers.append(peer)
        start = time.time()
        until = start + shape.seconds
        tally = Tally(start, shape.slice_seconds)
        share, rest = divmod(shape.sim_peers, shape.workers)
        first = 0
        for n in range(shape.workers):
            count = share + (n < rest)
            command = [
                PYTHON,
                "-m",
                "tests.bench.soak",
                "worker",
                *("--tracker", tracker.address, "--out", str(workdir / f"worker-{n}.json")),
                *("--first", str(first), "--count", str(count)),
                *("--files", str(shape.files_per_peer), "--distinct", str(shape.distinct)),
                *("--searchers", str(shape.searchers_per_worker)),
                *("--real-files", str(shape.real_files), "--start", str(start)),
                *("--until", str(until), "--slice", str(shape.slice_seconds)),
                *("--interval", str(shape.heartbeat), "--search-pause", str(shape.search_pause)),
            ]
            workers.append(subprocess.Popen(command, cwd=ROOT, env=child_env()))
            first += count
        threads = [
            threading.Thread(target=_health, args=(tally, tracker.address, peers, until)),
            threading.Thread(target=_sample_rss, args=(tally, outcomes, tracker, peers, until)),
            threading.Thread(
                target=_killer,
                args=(tally, outcomes, tracker.address, peers, (shape.kill_every, until)),
            ),
        ]
        threads += [
            threading.Thread(
                target=_downloads,
                args=(tally, outcomes),
                kwargs={"tracker": tracker.address, "digests": digests, "until": until, "seed": n},
            )
            for n in range(shape.downloaders)
        ]
        threads += [
            threading.Thread(target=_slow_reader, args=(tally, peers, shape.slow_pause, until, n))
            for n in range(shape.slow_readers)
        ]
        for thread in threads:
            thread.daemon = True
            thread.start()
        for thread in threads:
            thread.join()
        for n, process in enumerate(workers):
            process.wait(timeout=120)
            tally.merge(json.loads((workdir / f"worker-{n}.json").read_text()))
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
        for peer in peers:
            if peer.service is not None:
                stop(peer.service)
        stop(tracker)
    return tally, outcomes


@dataclass
class ReplicaOutcome:
    """What the replica phase did: the storm's report, and the store loss's problems."""

    storm: Report
    store_loss: list[str]

    @property
    def failed(self) -> bool:
        return bool(self.storm.problems or self.store_loss)


def replicas(shape: Shape, workdir: Path) -> ReplicaOutcome | None:
    """Three trackers on one Redis (a server of the soak's own, without persistence), a storm
    of calls to them while one at a time is SIGKILLed and restarted, the checks of
    tests/support/chaos.py; then that Redis restarted empty under two of them.
    """
    if shape.replica_seconds <= 0:
        return None
    server = RedisServer(workdir / "redis")
    try:
        storm = Storm(store_url(server), workdir, replicas=3)
        try:
            report = storm.run(
                shape.replica_seconds, workers=4, peers=25, kill_every=shape.replica_kill_every
            )
        finally:
            storm.stop()
        return ReplicaOutcome(report, store_loss(server, workdir))
    finally:
        server.stop()


# ---- the report ----------------------------------------------------------------------------


def _errors(counts: Counter[tuple[str, str]]) -> str:
    failed = sorted(
        ((rpc, code), n)
        for (rpc, code), n in counts.items()
        if code not in {"OK", OPEN_AT_END} and rpc != DOWNLOAD_PROCESS
    )
    return "; ".join(f"{rpc} {code} {n:,}" for (rpc, code), n in failed) or "none"


def _p99(values: list[float]) -> str:
    return f"{percentile(values, 0.99):.1f}" if values else "–"


def _mib(value: int | None) -> str:
    return f"{value / MIB:.0f}" if value else "–"


def summary(tally: Tally, outcomes: Outcomes) -> dict[str, Any]:
    """The totals the exit code and the smoke test look at."""
    by_code: Counter[str] = Counter()
    for (_i, _rpc, code), n in tally.counts.items():
        by_code[code] += n
    return {
        "bugs": sum(by_code[code] for code in BUGS),
        "by_code": dict(by_code),
        "downloads": dict(outcomes.downloads),
        "corrupt": outcomes.downloads["CORRUPT"],
        "verified": outcomes.downloads["verified"],
        "kills": sum(outcomes.kills.values()),
        "searches": sum(n for (_i, rpc, _c), n in tally.counts.items() if rpc == "Search"),
    }


def replica_lines(shape: Shape, outcome: ReplicaOutcome | None) -> list[str]:
    """The replica phase's paragraph and table."""
    if outcome is None:
        return []
    report = outcome.storm
    rpcs = sorted({rpc for rpc, _code in report.calls})
    lines = [
        "",
        "### Replicas on one Redis",
        "",
        f"Then three trackers on one Redis (`--store unix://...`, a server without "
        f"persistence) for {report.seconds:.0f} s: 4 threads of 25 simulated peers each sent "
        "Joins, Updates, Heartbeats, Leaves and Searches to replicas picked at random while "
        f"one replica was SIGKILLed and restarted every {shape.replica_kill_every:g} s "
        f"({report.kills} kills). Afterwards (tests/support/chaos.py): every registration "
        "whose last change was acknowledged held exactly its files, no Search said "
        "`gathering`, and the store's audit recounted everything.",
        "",
        "| RPC | answers by status code |",
        "|---|---|",
    ]
    for rpc in rpcs:
        codes = sorted((code, n) for (r, code), n in report.calls.items() if r == rpc)
        lines.append(f"| {rpc} | " + ", ".join(f"{code} {n:,}" for code, n in codes) + " |")
    shown = "; ".join(report.problems[:5]) or "none"
    loss = "; ".join(outcome.store_loss) or "none"
    lines += [
        "",
        f"Problems found: {len(report.problems)} ({shown}); {report.registered} registrations "
        f"and {report.entries} entries left, all accounted for. Redis then restarted empty "
        f"under two replicas: each noticed once, said `gathering` for one lease and then no "
        f"more; problems: {loss}.",
    ]
    return lines


def markdown(
    shape: Shape,
    tally: Tally,
    outcomes: Outcomes,
    command: str,
    replica: ReplicaOutcome | None = None,
) -> str:
    """The soak's table and summary, between the markers BENCHMARKS.md keeps it by."""
    slices = sorted({i for i, _rpc, _code in tally.counts} | set(outcomes.tracker_rss))
    slices = [i for i in slices if 0 <= i < shape.seconds / shape.slice_seconds]
    lines = [
        BEGIN,
        "## Soak",
        "",
        f"<!-- Written by tests/bench/soak.py (`make soak`); run.py includes "
        f"{RESULT.name} here. -->",
        "",
        f"From `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"{shape.seconds:.0f} s on loopback; {shape.sim_peers} simulated peers "
        f"({shape.files_per_peer} made-up files each, heartbeat every {shape.heartbeat:g} s, "
        "so leases of those that leave or lose one run out) joining, heartbeating, updating and "
        f"leaving from {shape.workers} processes, with {shape.workers * shape.searchers_per_worker}"
        f" searchers (exact names and keywords); {shape.real_peers} real `napshare-peer serve` "
        f"processes sharing {shape.real_files} files of about {shape.file_size // MIB} MiB (the "
        "first capped at 16 MiB/s), one SIGKILLed and restarted about every "
        f"{shape.kill_every:g} s; {shape.downloaders} real `napshare-peer download` processes at "
        f"a time, each result checked against its sha256; {shape.slow_readers} slow readers "
        f"taking one chunk every {shape.slow_pause:g} s. Health checks of the tracker and of a "
        "live peer four times a second. Latencies are taken in the clients' own (busy) "
        "processes, on the same 2 cores as everything else.",
        "",
        "| slice (s) | calls | errors by RPC and code | Search p99 ms | tracker health p99 ms "
        "| peer health p99 ms | tracker RSS MiB | peer RSS MiB (max) | kills "
        "| downloads verified / other |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i in slices:
        counts: Counter[tuple[str, str]] = Counter()
        for (j, rpc, code), n in tally.counts.items():
            if j == i:
                counts[rpc, code] += n
        downloads = {code: n for (rpc, code), n in counts.items() if rpc == DOWNLOAD_PROCESS}
        verified = downloads.pop("verified", 0)
        calls = sum(n for (rpc, _c), n in counts.items() if rpc != DOWNLOAD_PROCESS)
        span = f"{i * shape.slice_seconds:.0f}–{(i + 1) * shape.slice_seconds:.0f}"
        lines.append(
            f"| {span} | {calls:,} | {_errors(counts)} "
            f"| {_p99(tally.latencies.get((i, 'Search'), []))} "
            f"| {_p99(tally.latencies.get((i, 'Health (tracker)'), []))} "
            f"| {_p99(tally.latencies.get((i, 'Health (peer)'), []))} "
            f"| {_mib(outcomes.tracker_rss.get(i))} | {_mib(outcomes.peer_rss.get(i))} "
            f"| {outcomes.kills.get(i, 0)} | {verified} / {sum(downloads.values())} |"
        )
    total = summary(tally, outcomes)
    per_rpc: Counter[tuple[str, str]] = Counter()
    for (_i, rpc, code), n in tally.counts.items():
        per_rpc[rpc, code] += n
    rpcs = sorted({rpc for rpc, _code in per_rpc})
    lines += ["", "| RPC | answers by status code |", "|---|---|"]
    for rpc in rpcs:
        codes = sorted((code, n) for (r, code), n in per_rpc.items() if r == rpc)
        lines.append(f"| {rpc} | " + ", ".join(f"{code} {n:,}" for code, n in codes) + " |")
    searches = [v for (_i, r), values in tally.latencies.items() if r == "Search" for v in values]
    verdict = (
        "**no UNKNOWN or INTERNAL answer, and every download that finished verified**"
        if not total["bugs"] and not total["corrupt"]
        else f"**FAILED: {total['bugs']} UNKNOWN/INTERNAL answers, {total['corrupt']} corrupt "
        "downloads**"
    )
    lines += [
        "",
        f"Summary: {verdict}. {total['verified']} downloads verified, "
        + (
            ", ".join(f"{n} {k}" for k, n in sorted(total["downloads"].items()) if k != "verified")
            or "none failed"
        )
        + f"; {total['kills']} peers SIGKILLed and restarted; Search p99 over the whole run "
        f"{_p99(searches)} ms over {len(searches):,} searches; tracker RSS "
        f"{_mib(min(outcomes.tracker_rss.values(), default=0))}–"
        f"{_mib(max(outcomes.tracker_rss.values(), default=0))} MiB. A slow reader's stream "
        "ending RESOURCE_EXHAUSTED is the fair-slot rule reclaiming it (the peers run with a "
        "5 s grace and a 10 s window); UNAVAILABLE or CANCELLED is a peer SIGKILLed under it; "
        "OK, that it read the whole file. Downloads that exit non-zero (a `download` "
        "exit code, see `napshare-peer --help`) ran out of peers or time while theirs were "
        "killed; none may finish with wrong bytes.",
        *replica_lines(shape, replica),
        END,
    ]
    return "\n".join(lines) + "\n"


def _into_benchmarks(text: str) -> None:
    """Put the soak's section into BENCHMARKS.md in place of the last one, or at its end."""
    if not BENCHMARKS.exists():
        return
    current = BENCHMARKS.read_text()
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        BENCHMARKS.write_text(head + text.rstrip("\n") + tail)
    else:
        BENCHMARKS.write_text(current.rstrip("\n") + "\n\n" + text)


def _parser() -> argparse.ArgumentParser:
    defaults = Shape()
    parser = argparse.ArgumentParser(prog="python -m tests.bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=defaults.seconds / 60)
    parser.add_argument("--seconds", type=float, help="the length in seconds (overrides minutes)")
    parser.add_argument("--slice", type=float, help="seconds per row (default: a sixth of it)")
    parser.add_argument("--sim-peers", type=int, default=defaults.sim_peers)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--real-peers", type=int, default=defaults.real_peers)
    parser.add_argument("--file-mib", type=int, default=defaults.file_size // MIB)
    parser.add_argument("--downloaders", type=int, default=defaults.downloaders)
    parser.add_argument("--slow-readers", type=int, default=defaults.slow_readers)
    parser.add_argument(
        "--slow-pause", type=float, default=defaults.slow_pause, help="seconds between chunks"
    )
    parser.add_argument("--kill-every", type=float, default=defaults.kill_every)
    parser.add_argument("--heartbeat", type=float, default=defaults.heartbeat)
    parser.add_argument(
        "--replica-seconds",
        type=float,
        default=defaults.replica_seconds,
        help="seconds of the replicas' storm on one Redis (0: none)",
    )
    parser.add_argument("--replica-kill-every", type=float, default=defaults.replica_kill_every)
    parser.add_argument(
        "--tracker-arg", action="append", default=[], help="extra flag for the tracker"
    )
    parser.add_argument(
        "--serve-arg", action="append", default=[], help="extra flag for every real peer"
    )
    parser.add_argument("--out", type=Path, default=RESULT, help="the markdown written")
    parser.add_argument("--json", type=Path, help="the summary as JSON, for the smoke test")
    parser.add_argument(
        "--no-report", action="store_true", help=f"write neither {RESULT.name} nor BENCHMARKS.md"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`make soak`; 1 when any answer was UNKNOWN or INTERNAL or a download did not verify."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["worker"]:
        return worker(argv[1:])
    args = _parser().parse_args(argv)
    seconds = args.seconds or args.minutes * 60
    shape = Shape(
        seconds=seconds,
        slice_seconds=args.slice or seconds / 6,
        sim_peers=args.sim_peers,
        workers=args.workers,
        real_peers=args.real_peers,
        file_size=args.file_mib * MIB,
        downloaders=args.downloaders,
        slow_readers=args.slow_readers,
        slow_pause=args.slow_pause,
        kill_every=args.kill_every,
        heartbeat=args.heartbeat,
        tracker_args=tuple(args.tracker_arg),
        serve_args=tuple(args.serve_arg),
        replica_seconds=args.replica_seconds,
        replica_kill_every=args.replica_kill_every,
    )
    workdir = Path(tempfile.mkdtemp(prefix="napshare-soak-"))
    tempfile.tempdir = str(workdir)  # the children's logs stay in the soak's folder
    try:
        tally, outcomes = run(shape, workdir)
        replica = replicas(shape, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    command = "make soak" if argv == [] else "python -m tests.bench.soak " + " ".join(argv)
    text = markdown(shape, tally, outcomes, command, replica)
    print(text)
    if not args.no_report:
        args.out.write_text(text)
        _into_benchmarks(text)
    total = summary(tally, outcomes)
    if replica is not None:
        total["replica_problems"] = replica.storm.problems + replica.store_loss
        total["replica_kills"] = replica.storm.kills
    if args.json:
        args.json.write_text(json.dumps(total, indent=2))
    failed = replica is not None and replica.failed
    return 1 if total["bugs"] or total["corrupt"] or failed else 0


if __name__ == "__main__":
    sys.exit(main())
