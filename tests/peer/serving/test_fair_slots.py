"""Fair upload slots: slow readers lose their slots, one address holds only a few, fast keep."""

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from napshare.common.address import caller_ip
from napshare.peer.serving.slots import Fairness
from napshare.v1 import peer_pb2, peer_pb2_grpc

from tests.support.peers import InProcessPeer

BIG = 64 << 20  # far more than HTTP/2 flow control lets a server send ahead of its reader
PACED = 8 << 20
CHUNK = 16 * 1024
WAIT = 10.0  # generous: every bound here is a second or two
# A reader taking one 16 KiB chunk a second is far below 1 MiB/s, a paced one far above it.
STRICT = Fairness(per_address=4, min_rate=1 << 20, window=1.0, grace=0.5)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    with (tmp_path / "big.bin").open("wb") as out:
        out.truncate(BIG)
    with (tmp_path / "paced.bin").open("wb") as out:
        out.truncate(PACED)
    (tmp_path / "small.txt").write_bytes(b"small")
    return tmp_path


@pytest.fixture
def channels(
    start_peer: Callable[..., InProcessPeer],
) -> Iterator[Callable[[InProcessPeer], grpc.Channel]]:
    """New channels (own connections, so own client ports) to a peer; closed after the test."""
    opened: list[grpc.Channel] = []

    def open_channel(peer: InProcessPeer) -> grpc.Channel:
        channel = grpc.insecure_channel(f"127.0.0.1:{peer.port}")
        opened.append(channel)
        return channel

    yield open_channel
    for channel in opened:
        channel.close()


class SlowReader(threading.Thread):
    """Takes one chunk of big.bin a second until told to drain, then reads the rest at once."""

    def __init__(self, channel: grpc.Channel) -> None:
        super().__init__(daemon=True)
        self.stream = peer_pb2_grpc.PeerServiceStub(channel).Download(
            peer_pb2.DownloadRequest(name="big.bin"), timeout=120
        )
        self.first = threading.Event()
        self.drain = threading.Event()
        self.error: grpc.RpcError | None = None
        self.received = 0

    def run(self) -> None:
        try:
            for response in self.stream:
                self.received += len(response.data)
                self.first.set()
                if not self.drain.is_set():
                    self.drain.wait(1.0)
        except grpc.RpcError as error:
            self.error = error
        finally:
            self.first.set()


def download_within(
    peer: InProcessPeer, name: str, deadline: float, rpc_details: Callable[..., tuple]
) -> tuple[bytes, list[str]]:
    """Download `name`, waiting as RESOURCE_EXHAUSTED's RetryInfo says; the reasons seen."""
    refusals: list[str] = []
    while True:
        try:
            return b"".join(r.data for r in peer.download(name)), refusals
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            info, retry = rpc_details(error)
            refusals.append(info.reason)
            assert retry is not None, "a refusal without RetryInfo"
            delay = retry.retry_delay.ToTimedelta().total_seconds()
            assert time.monotonic() + delay < deadline, f"still refused: {refusals}"
            time.sleep(delay)


def test_slow_readers_holding_every_slot_do_not_lock_a_downloader_out(
    root: Path,
    start_peer: Callable[..., InProcessPeer],
    channels: Callable[[InProcessPeer], grpc.Channel],
    rpc_details: Callable[..., tuple],
) -> None:
    # Every client here is 127.0.0.1: one more slot per address than the peer has, so that
    # the reclaimed streams (they count until they end) leave the newcomer its share.
    fairness = Fairness(per_address=5, min_rate=STRICT.min_rate, window=1.0, grace=0.5)
    peer = start_peer(root, max_uploads=4, chunk_size=CHUNK, stall_timeout=60.0, fairness=fairness)
    readers = [SlowReader(channels(peer)) for _ in range(4)]
    for reader in readers:
        reader.start()
    for reader in readers:
        assert reader.first.wait(WAIT)
    assert peer.error("small.txt") == grpc.StatusCode.RESOURCE_EXHAUSTED  # all slots held

    data, _ = download_within(peer, "small.txt", time.monotonic() + WAIT, rpc_details)

    assert data == b"small"
    for reader in readers:  # drained, each slow stream ends saying why
        reader.drain.set()
        reader.join(WAIT)
        assert reader.error is not None
        assert reader.error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert rpc_details(reader.error)[0].reason == "UPLOAD_TOO_SLOW"
        assert reader.received < BIG
    assert peer.download("small.txt")[0].data == b"small"  # nothing left held


def test_an_address_past_its_share_is_refused_with_its_reason(
    root: Path,
    start_peer: Callable[..., InProcessPeer],
    channels: Callable[[InProcessPeer], grpc.Channel],
    rpc_details: Callable[..., tuple],
) -> None:
    fairness = Fairness(per_address=4, min_rate=0, window=30.0, grace=10.0)
    peer = start_peer(root, max_uploads=8, fairness=fairness)
    held = []
    for _ in range(4):  # four connections: four client ports, one address
        stream = peer_pb2_grpc.PeerServiceStub(channels(peer)).Download(
            peer_pb2.DownloadRequest(name="big.bin")
        )
        assert next(stream).file.size == BIG
        held.append(stream)

    fifth = peer_pb2_grpc.PeerServiceStub(channels(peer)).Download(
        peer_pb2.DownloadRequest(name="small.txt")
    )
    with pytest.raises(grpc.RpcError) as caught:
        list(fifth)

    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info, retry = rpc_details(caught.value)
    assert info.reason == "TOO_MANY_UPLOADS_FOR_ADDRESS"
    assert retry is not None
    assert "127.0.0.1" in caught.value.details()
    held.pop().cancel()
    data, _ = download_within(peer, "small.txt", time.monotonic() + WAIT, rpc_details)
    assert data == b"small"
    for stream in held:
        stream.cancel()


@pytest.mark.serial  # readers that must stay above 1 MiB/s
def test_readers_above_the_minimum_rate_keep_their_slots(
    root: Path,
    start_peer: Callable[..., InProcessPeer],
    channels: Callable[[InProcessPeer], grpc.Channel],
) -> None:
    peer = start_peer(root, max_uploads=2, chunk_size=CHUNK, stall_timeout=60.0, fairness=STRICT)
    totals: list[int] = []
    errors: list[grpc.RpcError] = []

    def read_paced() -> None:
        stub = peer_pb2_grpc.PeerServiceStub(channels(peer))
        total = 0
        try:
            for response in stub.Download(peer_pb2.DownloadRequest(name="paced.bin"), timeout=120):
                total += len(response.data)
                time.sleep(0.002)  # 512 chunks: several windows long, yet well above 1 MiB/s
        except grpc.RpcError as error:
            errors.append(error)
        totals.append(total)

    threads = [threading.Thread(target=read_paced) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert errors == []
    assert totals == [PACED, PACED]


@pytest.mark.parametrize(
    ("peer", "ip"),
    [
        ("ipv4:127.0.0.1:5555", "127.0.0.1"),
        ("ipv6:[::1]:5555", "::1"),
        ("ipv6:%5B::1%5D:5555", "::1"),
        ("unix:/tmp/socket", None),
        ("", None),
    ],
)
def test_the_caller_s_ip_is_its_address_without_the_port(peer: str, ip: str | None) -> None:
    assert caller_ip(peer) == ip
