"""The upload queue over gRPC: Downloads that ask to wait are served in the order they came,
each told its place as it changes; one that leaves frees its place at once; a full queue
refuses as a busy peer always did.
"""

import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from napshare.common import error_details, reasons
from napshare.peer.serving import servicer
from napshare.peer.serving.slots import QueueLimits
from napshare.v1 import peer_pb2, peer_pb2_grpc

from tests.support.peers import InProcessPeer
from tests.support.waiting import wait_until

BIG = 64 << 20  # far more than HTTP/2 flow control lets a server send ahead of its reader
WAIT = 30.0


@pytest.fixture
def root(tmp_path: Path) -> Path:
    with (tmp_path / "big.bin").open("wb") as out:
        out.truncate(BIG)
    (tmp_path / "small.txt").write_bytes(b"small" * 1000)
    return tmp_path


@pytest.fixture
def stub() -> Iterator[Callable[[InProcessPeer], peer_pb2_grpc.PeerServiceStub]]:
    """Stubs on channels of their own (each its own connection); closed after the test."""
    opened: list[grpc.Channel] = []

    def make(peer: InProcessPeer) -> peer_pb2_grpc.PeerServiceStub:
        channel = grpc.insecure_channel(f"127.0.0.1:{peer.port}")
        opened.append(channel)
        return peer_pb2_grpc.PeerServiceStub(channel)

    yield make
    for channel in opened:
        channel.close()


class Waiter(threading.Thread):
    """One Download of small.txt that asks to wait: every response, in order, on `responses`
    (None at the end), and what it got.
    """

    def __init__(self, stub: peer_pb2_grpc.PeerServiceStub, name: str = "small.txt") -> None:
        super().__init__(daemon=True)
        self.call = stub.Download(
            peer_pb2.DownloadRequest(name=name, wait_for_slot=True), timeout=120
        )
        self.responses: queue.Queue[peer_pb2.DownloadResponse | None] = queue.Queue()
        self.positions: list[int] = []
        self.data = b""
        self.error: grpc.RpcError | None = None

    def run(self) -> None:
        try:
            for response in self.call:
                if response.HasField("queued"):
                    self.positions.append(response.queued.position)
                self.data += response.data
                self.responses.put(response)
        except grpc.RpcError as error:
            self.error = error
        self.responses.put(None)

    def next(self) -> peer_pb2.DownloadResponse | None:
        return self.responses.get(timeout=WAIT)


def hold_the_slot(stub: peer_pb2_grpc.PeerServiceStub) -> grpc.Call:
    """A Download of big.bin that holds the only slot: it reads its first chunk, then nothing,
    so flow control stops the peer until the call is cancelled.
    """
    call = stub.Download(peer_pb2.DownloadRequest(name="big.bin"), timeout=120)
    next(call)
    return call


class GatedWaiter(Waiter):
    """A Waiter of big.bin that, once its first data came (`served` set), reads no more until
    `go` is set: it holds the slot meanwhile, so the next in line cannot be served yet.
    """

    def __init__(self, stub: peer_pb2_grpc.PeerServiceStub) -> None:
        super().__init__(stub, "big.bin")
        self.served = threading.Event()
        self.go = threading.Event()
        self.received = 0

    def run(self) -> None:
        try:
            for response in self.call:
                if response.HasField("queued"):
                    self.positions.append(response.queued.position)
                    self.responses.put(response)
                    continue
                self.received += len(response.data)
                if not self.served.is_set():
                    self.served.set()
                    self.go.wait(WAIT)
        except grpc.RpcError as error:
            self.error = error
        self.responses.put(None)


def test_three_downloaders_behind_one_slot_are_served_in_order_each_told_its_place(
    root: Path, start_peer: Callable[..., InProcessPeer], stub: Callable
) -> None:
    peer = start_peer(root, max_uploads=1, queue=QueueLimits(most=8, per_address=8))
    holder = hold_the_slot(stub(peer))
    waiters = []
    for place in (1, 2, 3):
        waiter = GatedWaiter(stub(peer))
        waiter.start()
        first = waiter.next()
        assert first is not None
        assert (first.queued.position, first.queued.waiting) == (place, place)
        assert not first.data
        assert not first.HasField("file")
        waiters.append(waiter)

    holder.cancel()
    served = []
    for _ in waiters:
        # The one served holds the slot until it is let go: nobody behind it gets data first.
        wait_until(lambda: any(w.served.is_set() and w not in served for w in waiters))
        now = [n for n, w in enumerate(waiters) if w.served.is_set() and w not in served]
        assert len(now) == 1
        served.append(waiters[now[0]])
        waiters[now[0]].go.set()
        waiters[now[0]].join(WAIT)

    assert served == waiters  # first come, first served
    for waiter in waiters:
        assert waiter.error is None
        assert waiter.received == BIG
    # Each was told every place it moved to, best last.
    assert [w.positions for w in waiters] == [[1], [2, 1], [3, 2, 1]]


def test_a_downloader_that_leaves_frees_its_place_at_once(
    root: Path,
    start_peer: Callable[..., InProcessPeer],
    stub: Callable,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Positions are otherwise repeated every few seconds: no repeat can pass for the news.
    monkeypatch.setattr(servicer, "QUEUE_REPORT_INTERVAL", 600.0)
    peer = start_peer(root, max_uploads=1, queue=QueueLimits(most=8, per_address=8))
    holder = hold_the_slot(stub(peer))
    first = Waiter(stub(peer))  # the call starts here: the second only once the first waits
    first.start()
    assert first.next().queued.position == 1
    second = Waiter(stub(peer))
    second.start()
    assert second.next().queued.position == 2

    first.call.cancel()

    moved = second.next()
    assert moved is not None
    assert (moved.queued.position, moved.queued.waiting) == (1, 1)
    holder.cancel()
    assert second.next().data  # its turn came


def test_a_waiting_downloader_hears_an_estimate_once_uploads_have_run(
    root: Path,
    start_peer: Callable[..., InProcessPeer],
    stub: Callable,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(servicer, "QUEUE_REPORT_INTERVAL", 0.2)
    peer = start_peer(root, max_uploads=1, queue=QueueLimits(most=8, per_address=8))
    holder = hold_the_slot(stub(peer))
    waiter = Waiter(stub(peer))
    waiter.start()
    try:
        estimates = []
        while not any(estimates):
            response = waiter.next()
            assert response is not None
            assert response.queued.position == 1
            estimates.append(response.queued.estimated_seconds)
        assert estimates[-1] > 0
    finally:
        holder.cancel()
        waiter.call.cancel()


def test_a_full_queue_refuses_as_a_busy_peer_does(
    root: Path, start_peer: Callable[..., InProcessPeer], stub: Callable
) -> None:
    peer = start_peer(root, max_uploads=1, queue=QueueLimits(most=1, per_address=1))
    holder = hold_the_slot(stub(peer))
    waiter = Waiter(stub(peer))
    waiter.start()
    try:
        assert waiter.next().queued.position == 1
        for wait, reason in (
            (True, reasons.TOO_MANY_UPLOADS_FOR_ADDRESS),  # this address has its one place
            (False, reasons.UPLOAD_SLOTS_FULL),  # and who does not ask to wait is refused
        ):
            call = stub(peer).Download(
                peer_pb2.DownloadRequest(name="small.txt", wait_for_slot=wait), timeout=10
            )
            with pytest.raises(grpc.RpcError) as caught:
                list(call)
            assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            details = error_details.read(caught.value)
            assert details is not None
            assert details.reason == reason
            assert details.retry_delay is not None
    finally:
        holder.cancel()
        waiter.call.cancel()


def test_a_request_that_cannot_be_served_is_refused_before_it_waits(
    root: Path, start_peer: Callable[..., InProcessPeer], stub: Callable
) -> None:
    peer = start_peer(root, max_uploads=1, queue=QueueLimits(most=8, per_address=8))
    holder = hold_the_slot(stub(peer))
    try:
        for request, code in (
            (peer_pb2.DownloadRequest(name="missing.txt"), grpc.StatusCode.NOT_FOUND),
            (
                peer_pb2.DownloadRequest(name="small.txt", offset=10**9),
                grpc.StatusCode.OUT_OF_RANGE,
            ),
            (
                peer_pb2.DownloadRequest(name="small.txt", sha256="0" * 64),
                grpc.StatusCode.FAILED_PRECONDITION,
            ),
        ):
            request.wait_for_slot = True
            with pytest.raises(grpc.RpcError) as caught:
                list(stub(peer).Download(request, timeout=10))
            assert caught.value.code() is code  # at once, not after waiting its turn
    finally:
        holder.cancel()


WAITER = """
import sys, time
import grpc
from napshare.v1 import peer_pb2, peer_pb2_grpc
channel = grpc.insecure_channel(sys.argv[1])
call = peer_pb2_grpc.PeerServiceStub(channel).Download(
    peer_pb2.DownloadRequest(name="small.txt", wait_for_slot=True)
)
print(next(call).queued.position, flush=True)
time.sleep(600)
"""


def test_a_downloader_killed_while_it_waits_leaves_the_queue_at_once(
    root: Path,
    start_peer: Callable[..., InProcessPeer],
    stub: Callable,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(servicer, "QUEUE_REPORT_INTERVAL", 600.0)  # no repeat passes for news
    peer = start_peer(root, max_uploads=1, queue=QueueLimits(most=8, per_address=8))
    holder = hold_the_slot(stub(peer))
    process = subprocess.Popen(
        [sys.executable, "-c", WAITER, f"127.0.0.1:{peer.port}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "1"
        second = Waiter(stub(peer))
        second.start()
        assert second.next().queued.position == 2

        process.kill()  # no cancel sent: its connection just closes

        moved = second.next()
        assert moved is not None
        assert (moved.queued.position, moved.queued.waiting) == (1, 1)
    finally:
        process.kill()
        process.wait()
        holder.cancel()
