"""A search pages for a bounded time whatever the tracker answers: a tracker sending empty
pages, each pointing to one more, slowly, gets asked for no more of them once the time is
up, and setting the search's cancel event ends it within a fraction of a second. The tracker
is a real gRPC server (tests.support.hostile_tracker).
"""

import hashlib
import threading
import time
from collections.abc import Iterator

import pytest
from napshare.peer.errors import TrackerUnreachableError
from napshare.peer.tracker_client import MAX_PAGES, TrackerClient
from napshare.v1 import file_info_pb2

from tests.support.hostile_tracker import HostileTracker

FILE = file_info_pb2.FileInfo(
    name="big.bin", size=1 << 20, sha256=hashlib.sha256(b"made up").hexdigest()
)


@pytest.fixture
def endless() -> Iterator[HostileTracker]:
    tracker = HostileTracker(FILE, endless=True, page_delay=0.05)
    yield tracker
    tracker.stop()


def test_endless_empty_pages_are_asked_for_only_until_the_searchs_time(endless):
    client = TrackerClient(endless.address)
    try:
        found = client.find(name="big.bin", seconds=1.0)
    finally:
        client.close()

    assert found.sources == []
    assert found.timed_out
    assert found.more
    assert found.capped
    assert 1 < endless.pages < MAX_PAGES


def test_a_cancelled_search_stops_asking(endless):
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    client = TrackerClient(endless.address)
    try:
        found = client.find(name="big.bin", cancel=cancel)
    finally:
        client.close()
    pages = endless.pages
    time.sleep(0.3)

    assert found.stopped
    assert not found.timed_out
    assert endless.pages == pages < MAX_PAGES  # nothing asked after it stopped


def test_a_tracker_that_answers_no_page_in_time_is_unreachable():
    silent = HostileTracker(FILE, endless=True, page_delay=2.0)
    client = TrackerClient(silent.address)
    try:
        with pytest.raises(TrackerUnreachableError, match=r"sent no search result in 0\.5 s"):
            client.find(name="big.bin", seconds=0.5)
    finally:
        client.close()
        silent.stop()
