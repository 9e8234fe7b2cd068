"""Broad keyword searches over a million names: one search's latency, and health meanwhile.

`python -m tests.bench.broad_search` joins 20 peers of 50,000 files each (`clip-<n>.mp4`,
a million distinct names) to an in-process tracker, times single searches for `mp4` (every
name matches) and `clip-77` (few match, most names are candidates), then sends 200 broad
searches at once over gRPC and times health checks while they run. For tests/bench/NOTES.md.
"""

import argparse
import statistics
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from napshare.tracker.index import FileEntry, TrackerIndex
from napshare.tracker.server import create_server
from napshare.v1 import tracker_pb2

PEERS = 20
FILES_PER_PEER = 50_000
DIGEST = "0" * 64
SEARCH = "/napshare.v1.TrackerService/Search"


def loaded_index(peers: int = PEERS, files: int = FILES_PER_PEER) -> TrackerIndex:
    """An index of `peers` peers sharing `files` distinct `clip-<n>.mp4` names each."""
    index = TrackerIndex(3600)
    for peer in range(peers):
        entries = [FileEntry(f"clip-{peer * files + n}.mp4", n, DIGEST) for n in range(files)]
        index.join("127.0.0.1", 10_000 + peer, entries)
    return index


def _millis(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--probe-seconds", type=float, default=60.0)
    args = parser.parse_args()
    started = time.perf_counter()
    index = loaded_index()
    print(f"loaded {index.stats()} in {time.perf_counter() - started:.1f} s")
    for query in ("mp4", "clip-77", "mp4 clip"):
        times = []
        for _ in range(5):
            began = time.perf_counter()
            outcome = index.search(query=query, limit=100)
            times.append(time.perf_counter() - began)
        print(
            f"search {query!r}: median {_millis(statistics.median(times))}, "
            f"max {_millis(max(times))}, {len(outcome.matches)} results, "
            f"truncated {outcome.truncated}"
        )
    server, port = create_server(index, host="127.0.0.1", port=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    health = health_pb2_grpc.HealthStub(channel)
    health.Check(health_pb2.HealthCheckRequest(), timeout=10)
    search = channel.unary_unary(SEARCH)
    requests = [  # a page size each, so that no answer comes from the answer cache
        tracker_pb2.SearchRequest(query="mp4", page_size=n % 1000 + 1).SerializeToString()
        for n in range(args.searches)
    ]
    began = time.perf_counter()
    calls = [search.future(request, timeout=600) for request in requests]
    probes: list[float] = []
    failed = 0
    while time.perf_counter() - began < args.probe_seconds and not all(c.done() for c in calls):
        probe = time.perf_counter()
        try:
            health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            probes.append(time.perf_counter() - probe)
        except grpc.RpcError as error:
            failed += 1
            print(f"health: {error.code().name}")
        time.sleep(0.05)
    codes: dict[str, int] = {}
    for call in calls:
        if not call.done():
            call.cancel()
        name = call.code().name if call.done() else "UNFINISHED"
        codes[name] = codes.get(name, 0) + 1
    print(
        f"{args.searches} concurrent broad searches: {codes} in {time.perf_counter() - began:.1f} s"
    )
    if probes:
        print(
            f"health during them: {len(probes)} answered, {failed} failed, median "
            f"{_millis(statistics.median(probes))}, max {_millis(max(probes))}"
        )
    channel.close()
    server.stop(None)


if __name__ == "__main__":
    main()
