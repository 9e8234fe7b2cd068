"""Tests marked `serial` run with no other test at the same time, also on several workers
(pytest-xdist, as make test runs them): they time things, or send signals, in ways that the
load of another test can upset.

The workers of one run share a readers-writer lock on two files in the run's temporary folder:
every test holds `tests.lock`, shared, or exclusive for a serial test. A test takes
`gate.lock` before it; a serial test keeps the gate while it waits for the tests that run, so
that no other test starts meanwhile and it is not kept waiting for ever.

Not xdist_group with --dist loadgroup: that only keeps the tests of a group off each other,
not off the other tests, and with pytest 9.2 and pytest-xdist 3.8 it does nothing at all
(pytest-xdist issue 1386: the group is written into a node id that pytest no longer reads).
"""

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def machine_turn(folder: Path, *, alone: bool) -> Iterator[None]:
    """Hold the machine for one test, `alone` or shared with the other tests; the lock files
    are in `folder`, which every worker of the run must share.
    """
    with (folder / "gate.lock").open("a") as gate, (folder / "tests.lock").open("a") as tests:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(tests, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(tests, fcntl.LOCK_UN)
