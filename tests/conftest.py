"""Fixtures every test folder may use: the interpreter, rpc_details, in-process trackers; and
the turn every test takes on the machine, alone for a test marked `serial`.
"""

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.rpc import rpc_details as _rpc_details
from tests.support.serial import machine_turn
from tests.support.trackers import InProcessTracker, start_in_process_tracker

# hypothesis keeps caches in ./.hypothesis unless told otherwise: not in the repository.
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY", tempfile.mkdtemp(prefix="napshare-hypothesis-")
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The serial tests first: on several workers, they then wait for each other only, not
    for whatever long test the other workers have just begun.
    """
    items.sort(key=lambda item: item.get_closest_marker("serial") is None)


@pytest.fixture(autouse=True)
def _machine_turn(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """On a worker of pytest-xdist, wait for the machine: a test marked `serial` runs while no
    other test does; any other test while no serial one does. One process runs one test at a
    time anyway.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    alone = request.node.get_closest_marker("serial") is not None
    # Each worker's base folder is in the folder of the run, which they all share.
    with machine_turn(tmp_path_factory.getbasetemp().parent, alone=alone):
        yield


@pytest.fixture
def python() -> str:
    """The interpreter of this venv, for starting napshare processes."""
    return sys.executable


@pytest.fixture
def rpc_details() -> Callable[..., Any]:
    """rpc_details(error) -> (ErrorInfo, RetryInfo | None), checking there is one ErrorInfo."""
    return _rpc_details


@pytest.fixture
def make_tracker() -> Iterator[Callable[..., InProcessTracker]]:
    """Start in-process trackers (start_in_process_tracker's arguments); all are stopped at
    the end of the test.
    """
    started: list[InProcessTracker] = []

    def start(*args: Any, **kwargs: Any) -> InProcessTracker:
        tracker = start_in_process_tracker(*args, **kwargs)
        started.append(tracker)
        return tracker

    yield start
    for tracker in started:
        tracker.stop()


@pytest.fixture
def tracker(make_tracker: Callable[..., InProcessTracker]) -> InProcessTracker:
    """An in-process tracker for one test, heartbeats every 30 s."""
    return make_tracker()
