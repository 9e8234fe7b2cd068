"""The one retry delay: doubling from the first delay, jittered into [half, all], capped, reset."""

import pytest
from napshare.peer.backoff import FIRST_DELAY, Backoff


def test_delays_double_within_their_jitter_up_to_the_cap() -> None:
    for _ in range(200):
        backoff = Backoff(cap=4.0)
        bases = [FIRST_DELAY * 2**i for i in range(4)] + [4.0] * 4  # 0.5 1 2 4 4 ...
        for base in bases:
            assert base / 2 <= backoff.next() <= base


def test_reset_starts_again_from_the_first_delay() -> None:
    backoff = Backoff(cap=10.0, first=1.0)
    for _ in range(6):
        backoff.next()
    assert 5.0 <= backoff.next() <= 10.0
    backoff.reset()
    assert 0.5 <= backoff.next() <= 1.0


def test_a_cap_below_the_first_delay_bounds_it_too() -> None:
    backoff = Backoff(cap=0.1)
    assert all(0.05 <= backoff.next() <= 0.1 for _ in range(10))


@pytest.mark.parametrize(("cap", "first"), [(0.0, 0.5), (1.0, 0.0), (-1.0, 0.5)])
def test_delays_must_be_positive(cap: float, first: float) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        Backoff(cap, first)
