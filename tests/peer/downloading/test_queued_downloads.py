"""Downloads that find a peer's only upload slot taken wait in its queue: served first come,
first served, each told its place as it moves; and one that has another source does not wait
for a busy one.

A real tracker, a real serving node (one upload slot) and real downloaders in this process;
the slot is held by a Download call that reads one chunk and then nothing.
"""

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from napshare.peer.downloading.engine import Downloader, DownloadOptions
from napshare.peer.downloading.reporting import SilentReporter
from napshare.peer.folder.store import SharedFolder
from napshare.peer.serving.slots import QueueLimits
from napshare.v1 import peer_pb2, peer_pb2_grpc

from tests.support.downloads import Swarm
from tests.support.files import MIB, sha256_file
from tests.support.waiting import wait_until

SMALL = 3 * MIB  # the file the downloaders fetch: three pieces, one stream
BIG = 64 * MIB  # the file whose download holds the slot: far more than flow control sends ahead


class Places(SilentReporter):
    """Keeps every queue place a download was told, and notes when its data came."""

    def __init__(self, number: int, served: list[int], lock: threading.Lock) -> None:
        self.number = number
        self.positions: list[tuple[int, int]] = []  # (position, waiting), as told
        self._served = served
        self._lock = lock

    def queued(self, peer: str, position: int, waiting: int, estimate: int) -> None:
        if position:
            self.positions.append((position, waiting))
            return
        with self._lock:  # its data comes: the peer serves it now
            if self.number not in self._served:
                self._served.append(self.number)


@pytest.fixture
def held(swarm: Swarm) -> Iterator[tuple[Path, grpc.Call]]:
    """A serving node with one upload slot, sharing small.bin and big.bin, and a Download of
    big.bin that holds the slot until it is cancelled.
    """
    folder = swarm.folder("serving")
    (folder / "small.bin").write_bytes(os.urandom(SMALL))
    with (folder / "big.bin").open("wb") as out:
        out.truncate(BIG)
    node = swarm.node(folder, swarm.tracker.address, max_uploads=1, queue=QueueLimits(8, 8))
    channel = grpc.insecure_channel(f"127.0.0.1:{node.port}")
    call = peer_pb2_grpc.PeerServiceStub(channel).Download(
        peer_pb2.DownloadRequest(name="big.bin"), timeout=120
    )
    next(call)
    yield folder, call
    call.cancel()
    channel.close()


def test_three_downloaders_behind_one_slot_are_served_in_order_each_told_its_place(
    swarm: Swarm, held: tuple[Path, grpc.Call]
) -> None:
    serving, holder = held
    served: list[int] = []
    lock = threading.Lock()
    reporters, threads, folders = [], [], []
    for number in range(3):
        folder = swarm.folder(f"d{number}")
        reporter = Places(number, served, lock)
        downloader = Downloader(SharedFolder(folder), swarm.tracker.client)
        thread = threading.Thread(
            target=downloader.download,
            args=("small.bin", DownloadOptions(), reporter),
            daemon=True,
        )
        thread.start()
        # Each asks once the one before it waits: the queue's order is theirs.
        wait_until(lambda reporter=reporter: bool(reporter.positions))
        reporters.append(reporter)
        threads.append(thread)
        folders.append(folder)

    holder.cancel()
    for thread in threads:
        thread.join(60)

    assert served == [0, 1, 2]
    for folder in folders:
        assert sha256_file(folder / "small.bin") == sha256_file(serving / "small.bin")
    # Each was told its place when it came, and every place it moved to, best last.
    assert [r.positions[0] for r in reporters] == [(1, 1), (2, 2), (3, 3)]
    for reporter in reporters:
        positions = [position for position, _ in reporter.positions]
        assert positions == sorted(positions, reverse=True)
        assert positions[-1] == 1


def test_a_download_with_another_source_does_not_wait_for_the_busy_one(
    swarm: Swarm, held: tuple[Path, grpc.Call]
) -> None:
    serving, _holder = held
    other = swarm.folder("other")
    (other / "small.bin").write_bytes((serving / "small.bin").read_bytes())
    free = swarm.node(other, swarm.tracker.address)
    target = swarm.folder("d")

    result = Downloader(SharedFolder(target), swarm.tracker.client).download(
        "small.bin", DownloadOptions(give_up_after=60)
    )

    # The busy peer kept its place in line meanwhile, but the free one sent every piece.
    assert dict(result.received_from) == {free.link.peer_id: SMALL}
    assert sha256_file(target / "small.bin") == sha256_file(serving / "small.bin")
