"""The token bucket (exact, on a fake clock), rate parsing, and a capped peer server's slots."""

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from napshare.common.ratelimit import BURST_SECONDS, TokenBucket, parse_rate
from napshare.peer.defaults import MIN_CHUNK_SIZE
from napshare.peer.serving.slots import Fairness
from napshare.peer.serving.uploads import paced_chunk_size

from tests.support.clock import Clock
from tests.support.peers import InProcessPeer

KIB = 1024
MIB = 1024 * 1024


def test_no_rate_means_no_wait() -> None:
    bucket = TokenBucket(0)
    assert not bucket.limited
    assert all(bucket.reserve(MIB) == 0 for _ in range(100))


def test_a_full_bucket_lets_its_burst_through_then_charges_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(1000, clock=clock)
    assert bucket.burst == 1000 * BURST_SECONDS
    assert bucket.reserve(250) == 0
    assert bucket.reserve(1000) == pytest.approx(1.0)
    assert bucket.reserve(500) == pytest.approx(1.5)  # queued behind the first debt
    assert bucket.reserve(0) == 0  # an empty file's only message waits for nobody
    clock.now += 1.5
    assert bucket.reserve(0) == 0


def test_an_idle_bucket_refills_only_up_to_its_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(1000, burst=100, clock=clock)
    clock.now += 3600
    assert bucket.reserve(100) == 0
    assert bucket.reserve(1) == pytest.approx(0.001)


@pytest.mark.parametrize("chunk", [1, 700, 16 * KIB, MIB])
def test_bytes_over_time_are_the_rate_exactly(chunk: int) -> None:
    """A sender that waits as told moves burst + rate × t bytes in t seconds, no more."""
    clock = Clock()
    rate = 10 * chunk + 0.5
    bucket = TokenBucket(rate, clock=clock)
    start = clock.now
    sent = 0
    while sent < 1000 * chunk:
        clock.now += bucket.reserve(chunk)
        sent += chunk
    elapsed = clock.now - start
    assert elapsed == pytest.approx((sent - bucket.burst) / rate)


def test_senders_sharing_a_bucket_share_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(1000, burst=0, clock=clock)
    waits = [bucket.reserve(100) for _ in range(10)]  # ten uploads at once, one chunk each
    assert waits == pytest.approx([0.1 * n for n in range(1, 11)])


def test_a_negative_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        TokenBucket(-1)


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("0", 0),
        ("4096", 4096),
        ("500K", 500 * KIB),
        ("500k", 500 * KIB),
        ("30M", 30 * MIB),
        ("1.5G", 1.5 * 1024**3),
        ("2MiB/s", 2 * MIB),
        ("2MB", 2 * MIB),
        (" 8K ", 8 * KIB),
    ],
)
def test_rates_read_as_binary_units(text: str, rate: float) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "-1", "10X", "nan", "inf", "1e9", "M", "1..2K", "5 M"])
def test_what_is_not_a_rate_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a rate"):
        parse_rate(text)


def test_a_cap_lowers_the_minimum_upload_rate_to_half_a_slots_share() -> None:
    fairness = Fairness(per_address=2, min_rate=64 * KIB, window=30, grace=10)
    assert fairness.under_cap(0, 4) is fairness
    assert fairness.under_cap(100 * MIB, 4).min_rate == 64 * KIB
    assert fairness.under_cap(256 * KIB, 4).min_rate == 32 * KIB


def test_a_cap_shrinks_chunks_to_a_quarter_second_of_it() -> None:
    assert paced_chunk_size(MIB, 0) == MIB
    assert paced_chunk_size(MIB, 100 * MIB) == MIB
    assert paced_chunk_size(MIB, 2 * MIB) == MIB // 2
    assert paced_chunk_size(MIB, 1) == MIN_CHUNK_SIZE


def _file(root: Path, size: int) -> Path:
    path = root / "f.bin"
    path.write_bytes(os.urandom(size))
    return path


@pytest.mark.serial  # a reader that must keep up with the cap
def test_a_reader_held_back_by_the_peers_own_cap_keeps_its_slot(
    tmp_path: Path, start_peer: Callable[..., InProcessPeer]
) -> None:
    # A 1 MiB/s minimum over 1 s windows would reclaim any slot of a 512 KiB/s peer.
    strict = Fairness(per_address=4, min_rate=MIB, window=1.0, grace=0.2)
    data = _file(tmp_path, 2 * MIB).read_bytes()
    peer = start_peer(tmp_path, fairness=strict, max_upload_rate=512 * KIB, stall_timeout=30.0)
    assert b"".join(r.data for r in peer.download("f.bin")) == data


@pytest.mark.serial  # a 1 s stall timeout
def test_waiting_for_the_cap_is_not_a_stall_of_the_reader(
    tmp_path: Path, start_peer: Callable[..., InProcessPeer]
) -> None:
    # Each 16 KiB chunk waits about 2 s for tokens, twice the 1 s stall timeout (which still
    # leaves a loaded machine a second to hand each chunk to gRPC once its wait is over).
    data = _file(tmp_path, 32 * KIB).read_bytes()
    peer = start_peer(tmp_path, max_upload_rate=8 * KIB, stall_timeout=1.0)
    assert b"".join(r.data for r in peer.download("f.bin")) == data
