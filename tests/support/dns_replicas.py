"""Run inside a network namespace whose /etc/hosts gives one name two addresses: two tracker
replicas behind that name, a peer that knows only the name, one replica killed; prints what
the other replica then lists, as JSON. tests/peer/test_tracker_dns.py runs it with
`ip netns exec`, which lays the namespace's own hosts file over /etc/hosts.

    python -m tests.support.dns_replicas NAME STORE_URL FOLDER
"""

import json
import signal
import sys
import time
from pathlib import Path

from napshare.peer.folder.store import SharedFolder
from napshare.peer.tracker_client import TrackerClient
from napshare.peer.tracker_link import TrackerLink

from tests.support.chaos import start_replica

LEASE = 3.0  # the replicas' heartbeat interval is 1 s


def main(name: str, store: str, folder: Path) -> dict[str, object]:
    first = start_replica(store, folder, "--heartbeat-interval", "1")
    port = first.address.rsplit(":", 1)[1]
    # The second replica listens on the name's other address, at the same port.
    second = start_replica(
        store, folder, "--heartbeat-interval", "1", "--host", "127.0.0.2", "--port", port
    )
    shared = folder / "shared"
    shared.mkdir()
    (shared / "lecture.mp4").write_bytes(b"x" * 1000)
    link = TrackerLink(
        TrackerClient(f"{name}:{port}"), SharedFolder(shared), host="127.0.0.1", port=7001
    )
    watcher = TrackerClient(f"127.0.0.2:{port}")
    try:
        link.join()
        link.start()
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        time.sleep(2 * LEASE)
        found = watcher.find(name="lecture.mp4")
        return {"peers": [source.peer for source in found.sources], "joins": link.join_count}
    finally:
        link.stop(leave=False)
        watcher.close()
        second.process.kill()
        second.process.wait()


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))))
