"""A running napshare for the transfer and memory benchmarks: a tracker and serving peers."""

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
from napshare.common.tls import pinned_channel
from napshare.v1 import tracker_pb2, tracker_pb2_grpc

from tests.bench import apps
from tests.bench.procs import BenchError, Service, running


def wait_listed(
    tracker_address: str, name: str, timeout: float = 120.0, state_dir: Path | None = None
) -> None:
    """Block until the tracker lists a peer with `name`; BenchError after `timeout` seconds.

    `state_dir` is a TLS tracker's (its certificate is pinned); None for plain text.
    """
    deadline = time.monotonic() + timeout
    if state_dir is None:
        channel = grpc.insecure_channel(tracker_address)
    else:
        certificate = (state_dir / "identity" / "cert.pem").read_bytes()
        channel = pinned_channel(tracker_address, certificate)
    with channel:
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
def tracker(state_dir: Path | None = None) -> Iterator[Service]:
    """A tracker subprocess on a free loopback port: plain text, or TLS with `state_dir`."""
    with running("tracker", apps.tracker(state_dir=state_dir)) as service:
        yield service


@contextlib.contextmanager
def serving_peer(
    folder: Path,
    tracker_address: str,
    name: str,
    extra: Sequence[str] = (),
    state_dir: Path | None = None,
) -> Iterator[Service]:
    """A peer subprocess sharing `folder`, started and listed by the tracker under `name`;
    in plain text, or over TLS pinned to the tracker of `state_dir`.
    """
    security = apps.PLAINTEXT if state_dir is None else apps.pin(state_dir)
    command = apps.serve(folder, tracker_address, [*security, *extra])
    with running("serving peer", command) as peer:
        wait_listed(tracker_address, name, state_dir=state_dir)
        yield peer
