"""A concurrent gRPC load generator: processes × channels × in-flight calls of raw request bytes.

Each process runs asyncio with its own channels (each its own TCP connection) and keeps
`concurrency` calls in flight per channel. Requests are pre-serialized bytes sent through a
generic method, so the generator spends no time on protobuf and costs the same per call
against every server. Only calls that finish inside the common measuring window count.

    python -m tests.bench.loadgen TARGET METHOD REQUESTS_FILE START END --channels C --concurrency K
"""

import argparse
import asyncio
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from tests.bench.procs import PYTHON, ROOT, BenchError, child_env

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

    @property
    def rate(self) -> float:
        """Completed calls per second in the measuring window."""
        return self.calls / self.seconds

    def percentile(self, fraction: float) -> float:
        """A latency percentile in milliseconds (nearest rank)."""
        ordered = sorted(self.latencies_us)
        if not ordered:
            return float("nan")
        rank = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
        return ordered[rank] / 1000


async def _worker(
    call: grpc.aio.UnaryUnaryMultiCallable,  # type: ignore[type-arg]
    *,
    requests: list[bytes],
    first: int,
    window: tuple[float, float],
    tally: dict[str, int],
    latencies: list[int],
) -> None:
    start, end = window
    index = first
    while True:
        now = time.time()
        if now >= end:
            return
        request = requests[index % len(requests)]
        index += 7919
        began = time.perf_counter_ns()
        try:
            response = await call(request, timeout=30)
        except grpc.aio.AioRpcError:
            if start <= time.time() < end:
                tally["errors"] += 1
            continue
        finished = time.time()
        if start <= finished < end:
            latencies.append((time.perf_counter_ns() - began) // 1000)
            tally["calls"] += 1
            tally["bytes"] += len(response)


async def _generate(
    target: str,
    method: str,
    requests: list[bytes],
    *,
    window: tuple[float, float],
    channels: int,
    concurrency: int,
) -> dict[str, object]:
    tally = {"calls": 0, "errors": 0, "bytes": 0}
    latencies: list[int] = []
    opened = [
        # A distinct argument per channel keeps gRPC from sharing one connection among them.
        grpc.aio.insecure_channel(target, options=[("napshare.bench.channel", i)])
        for i in range(channels)
    ]
    try:
        for channel in opened:
            await asyncio.wait_for(channel.channel_ready(), 30)
        seed = os.getpid()
        workers = [
            _worker(
                channel.unary_unary(method, None, None),
                requests=requests,
                first=seed + c * concurrency + k,
                window=window,
                tally=tally,
                latencies=latencies,
            )
            for c, channel in enumerate(opened)
            for k in range(concurrency)
        ]
        await asyncio.gather(*workers)
    finally:
        for channel in opened:
            await channel.close(None)
    return {**tally, "latencies_us": latencies}


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
) -> LoadResult:
    """Drive `method` on `target` from `processes` generator processes; the summed result."""
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
        outputs = []
        for child in children:
            out, _ = child.communicate(timeout=duration + warmup + 120)
            if child.returncode != 0:
                raise BenchError(f"load generator failed with exit {child.returncode}")
            outputs.append(json.loads(out))
    latencies = [value for output in outputs for value in output["latencies_us"]]
    return LoadResult(
        calls=sum(output["calls"] for output in outputs),
        errors=sum(output["errors"] for output in outputs),
        seconds=duration,
        latencies_us=latencies,
        response_bytes=sum(output["bytes"] for output in outputs),
    )


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
    result = asyncio.run(
        _generate(
            args.target,
            args.method,
            read_requests(args.requests),
            window=(args.start, args.end),
            channels=args.channels,
            concurrency=args.concurrency,
        )
    )
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
