"""A running napshare for the transfer and memory benchmarks: a tracker and serving peers."""

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
from napshare.v1 import tracker_pb2, tracker_pb2_grpc

from tests.bench import apps
from tests.bench.procs import BenchError, Service, running


def wait_listed(tracker_address: str, name: str, timeout: float = 120.0) -> None:
    """Block until the tracker lists a peer with `name`; BenchError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(tracker_address) as channel:
        stub = tracker_pb2_grpc.TrackerServiceStub(channel)
        while time.monotonic() < deadline:
            try:
                found = stub.Search(tracker_pb2.SearchRequest(name=name), timeout=5)
            except grpc.RpcError:
                found = None
            if found is not None and found.results:
                return
            time.sleep(0.1)
    raise BenchError(f"the tracker at {tracker_address} never listed {name}")


@contextlib.contextmanager
def tracker() -> Iterator[Service]:
    """A tracker subprocess on a free loopback port."""
    with running("tracker", apps.tracker()) as service:
        yield service


@contextlib.contextmanager
def serving_peer(
    folder: Path, tracker_address: str, name: str, extra: Sequence[str] = ()
) -> Iterator[Service]:
    """A peer subprocess sharing `folder`, started and listed by the tracker under `name`."""
    with running("serving peer", apps.serve(folder, tracker_address, extra)) as peer:
        wait_listed(tracker_address, name)
        yield peer
