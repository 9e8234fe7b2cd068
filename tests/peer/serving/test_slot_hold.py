"""The hold of UploadSlots: a slot whose stream sent all it was asked for stays with the same
client and file for a moment (its next claim of pieces keeps the slot), then goes to the queue
or to anyone; a stream that did not finish, or another client, gets nothing held.
"""

import os
import time
from pathlib import Path

import grpc
import pytest
from napshare.peer.folder.store import SharedFolder
from napshare.peer.serving.errors import TooManyUploadsError, UploadsBusyError
from napshare.peer.serving.server import create_server
from napshare.peer.serving.slots import Fairness, QueueLimits, QueuePlace, UploadSlots
from napshare.v1 import peer_pb2, peer_pb2_grpc

from tests.support.waiting import wait_until

CLIENT = "ipv4:198.51.100.1:40000 film.mkv"  # one connection, one file
HOLD = 0.5


def finished(slots: UploadSlots, holder: str = CLIENT, address: str = "198.51.100.1") -> None:
    """One stream from `address` that sent its whole range, then ended."""
    slot = slots.acquire(address, holder=holder, size=100)
    slot.sent(100)
    slot.finish()
    slot.release()


def test_the_same_client_gets_its_slot_back_within_the_hold_while_others_are_busy() -> None:
    slots = UploadSlots(1, hold=HOLD)
    finished(slots)

    assert (slots.in_use, slots.kept) == (0, 1)  # kept, not free
    with pytest.raises(UploadsBusyError):
        slots.acquire("198.51.100.2", holder="ipv4:198.51.100.2:40000 film.mkv")
    again = slots.acquire("198.51.100.1", holder=CLIENT, size=50)

    assert again.bytes_sent == 100  # the same slot: what it sent carries on
    assert again.size == 150
    assert (slots.in_use, slots.kept) == (1, 0)
    again.release()
    assert (slots.in_use, slots.kept) == (0, 0)


def test_after_the_hold_the_slot_goes_to_the_next_in_the_queue() -> None:
    slots = UploadSlots(1, queue=QueueLimits(most=4, per_address=4), hold=HOLD)
    finished(slots)
    waiting = slots.acquire_or_wait("198.51.100.2", holder="ipv4:198.51.100.2:40000 film.mkv")
    assert isinstance(waiting, QueuePlace)

    assert waiting.update(HOLD / 10) is not None  # still held for the first client
    started = time.monotonic()
    while waiting.update(HOLD) is not None:  # the hold ends: the place's turn comes
        assert time.monotonic() - started < 10 * HOLD, "the hold never ended"

    assert waiting.slot is not None
    with pytest.raises(UploadsBusyError):  # the first client lost it
        slots.acquire("198.51.100.1", holder=CLIENT)


def test_after_the_hold_a_newcomer_gets_the_slot_without_asking_to_wait() -> None:
    slots = UploadSlots(1, hold=HOLD)
    finished(slots)

    wait_until(lambda: slots.kept == 0, timeout=10 * HOLD)  # the watcher ends it

    other = slots.acquire("198.51.100.2", holder="ipv4:198.51.100.2:40000 film.mkv")
    assert other.bytes_sent == 0


def test_nothing_is_held_for_another_connection_another_file_or_an_unfinished_stream() -> None:
    slots = UploadSlots(2, hold=60)
    finished(slots)
    cut = slots.acquire("198.51.100.3", holder="ipv4:198.51.100.3:40000 film.mkv")
    cut.release()  # the client went away mid-stream: no finish

    assert (slots.in_use, slots.kept) == (0, 1)  # only the finished stream's slot is kept
    other_file = slots.acquire("198.51.100.2", holder="ipv4:198.51.100.2:40000 other.mkv")
    assert other_file.bytes_sent == 0
    with pytest.raises(UploadsBusyError):  # the held one is not its to take
        slots.acquire("198.51.100.2", holder="ipv4:198.51.100.2:40001 film.mkv")


def test_no_hold_frees_a_finished_slot_at_once() -> None:
    slots = UploadSlots(1)
    finished(slots)

    assert (slots.in_use, slots.kept) == (0, 0)


def test_a_held_slot_counts_for_its_address_against_others_but_yields_to_its_next_file() -> None:
    fairness = Fairness(per_address=1, min_rate=0, window=30, grace=10)
    slots = UploadSlots(2, fairness=fairness, queue=QueueLimits(most=4, per_address=4), hold=60)
    finished(slots)
    other = slots.acquire("198.51.100.2", holder="ipv4:198.51.100.2:40000 film.mkv")

    # The same client's next download (another file) is not kept out by its own held slot.
    next_file = slots.acquire("198.51.100.1", holder="ipv4:198.51.100.1:40001 other.mkv")
    assert next_file.bytes_sent == 0
    assert (slots.in_use, slots.kept) == (2, 0)
    next_file.release()
    finished(slots)  # held again; now someone else waits
    waiting = slots.acquire_or_wait("198.51.100.3", holder="ipv4:198.51.100.3:40000 film.mkv")
    assert isinstance(waiting, QueuePlace)
    with pytest.raises(TooManyUploadsError):  # those who wait go first
        slots.acquire("198.51.100.1", holder="ipv4:198.51.100.1:40001 other.mkv")
    assert slots.acquire("198.51.100.1", holder=CLIENT).bytes_sent == 100
    other.release()
    assert waiting.slot is not None


def test_a_negative_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="hold"):
        UploadSlots(1, hold=-1)


FILE = 4 << 20


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    (tmp_path / "film.mkv").write_bytes(os.urandom(FILE))
    return tmp_path


def _channel(
    port: int, opened: list[grpc.Channel], host: str = "127.0.0.1"
) -> peer_pb2_grpc.PeerServiceStub:
    """A stub on a channel with a connection of its own (as each stream of a download has)."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    channel = grpc.insecure_channel(f"{host}:{port}", options=options)
    opened.append(channel)
    return peer_pb2_grpc.PeerServiceStub(channel)


def _fetch(stub: peer_pb2_grpc.PeerServiceStub, offset: int, limit: int) -> bytes:
    request = peer_pb2.DownloadRequest(name="film.mkv", offset=offset, limit=limit)
    return b"".join(r.data for r in stub.Download(request, timeout=30))


def test_over_grpc_a_download_in_parts_keeps_the_only_slot_and_another_gets_it_after_the_hold(
    shared: Path,
) -> None:
    # Two clients at two addresses of this host: 127.0.0.1 and ::1, to a server on both.
    server, port = create_server(SharedFolder(shared), host="::", max_uploads=1, slot_hold=1.0)
    opened: list[grpc.Channel] = []
    try:
        first, second = _channel(port, opened), _channel(port, opened, "[::1]")
        data = _fetch(first, 0, FILE // 2)

        with pytest.raises(grpc.RpcError) as busy:  # the slot is held for the first client
            _fetch(second, 0, FILE)
        assert busy.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        data += _fetch(first, FILE // 2, 0)  # its next part: the same slot, no refusal

        assert data == (shared / "film.mkv").read_bytes()
        got: list[bytes] = []  # the second client polls until the hold ends
        wait_until(lambda: got.append(_fetch_or_none(second) or b"") or got[-1], timeout=10)
        assert got[-1] == data
    finally:
        for channel in opened:
            channel.close()
        server.stop(None)


def _fetch_or_none(stub: peer_pb2_grpc.PeerServiceStub) -> bytes | None:
    """The whole file, or None while the peer is busy."""
    try:
        return _fetch(stub, 0, 0)
    except grpc.RpcError as error:
        if error.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED:
            raise
        return None
