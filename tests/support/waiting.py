"""Waiting for something to become true, with a deadline that fails the test."""

import time
from collections.abc import Callable

import pytest


def wait_until(condition: Callable[[], object], timeout: float = 30.0, step: float = 0.01) -> None:
    """Poll `condition` until it is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {condition}")
        time.sleep(step)
