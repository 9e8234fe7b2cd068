"""Fixtures for the tracker's tests: FileInfos, and tracker processes (in-process trackers,
`tracker` and `make_tracker`, are in tests/conftest.py).
"""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from napshare.v1 import file_info_pb2

from tests.support.trackers import TrackerProcess, file_info


@pytest.fixture
def info() -> Callable[..., file_info_pb2.FileInfo]:
    """info(name, size=1000): a FileInfo whose sha256 is the digest of its name."""
    return file_info


@pytest.fixture
def spawn_tracker(python: str, tmp_path: Path) -> Iterator[Callable[..., TrackerProcess]]:
    """spawn_tracker(*args, lang=..., tls=False): `python -m napshare.tracker` processes on free
    ports, in tmp_path; any still running at the end of the test is killed.
    """
    started: list[TrackerProcess] = []

    def spawn(*args: str, lang: str = "C.UTF-8", tls: bool = False) -> TrackerProcess:
        process = TrackerProcess(python, tmp_path, *args, lang=lang, tls=tls)
        started.append(process)
        return process

    yield spawn
    for process in started:
        process.kill()
