"""Tracker scale: a million (file, peer) entries, then search throughput, latency, Join, RSS."""

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from napshare.common.names import MAX_NAME_BYTES
from napshare.v1 import tracker_pb2

from tests.bench import apps, catalog, loadgen
from tests.bench.config import Config
from tests.bench.procs import BenchError, Service, median, percentile, rss_bytes, running
from tests.bench.report import Row, Section

SEARCH = "/napshare.v1.TrackerService/Search"
JOIN = "/napshare.v1.TrackerService/Join"
PEER_PORT = 6699
IN_FLIGHT = 8
# Long enough that no loaded peer's lease runs out while the benchmark runs.
HEARTBEAT_SECONDS = 3600


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Loaded:
    """What loading the tracker did."""

    entries: int
    shared: list[str]
    seconds: float
    rss_before: int
    rss_after: int


def _call(channel: grpc.Channel, method: str) -> Callable[..., bytes]:
    return channel.unary_unary(method, None, None)  # bytes in, bytes out


def load(config: Config, tracker: Service, entries: list[catalog.Entry]) -> Loaded:
    """Join `peers` peers with `files_per_peer` files each, a few calls in flight at a time."""
    encoder = catalog.Encoder(entries)
    used: set[int] = set()
    with grpc.insecure_channel(tracker.address) as channel:
        join = _call(channel, JOIN)
        search = _call(channel, SEARCH)
        search(tracker_pb2.SearchRequest(name="warm-up.mp4").SerializeToString(), timeout=10)
        time.sleep(0.5)
        rss_before = rss_bytes(tracker.pid)
        slots = threading.BoundedSemaphore(IN_FLIGHT)
        failures: list[BaseException] = []
        pending = []

        def done(finished: "grpc.Future[bytes]") -> None:
            problem = finished.exception()
            if problem is not None:
                failures.append(problem)
            slots.release()

        started = time.perf_counter()
        for number, indexes in enumerate(
            catalog.pick_files(entries, config.peers, config.files_per_peer)
        ):
            used.update(indexes)
            request = encoder.join(catalog.peer_host(number), PEER_PORT, indexes)
            slots.acquire()
            future = join.future(request, timeout=60)  # type: ignore[attr-defined]
            future.add_done_callback(done)
            pending.append(future)
            if number and number % 1000 == 0:
                _progress(f"tracker: {number:,} peers joined")
        for future in pending:
            future.exception()
        seconds = time.perf_counter() - started
        if failures:
            raise BenchError(f"{len(failures)} Join calls failed, first: {failures[0]}")
        time.sleep(0.5)
        rss_after = rss_bytes(tracker.pid)
    shared = [entries[index].name for index in sorted(used)]
    return Loaded(config.peers * config.files_per_peer, shared, seconds, rss_before, rss_after)


@dataclass
class Latency:
    """Sequential calls from one client: percentiles and what the answers held."""

    p50_ms: float
    p99_ms: float
    calls: int
    matched: int
    results: int


def sequential(tracker: Service, requests: list[bytes], budget: float = 30.0) -> Latency:
    """Send `requests` one at a time (stopping after `budget` seconds); their latencies."""
    times: list[float] = []
    answers: list[bytes] = []
    with grpc.insecure_channel(tracker.address) as channel:
        search = _call(channel, SEARCH)
        for number in range(20):  # names nobody shares: no answer to remember for later
            warm_up = tracker_pb2.SearchRequest(name=f"warm-up-{number}.mp4")
            search(warm_up.SerializeToString(), timeout=30)
        deadline = time.monotonic() + budget
        for request in requests:
            began = time.perf_counter()
            answers.append(search(request, timeout=30))
            times.append((time.perf_counter() - began) * 1000)
            if time.monotonic() > deadline:
                break
    counts = [len(tracker_pb2.SearchResponse.FromString(answer).results) for answer in answers]
    return Latency(
        p50_ms=percentile(times, 0.5),
        p99_ms=percentile(times, 0.99),
        calls=len(times),
        matched=sum(1 for count in counts if count),
        results=sum(counts),
    )


@dataclass
class Throughput:
    """Search load against the tracker and the same load against the echo server."""

    tracker: list[loadgen.LoadResult]
    echo: list[loadgen.LoadResult]


def throughput(config: Config, tracker: Service, requests: list[bytes]) -> Throughput:
    """Interleave rounds against the echo server and the tracker, with the same generator."""
    result = Throughput([], [])
    with running("echo server", apps.echo(config.echo_workers)) as echo:
        for round_number in range(1, config.load_rounds + 1):
            for label, server in (("echo", echo), ("tracker", tracker)):
                run = loadgen.run_load(
                    server.address,
                    SEARCH,
                    requests,
                    processes=config.load_processes,
                    channels=config.load_channels,
                    concurrency=config.load_concurrency,
                    duration=config.load_seconds,
                    warmup=config.warmup_seconds,
                    server_pid=server.pid,
                )
                if run.errors or not run.calls:
                    raise BenchError(f"{label}: {run.errors} failed calls, {run.calls} done")
                (result.echo if label == "echo" else result.tracker).append(run)
                _progress(
                    f"search load round {round_number}/{config.load_rounds}: {label} "
                    f"{run.rate:,.0f} calls/s, p99 {run.percentile(0.99):.1f} ms"
                )
    return result


@dataclass
class Joins:
    """Client-side times of big Joins, and the size of one request."""

    ms: list[float]
    request_bytes: int


def big_joins(config: Config, tracker: Service, entries: list[catalog.Entry]) -> Joins:
    """Milliseconds for each of `join_repeats` Joins of a new peer with `join_files` files."""
    encoder = catalog.Encoder(entries)
    picks = catalog.pick_files(
        entries, config.join_repeats, min(config.join_files, len(entries)), seed=99
    )
    requests = [
        encoder.join(f"192.168.77.{number + 1}", PEER_PORT, indexes)
        for number, indexes in enumerate(picks)
    ]
    times = []
    with grpc.insecure_channel(
        tracker.address, options=[("grpc.max_send_message_length", 16 * 1024 * 1024)]
    ) as channel:
        join = _call(channel, JOIN)
        for request in requests:
            began = time.perf_counter()
            tracker_pb2.JoinResponse.FromString(join(request, timeout=60))
            times.append((time.perf_counter() - began) * 1000)
    return Joins(times, len(requests[0]))


def limit_flags(config: Config) -> list[str]:
    """The tracker's per-address limits raised to what this benchmark loads: every peer it
    simulates calls from 127.0.0.1, where a real tracker would see thousands of addresses (so
    the rate of large Joins, one per address in 30 s, is off: the big Joins are timed back to
    back; tests/bench/big_joins.py measures what that limit is for).
    """
    peers = config.peers + config.join_repeats
    files = config.peers * config.files_per_peer + config.join_repeats * config.join_files
    return [
        "--max-peers-per-address",
        str(peers),
        "--max-files-per-address",
        str(files),
        "--max-name-bytes-per-address",
        str(files * MAX_NAME_BYTES),
        "--large-join-interval",
        "0",
    ]


def run(config: Config) -> Section:
    """Load a tracker subprocess, then measure RSS, latency, throughput and a big Join."""
    entries = catalog.make_catalog(config.distinct)
    tracker_command = apps.tracker(heartbeat=HEARTBEAT_SECONDS, extra=limit_flags(config))
    with running("tracker", tracker_command) as tracker:
        loaded = load(config, tracker, entries)
        _progress(f"tracker: loaded {loaded.entries:,} entries in {loaded.seconds:.1f} s")
        queries = catalog.keyword_queries(entries, config.keyword_queries)
        keyword = sequential(tracker, catalog.keyword_searches(queries))
        pool = catalog.exact_searches(loaded.shared, config.search_pool)
        exact = sequential(tracker, pool[: max(1000, config.keyword_queries)])
        load_result = throughput(config, tracker, pool)
        joins = big_joins(config, tracker, entries)
    return _section(
        config,
        loaded=loaded,
        keyword=keyword,
        exact=exact,
        load_result=load_result,
        joins=joins,
        example=queries[0],
    )


def _section(
    config: Config,
    *,
    loaded: Loaded,
    keyword: Latency,
    exact: Latency,
    load_result: Throughput,
    joins: Joins,
    example: str,
) -> Section:
    per_entry = (loaded.rss_after - loaded.rss_before) / loaded.entries
    search_rate = median([run.rate for run in load_result.tracker])
    echo_rate = median([run.rate for run in load_result.echo])
    # Ratios per round, then the median: neighbours in time share the machine's mood.
    ratio = median(
        [t.rate / e.rate for t, e in zip(load_result.tracker, load_result.echo, strict=True)]
    )
    searches = loadgen.combined(load_result.tracker)
    echoes = loadgen.combined(load_result.echo)
    join_ms = median(joins.ms)
    shape = (
        f"{config.load_processes * config.load_channels} connections × "
        f"{config.load_concurrency} calls in flight"
    )
    rows = [
        Row("tracker RSS per entry", per_entry, "bytes", "≤ 300 bytes", per_entry <= 300),
        Row(f"search throughput ({shape})", search_rate, "calls/s"),
        Row("bare gRPC echo, same load", echo_rate, "calls/s"),
        Row("search / echo", ratio, "×", "≥ 0.80×", ratio >= 0.8),
        Row("search latency under that load, p50", searches.percentile(0.5), "ms"),
        Row("search latency under that load, p99", searches.percentile(0.99), "ms"),
        Row(
            "keyword search latency, p99 (one client)",
            keyword.p99_ms,
            "ms",
            "≤ 10 ms",
            keyword.p99_ms <= 10,
        ),
        Row("keyword search latency, p50 (one client)", keyword.p50_ms, "ms"),
        Row("exact-name search latency, p99 (one client)", exact.p99_ms, "ms"),
        Row(
            f"Join with {config.join_files:,} files (median of {len(joins.ms)})",
            join_ms,
            "ms",
            "≤ 100 ms",
            join_ms <= 100,
        ),
    ]
    mean_bytes = searches.response_bytes / searches.calls
    generator_us = 1e6 * searches.generator_cpu / searches.calls
    details = [
        "The tracker runs as its own process (`python -m napshare.tracker`), loaded over gRPC with "
        f"{loaded.entries:,} (file, peer) entries: {config.peers:,} peers × "
        f"{config.files_per_peer} files, {len(loaded.shared):,} distinct names such as "
        f"`{loaded.shared[0]}`, picked with Zipf-like popularity (the most shared files are on "
        f"most peers, the median file on a few). Loading took {loaded.seconds:.1f} s "
        f"({loaded.entries / loaded.seconds:,.0f} entries/s, {IN_FLIGHT} Joins in flight). RSS "
        f"went from {loaded.rss_before / 2**20:.0f} MiB to {loaded.rss_after / 2**20:.0f} MiB.",
        "",
        f"Throughput: {config.search_pool:,} different exact-name searches (names drawn "
        "uniformly from the index, so caching answers gains only what repetition gives), sent as "
        f"pre-encoded HTTP/2 frames by `tests.bench.loadgen` ({config.load_processes} process, "
        f"{shape}; it spent {generator_us:.0f} µs of CPU per call, where a grpc-python client "
        "spends about 170 µs, as much as the server, and on 2 cores became the bottleneck); "
        f"{config.load_rounds} rounds of {config.load_seconds:g} s, alternating with a bare "
        f"gRPC echo server (`python -m tests.bench.echo`, a sync server with "
        f"{config.echo_workers} threads that returns the request bytes) under the identical "
        f"load; medians, the ratio taken round by round. Per round: tracker "
        + ", ".join(f"{run.rate:,.0f}" for run in load_result.tracker)
        + "; echo "
        + ", ".join(f"{run.rate:,.0f}" for run in load_result.echo)
        + f" calls/s. Echo p50/p99 {echoes.percentile(0.5):.1f}/"
        f"{echoes.percentile(0.99):.1f} ms. Search answers averaged {mean_bytes:,.0f} bytes. "
        f"Server CPU while loaded: tracker {searches.server_cores:.2f} cores, "
        f"{searches.server_us_per_call:.0f} µs per call; echo {echoes.server_cores:.2f} cores, "
        f"{echoes.server_us_per_call:.0f} µs per call (of {os.cpu_count()} cores; the "
        "generator and the rest of the machine have the rest).",
        "",
        f"Latency: one client, one call at a time, {keyword.calls:,} keyword queries of two or "
        f"three words taken from popular names (e.g. `{example}`); "
        f"{keyword.matched:,} matched, {keyword.results / max(1, keyword.calls):.0f} results "
        f"each on average (at most 100). Exact-name p50 {exact.p50_ms:.2f} ms over "
        f"{exact.calls:,} calls.",
        "",
        f"Join: a new peer announcing {config.join_files:,} files in one call "
        f"({joins.request_bytes / 2**20:.1f} MiB of request), timed at the client: "
        + ", ".join(f"{ms:.0f}" for ms in joins.ms)
        + " ms.",
    ]
    return Section(
        f"Tracker scale ({loaded.entries:,} entries)", config.reproduce("tracker"), rows, details
    )
