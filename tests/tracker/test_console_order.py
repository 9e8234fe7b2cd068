"""The tracker's console lines and its log lines reach the terminal in the order of what
happened: console lines are written in batches, and a log line first writes those queued
before it (a search, then the Leave of the peer that searched).
"""

import re
import subprocess
import sys
from pathlib import Path

from napshare.peer.folder.store import SharedFile
from napshare.peer.tracker_client import TrackerClient

LISTENING = re.compile(r"napshare tracker listening on 127\.0\.0\.1:(\d+)")


def test_a_search_then_a_leave_print_in_that_order(tmp_path: Path) -> None:
    tracker = subprocess.Popen(
        [
            *(sys.executable, "-m", "napshare.tracker", "--host", "127.0.0.1", "--port", "0"),
            "--plaintext",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert tracker.stdout is not None
        found = LISTENING.search(tracker.stdout.readline())
        assert found is not None
        client = TrackerClient(f"127.0.0.1:{found.group(1)}")
        try:
            for n in range(5):
                joined = client.join(
                    "127.0.0.1", 9000 + n, [SharedFile(f"a{n}.mp4", 1, "ab" * 32, 0)]
                )
                client.search(f"a{n}.mp4", asker=joined.peer_id)
                client.leave(joined)  # at once: well within the console's batch
        finally:
            client.close()
    finally:
        tracker.terminate()
        out, _ = tracker.communicate(timeout=30)

    events = [
        line for line in out.splitlines() if "requested file" in line or line.endswith(" left")
    ]
    assert events == [
        line
        for n in range(5)
        for line in (
            f"Peer 127.0.0.1:{9000 + n} requested file a{n}.mp4",
            events[2 * n + 1],
        )
    ], out
    for n in range(5):
        assert events[2 * n + 1].endswith(f"peer 127.0.0.1:{9000 + n} left")
