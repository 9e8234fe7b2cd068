"""Fixtures every test folder may use: the interpreter, rpc_details, in-process trackers."""

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.rpc import rpc_details as _rpc_details
from tests.support.trackers import InProcessTracker, start_in_process_tracker

# hypothesis keeps caches in ./.hypothesis unless told otherwise: not in the repository.
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY", tempfile.mkdtemp(prefix="napshare-hypothesis-")
)


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
