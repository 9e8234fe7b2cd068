"""A client's 50,000-name Joins do not hold the memory index from everyone else: another
peer's heartbeat and search are answered while such a Join is half added, and the big Join's
registration appears whole, at once.
"""

from __future__ import annotations

import threading

from napshare.tracker.index import TrackerIndex
from napshare.tracker.store.base import FileEntry

from tests.support.waiting import wait_until

NAMES = 50_000


def big_list(tag: str) -> list[FileEntry]:
    return [
        FileEntry(f"{tag}-{n:05d}-" + "x" * 200 + ".bin", n + 1, "ab" * 32) for n in range(NAMES)
    ]


def test_another_peers_heartbeat_and_search_are_answered_while_50000_names_join():
    # A lease far longer than the Joins take on a loaded machine: only the lock is tested.
    index = TrackerIndex(3600, large_join_interval=0)
    other = index.join("192.0.2.1", 9000, [FileEntry("lecture.mp4", 1, "cd" * 32)], "192.0.2.1")
    for tag in ("first", "second"):  # a Join, then one that replaces it with other names
        files = big_list(tag)
        before = index.stats().entries
        joined = threading.Thread(
            target=index.join, args=("198.51.100.7", 9001, files, "198.51.100.7")
        )
        joined.start()
        # Half added: some of its entries are in (or, replacing, some of the last one's out).
        ends = (before, NAMES + 1)
        wait_until(lambda ends=ends: index.stats().entries not in ends, timeout=60)
        index.heartbeat(other.peer_id, other.token)
        found = index.search(name="lecture.mp4").matches
        mine = index.search(name=files[0].name).matches
        # Both answered before the Join ended: they were not held behind it.
        entries = index.stats().entries
        assert joined.is_alive(), "the Join ended before the heartbeat and search did"
        assert entries not in ends
        assert [m.peer_id for m in found] == [other.peer_id]
        assert mine == []  # the half-added registration is not searched
        joined.join()
        assert len(index.files_of("198.51.100.7:9001") or []) == NAMES
        assert [m.peer_id for m in index.search(name=files[-1].name).matches] == [
            "198.51.100.7:9001"
        ]
        assert index.stats().entries == NAMES + 1
        assert index.audit() == []
