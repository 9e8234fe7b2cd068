"""Fixtures of the multi-host suite (tests/system/test_nat.py, test_reach.py): a small internet
of network namespaces per test, on a machine that can build them (root, ip, nft, tcpdump).
"""

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import netns

why_not = functools.cache(netns.missing)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip every test that builds namespaces on a machine that cannot, all from this one line,
    so that the summary says it once.
    """
    if "namespaces" in getattr(item, "fixturenames", ()) and why_not():
        pytest.skip(f"multi-host suite skipped: {why_not()}")


@pytest.fixture
def namespaces() -> None:
    """Nothing but a mark: the test builds network namespaces (skipped where it cannot)."""


@pytest.fixture
def internet(namespaces: None, tmp_path: Path) -> Iterator[netns.Internet]:
    """A bridge for the internet; the test plugs in public hosts and home routers. Everything
    is removed afterwards, whatever the test did.
    """
    with netns.Internet(tmp_path / "internet") as made:
        yield made
