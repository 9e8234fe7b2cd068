"""The multi-host suite: each test gets a small internet of network namespaces (root only)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import netns

WHY_NOT = netns.missing()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip every test here on a machine where the namespaces cannot be built, all from this
    one line, so that the summary says it once.
    """
    if WHY_NOT:
        pytest.skip(f"multi-host suite (tests/system) skipped: {WHY_NOT}")


@pytest.fixture
def internet(tmp_path: Path) -> Iterator[netns.Internet]:
    """A bridge for the internet; the test plugs in public hosts and home routers. Everything
    is removed afterwards, whatever the test did.
    """
    with netns.Internet(tmp_path / "internet") as made:
        yield made
