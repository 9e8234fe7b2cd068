"""Fixtures for the relay's tests: in-process relays on free loopback ports."""

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from napshare.relay.caps import RelayCaps
from napshare.relay.server import Relay, create_relay

from tests.support.relays import TRACKER, RelayProcess, RunningRelay, tracker_cert_file


@pytest.fixture
def start_relay() -> Iterator[Callable[..., RunningRelay]]:
    """start_relay(trusted=[TRACKER's], clock=time.time, **caps): a relay on 127.0.0.1:0."""
    relays: list[Relay] = []

    def start(
        trusted: list[bytes] | None = None,
        clock: Callable[[], float] = time.time,
        **caps: object,
    ) -> RunningRelay:
        relay, port = create_relay(
            "127.0.0.1",
            0,
            [TRACKER.certificate_der] if trusted is None else trusted,
            RelayCaps(**caps),  # type: ignore[arg-type]
            clock=clock,
        )
        relays.append(relay)
        return RunningRelay(relay, ("127.0.0.1", port))

    yield start
    for relay in relays:
        relay.stop()


@pytest.fixture
def relay_process(tmp_path: Path) -> Iterator[Callable[..., RelayProcess]]:
    """relay_process(*args, **options): napshare-relay trusting TRACKER; killed at the end."""
    started: list[RelayProcess] = []

    def start(*args: str, **options: object) -> RelayProcess:
        relay = RelayProcess(sys.executable, tracker_cert_file(tmp_path), *args, **options)  # type: ignore[arg-type]
        started.append(relay)
        return relay

    yield start
    for relay in started:
        if relay.process.poll() is None:
            relay.process.kill()
            relay.process.wait(10)
