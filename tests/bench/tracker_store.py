"""The tracker on the Redis store beside the tracker in memory: the same load on both, one and
two replicas on one Redis, a big Join, Redis memory per entry and round trips per RPC.

Both trackers get the catalog tracker_scale loads (every entry through gRPC Joins) and the
same pre-encoded search requests from the same generator, in alternating rounds. The Redis
server is the bench's own (`redis-server` without persistence, on a unix socket).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from napshare.v1 import tracker_pb2

from tests.bench import apps, catalog, loadgen
from tests.bench.config import Config
from tests.bench.procs import BenchError, Service, median, running
from tests.bench.report import Row, Section
from tests.bench.tracker_scale import (
    HEARTBEAT_SECONDS,
    JOIN,
    SEARCH,
    big_joins,
    limit_flags,
    load,
    sequential,
)
from tests.support.redis import RedisServer

IN_MEMORY_PER_ENTRY = 125  # bytes: the in-memory index's RSS per entry (BENCHMARKS.md)
REDIS_TARGET = 500  # bytes of Redis memory per entry (issue 20)
RPC_SAMPLES = 200  # calls of each RPC whose round trips are counted


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _redis_info(server: RedisServer, section: str) -> dict[str, object]:
    with server.client() as client:
        return dict(client.info(section))


def _redis_cpu(server: RedisServer) -> float:
    info = _redis_info(server, "cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])  # type: ignore[arg-type]


def _cores(server: RedisServer, cpu: float, began: float) -> float:
    """The cores Redis kept busy since `began`, when its CPU time was `cpu`."""
    return (_redis_cpu(server) - cpu) / (time.monotonic() - began)


def _scripts_run(server: RedisServer) -> int:
    """How many scripts the server has run: each is one round trip from a tracker."""
    stats = _redis_info(server, "commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))  # type: ignore[union-attr]
        for name in ("evalsha", "eval")
    )


def _load(config: Config, target: str, requests: list[bytes], pid: int) -> loadgen.LoadResult:
    run = loadgen.run_load(
        target,
        SEARCH,
        requests,
        processes=config.load_processes,
        channels=config.load_channels,
        concurrency=config.load_concurrency,
        duration=config.load_seconds,
        warmup=config.warmup_seconds,
        server_pid=pid,
    )
    if run.errors or not run.calls:
        raise BenchError(f"{target}: {run.errors} failed calls, {run.calls} done")
    return run


def _both(
    config: Config, first: Service, second: Service, requests: list[bytes]
) -> list[loadgen.LoadResult]:
    """The same load split over two replicas at once (half the connections each)."""
    half = max(1, config.load_channels // 2)
    results: list[loadgen.LoadResult] = []
    errors: list[BaseException] = []

    def drive(service: Service) -> None:
        try:
            run = loadgen.run_load(
                service.address,
                SEARCH,
                requests,
                processes=config.load_processes,
                channels=half,
                concurrency=config.load_concurrency,
                duration=config.load_seconds,
                warmup=config.warmup_seconds,
                server_pid=service.pid,
            )
            results.append(run)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=drive, args=(s,)) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


@dataclass
class RoundTrips:
    """Scripts the store ran per gRPC call, by RPC."""

    per_rpc: dict[str, float]


def round_trips(server: RedisServer, tracker: Service) -> RoundTrips:
    """Count the scripts behind RPC_SAMPLES calls of each RPC against one replica."""
    per_rpc: dict[str, float] = {}
    with grpc.insecure_channel(tracker.address) as channel:
        join = channel.unary_unary(JOIN, None, None)
        calls: dict[str, Callable[[int], object]] = {}
        tokens: dict[int, str] = {}

        def joined(n: int) -> object:
            request = tracker_pb2.JoinRequest(host="198.51.100.9", port=40_000 + n)
            reply = tracker_pb2.JoinResponse.FromString(join(request.SerializeToString()))
            tokens[n] = reply.token
            return reply

        stub_search = channel.unary_unary(SEARCH, None, None)
        heartbeat = channel.unary_unary("/napshare.v1.TrackerService/Heartbeat", None, None)
        update = channel.unary_unary("/napshare.v1.TrackerService/Update", None, None)
        leave = channel.unary_unary("/napshare.v1.TrackerService/Leave", None, None)

        def peer(n: int) -> str:
            return f"198.51.100.9:{40_000 + n}"

        calls["Join"] = joined
        calls["Search (exact name, new request)"] = lambda n: stub_search(
            tracker_pb2.SearchRequest(name=f"round-trip-{n}.mp4").SerializeToString()
        )
        calls["Search (the same request again)"] = lambda n: stub_search(
            tracker_pb2.SearchRequest(name="round-trip-0.mp4").SerializeToString()
        )
        calls["Search (keywords)"] = lambda n: stub_search(
            tracker_pb2.SearchRequest(query=f"lecture {n}").SerializeToString()
        )
        calls["Heartbeat"] = lambda n: heartbeat(
            tracker_pb2.HeartbeatRequest(peer_id=peer(n), token=tokens[n]).SerializeToString()
        )
        calls["Update"] = lambda n: update(
            tracker_pb2.UpdateRequest(peer_id=peer(n), token=tokens[n]).SerializeToString()
        )
        calls["Leave"] = lambda n: leave(
            tracker_pb2.LeaveRequest(peer_id=peer(n), token=tokens[n]).SerializeToString()
        )
        for name, call in calls.items():
            before = _scripts_run(server)
            for n in range(RPC_SAMPLES):
                call(n)
            per_rpc[name] = (_scripts_run(server) - before) / RPC_SAMPLES
    return RoundTrips(per_rpc)


def run(config: Config) -> Section:
    """Load a memory tracker and a Redis tracker alike, then measure them side by side."""
    entries = catalog.make_catalog(config.distinct)
    folder = config.workdir / "redis-bench"
    server = RedisServer(folder)
    try:
        store = f"{server.url}?prefix=bench"
        # Room for the round-trip count's own peers too (the last flag given wins).
        room = config.peers + config.join_repeats + RPC_SAMPLES
        flags = [*limit_flags(config), "--max-peers-per-address", str(room)]
        memory_command = apps.tracker(heartbeat=HEARTBEAT_SECONDS, extra=flags)
        redis_command = apps.tracker(heartbeat=HEARTBEAT_SECONDS, extra=[*flags, "--store", store])
        with (
            running("tracker (memory)", memory_command) as memory,
            running("tracker (redis)", redis_command) as first,
        ):
            used_before = int(_redis_info(server, "memory")["used_memory"])  # type: ignore[arg-type]
            in_memory = load(config, memory, entries)
            _progress(f"memory tracker: {in_memory.entries:,} entries in {in_memory.seconds:.1f} s")
            loaded = load(config, first, entries)
            used_after = int(_redis_info(server, "memory")["used_memory"])  # type: ignore[arg-type]
            _progress(f"redis tracker: {loaded.entries:,} entries in {loaded.seconds:.1f} s")
            queries = catalog.keyword_queries(entries, config.keyword_queries)
            keyword_memory = sequential(memory, catalog.keyword_searches(queries))
            keyword = sequential(first, catalog.keyword_searches(queries))
            pool = catalog.exact_searches(loaded.shared, config.search_pool)
            exact = sequential(first, pool[: max(1000, config.keyword_queries)])
            side: dict[str, list[loadgen.LoadResult]] = {"memory": [], "redis": [], "two": []}
            redis_cpu: dict[str, list[float]] = {"redis": [], "two": []}
            with running("tracker (redis, second replica)", redis_command) as second:
                for round_number in range(1, config.load_rounds + 1):
                    side["memory"].append(_load(config, memory.address, pool, memory.pid))
                    cpu, began = _redis_cpu(server), time.monotonic()
                    side["redis"].append(_load(config, first.address, pool, first.pid))
                    redis_cpu["redis"].append(
                        (_redis_cpu(server) - cpu) / (time.monotonic() - began)
                    )
                    cpu, began = _redis_cpu(server), time.monotonic()
                    both = _both(config, first, second, pool)
                    redis_cpu["two"].append((_redis_cpu(server) - cpu) / (time.monotonic() - began))
                    side["two"].append(_merged(both))
                    _progress(
                        f"store load round {round_number}/{config.load_rounds}: memory "
                        f"{side['memory'][-1].rate:,.0f}, redis {side['redis'][-1].rate:,.0f}, "
                        f"two replicas {side['two'][-1].rate:,.0f} calls/s"
                    )
            joins = big_joins(config, first, entries)
            trips = round_trips(server, first)
    finally:
        server.stop()
    return _section(
        config,
        loaded=loaded,
        memory_rss=(in_memory.rss_after - in_memory.rss_before) / in_memory.entries,
        redis_bytes=(used_after - used_before) / loaded.entries,
        side=side,
        redis_cpu=redis_cpu,
        keyword=(keyword_memory.p50_ms, keyword_memory.p99_ms, keyword.p50_ms, keyword.p99_ms),
        exact_p99=exact.p99_ms,
        joins=joins.ms,
        trips=trips,
    )


def _merged(runs: list[loadgen.LoadResult]) -> loadgen.LoadResult:
    """Two simultaneous runs as one: calls and bytes summed over the same window."""
    return loadgen.LoadResult(
        calls=sum(r.calls for r in runs),
        errors=sum(r.errors for r in runs),
        seconds=max(r.seconds for r in runs),
        latencies_us=[us for r in runs for us in r.latencies_us],
        response_bytes=sum(r.response_bytes for r in runs),
        generator_cpu=sum(r.generator_cpu for r in runs),
        server_cpu=sum(r.server_cpu for r in runs),
    )


def _section(
    config: Config,
    *,
    loaded: object,
    memory_rss: float,
    redis_bytes: float,
    side: dict[str, list[loadgen.LoadResult]],
    redis_cpu: dict[str, list[float]],
    keyword: tuple[float, float, float, float],
    exact_p99: float,
    joins: list[float],
    trips: RoundTrips,
) -> Section:
    rate = {label: median([r.rate for r in runs]) for label, runs in side.items()}
    ratio = median([r.rate / m.rate for r, m in zip(side["redis"], side["memory"], strict=True)])
    p99 = {label: loadgen.combined(runs).percentile(0.99) for label, runs in side.items()}
    redis_cores = {label: median(cores) for label, cores in redis_cpu.items()}
    entries = config.peers * config.files_per_peer
    join_ms = median(joins)
    rows = [
        Row(
            "Redis memory per entry (used_memory)",
            redis_bytes,
            "bytes",
            f"≤ {REDIS_TARGET} bytes",
            redis_bytes <= REDIS_TARGET,
        ),
        Row("in-memory tracker RSS per entry, same load", memory_rss, "bytes"),
        Row("search throughput, memory store", rate["memory"], "calls/s"),
        Row("search throughput, Redis store (one replica)", rate["redis"], "calls/s"),
        Row("Redis / memory", ratio, "×"),
        Row("search throughput, two replicas on one Redis", rate["two"], "calls/s"),
        Row("search latency p99 under load, memory", p99["memory"], "ms"),
        Row("search latency p99 under load, Redis, one replica", p99["redis"], "ms"),
        Row("search latency p99 under load, two replicas", p99["two"], "ms"),
        Row("keyword search latency p50 (one client), memory", keyword[0], "ms"),
        Row("keyword search latency p99 (one client), memory", keyword[1], "ms"),
        Row("keyword search latency p50 (one client), Redis", keyword[2], "ms"),
        Row("keyword search latency p99 (one client), Redis", keyword[3], "ms"),
        Row("exact-name search latency, p99 (one client), Redis", exact_p99, "ms"),
        Row(
            f"Join with {config.join_files:,} files, Redis (median of {len(joins)})",
            join_ms,
            "ms",
            "≤ 100 ms",
            join_ms <= 100,
        ),
    ]
    rows += [
        Row(f"store round trips per {name}", value, "") for name, value in trips.per_rpc.items()
    ]
    one = loadgen.combined(side["redis"])
    two = loadgen.combined(side["two"])
    details = [
        f"Both trackers were loaded with the same {entries:,} entries over gRPC (`{config.peers:,}"
        f" peers × {config.files_per_peer} files`, the catalog of the tracker scale section); the "
        f"Redis tracker runs with `--store unix://...` on a `redis-server` of its own without "
        f"persistence. Redis memory per entry is the growth of `used_memory` over the load "
        f"(the in-memory index's is its RSS growth; {IN_MEMORY_PER_ENTRY} B in the tracker "
        "scale section).",
        "",
        f"Search load: {config.search_pool:,} different exact-name searches, "
        f"{config.load_processes * config.load_channels} connections × "
        f"{config.load_concurrency} calls in flight, {config.load_rounds} rounds of "
        f"{config.load_seconds:g} s, memory and Redis alternating; per round memory "
        + ", ".join(f"{r.rate:,.0f}" for r in side["memory"])
        + "; Redis "
        + ", ".join(f"{r.rate:,.0f}" for r in side["redis"])
        + "; two replicas "
        + ", ".join(f"{r.rate:,.0f}" for r in side["two"])
        + " calls/s. Two replicas get the same load split in two (half the connections each). "
        f"CPU while loaded: one replica {one.server_cores:.2f} cores; two replicas "
        f"{two.server_cores:.2f} cores together; Redis {redis_cores['redis']:.2f} and "
        f"{redis_cores['two']:.2f} cores (averaged over each round, its start included), all "
        f"on {os.cpu_count()} cores shared with the load generator.",
        "",
        "Round trips: Redis scripts run (`INFO commandstats`, EVALSHA) per gRPC call, over "
        f"{RPC_SAMPLES} calls of each; a kept Search answer costs one script that checks the "
        "store's generation.",
        "",
        "Join: " + ", ".join(f"{ms:.0f}" for ms in joins) + " ms.",
    ]
    return Section(
        f"Tracker on Redis ({entries:,} entries)", config.reproduce("tracker-redis"), rows, details
    )
