"""A concurrent gRPC load generator: processes × connections × calls in flight, cheap per call.

Each process drives its HTTP/2 connections (tests.bench.h2client) from one selector loop and
keeps `concurrency` unary calls in flight on each. Requests are pre-serialized bytes, so the
generator does no protobuf work and costs the same per call against every server. Only calls
that finish inside the common measuring window count.

    python -m tests.bench.loadgen TARGET METHOD REQUESTS_FILE START END --channels C --concurrency K
"""

import argparse
import json
import math
import os
import resource
import selectors
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.bench.h2client import Connection, ProtocolError
from tests.bench.procs import PYTHON, ROOT, BenchError, child_env, cpu_seconds, percentile

_LENGTH = struct.Struct(">I")


def write_requests(path: Path, requests: Sequence[bytes]) -> None:
    """Store requests as length-prefixed records."""
    with path.open("wb") as out:
        for request in requests:
            out.write(_LENGTH.pack(len(request)))
            out.write(request)


def read_requests(path: Path) -> list[bytes]:
    """The records that write_requests stored."""
    data = path.read_bytes()
    requests, at = [], 0
    while at < len(data):
        (length,) = _LENGTH.unpack_from(data, at)
        requests.append(data[at + 4 : at + 4 + length])
        at += 4 + length
    return requests


@dataclass(frozen=True)
class LoadResult:
    """What one load run measured, summed over its processes."""

    calls: int
    errors: int
    seconds: float
    latencies_us: list[int]
    response_bytes: int
    generator_cpu: float
    server_cpu: float = math.nan

    @property
    def server_cores(self) -> float:
        """How many cores the server kept busy in the window (NaN if not sampled)."""
        return self.server_cpu / self.seconds

    @property
    def server_us_per_call(self) -> float:
        """The server's CPU time per completed call (NaN if not sampled)."""
        return 1e6 * self.server_cpu / self.calls if self.calls else math.nan

    @property
    def rate(self) -> float:
        """Completed calls per second in the measuring window."""
        return self.calls / self.seconds

    def percentile(self, fraction: float) -> float:
        """A latency percentile in milliseconds."""
        return percentile(self.latencies_us, fraction) / 1000 if self.latencies_us else math.nan


class _Tally:
    """Calls that finished inside the measuring window, and the generator's CPU meanwhile."""

    def __init__(self, window: tuple[float, float]) -> None:
        self.start, self.end = window
        self.calls = 0
        self.errors = 0
        self.bytes = 0
        self.latencies_us: list[int] = []
        self.cpu_at_start: float | None = None
        self.cpu = 0.0

    def done(self, ok: bool, latency_ns: int, response_bytes: int) -> None:
        now = time.time()
        if not self.start <= now < self.end:
            return
        if ok:
            self.calls += 1
            self.bytes += response_bytes
            self.latencies_us.append(latency_ns // 1000)
        else:
            self.errors += 1


def combined(results: Sequence[LoadResult]) -> LoadResult:
    """Several runs as one: summed counts and time, pooled latencies."""
    return LoadResult(
        calls=sum(r.calls for r in results),
        errors=sum(r.errors for r in results),
        seconds=sum(r.seconds for r in results),
        latencies_us=[value for r in results for value in r.latencies_us],
        response_bytes=sum(r.response_bytes for r in results),
        generator_cpu=sum(r.generator_cpu for r in results),
        server_cpu=sum(r.server_cpu for r in results),
    )


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _generate(
    target: str,
    method: str,
    requests: list[bytes],
    *,
    window: tuple[float, float],
    channels: int,
    concurrency: int,
) -> dict[str, object]:
    host, _, port = target.rpartition(":")
    tally = _Tally(window)
    connections = [Connection(host, int(port), method) for _ in range(channels)]
    selector = selectors.DefaultSelector()
    index = os.getpid()
    try:
        for connection in connections:
            selector.register(connection.sock, selectors.EVENT_READ, connection)
            batch = []
            for _ in range(concurrency):
                batch.append(connection.request(requests[index % len(requests)]))
                index += 7919
            connection.sock.sendall(b"".join(batch))
        while (now := time.time()) < tally.end:
            if tally.cpu_at_start is None and now >= tally.start:
                tally.cpu_at_start = _cpu()
            for key, _ in selector.select(timeout=0.05):
                connection = key.data
                data = connection.sock.recv(256 * 1024)
                if not data:
                    raise ProtocolError("the server closed the connection")
                out = [connection.receive(data, tally.done)]
                while connection.in_flight < concurrency:
                    request = requests[index % len(requests)]
                    if not connection.can_send(request):
                        break
                    out.append(connection.request(request))
                    index += 7919
                connection.sock.sendall(b"".join(out))
        tally.cpu = _cpu() - (tally.cpu_at_start or 0.0)
    finally:
        selector.close()
        for connection in connections:
            connection.close()
    return {
        "calls": tally.calls,
        "errors": tally.errors,
        "bytes": tally.bytes,
        "cpu": tally.cpu,
        "latencies_us": tally.latencies_us,
    }


def run_load(
    target: str,
    method: str,
    requests: Sequence[bytes],
    *,
    processes: int,
    channels: int,
    concurrency: int,
    duration: float,
    warmup: float,
    server_pid: int | None = None,
) -> LoadResult:
    """Drive `method` on `target` from `processes` generator processes; the summed result.

    With `server_pid`, the server's CPU time inside the measuring window is sampled too.
    """
    with tempfile.TemporaryDirectory(prefix="napshare-bench-load-") as folder:
        requests_file = Path(folder) / "requests"
        write_requests(requests_file, requests)
        start = time.time() + 1.0 + warmup
        end = start + duration
        command = [
            PYTHON,
            "-m",
            "tests.bench.loadgen",
            target,
            method,
            str(requests_file),
            repr(start),
            repr(end),
            "--channels",
            str(channels),
            "--concurrency",
            str(concurrency),
        ]
        children = [
            subprocess.Popen(command, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, text=True)
            for _ in range(processes)
        ]
        server_cpu: list[float] = []
        if server_pid is not None:
            sampler = threading.Thread(
                target=_sample_cpu, args=(server_pid, (start, end), server_cpu), daemon=True
            )
            sampler.start()
        outputs = []
        for child in children:
            out, _ = child.communicate(timeout=duration + warmup + 120)
            if child.returncode != 0:
                raise BenchError(f"load generator failed with exit {child.returncode}")
            outputs.append(json.loads(out))
        if server_pid is not None:
            sampler.join()
    latencies = [value for output in outputs for value in output["latencies_us"]]
    return LoadResult(
        calls=sum(output["calls"] for output in outputs),
        errors=sum(output["errors"] for output in outputs),
        seconds=duration,
        latencies_us=latencies,
        response_bytes=sum(output["bytes"] for output in outputs),
        generator_cpu=sum(output["cpu"] for output in outputs),
        server_cpu=server_cpu[1] - server_cpu[0] if len(server_cpu) == 2 else math.nan,
    )


def _sample_cpu(pid: int, window: tuple[float, float], samples: list[float]) -> None:
    for moment in window:
        time.sleep(max(0.0, moment - time.time()))
        samples.append(cpu_seconds(pid))


def main() -> None:
    """One generator process: run the load, print its tally as JSON."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.loadgen")
    parser.add_argument("target")
    parser.add_argument("method")
    parser.add_argument("requests", type=Path)
    parser.add_argument("start", type=float)
    parser.add_argument("end", type=float)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    result = _generate(
        args.target,
        args.method,
        read_requests(args.requests),
        window=(args.start, args.end),
        channels=args.channels,
        concurrency=args.concurrency,
    )
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
