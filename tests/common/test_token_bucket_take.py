"""TokenBucket.take: a bucket that refuses rather than goes into debt (the tracker's rate per
caller IP), on a fake clock.
"""

import pytest
from napshare.common.ratelimit import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_take_spends_the_burst_then_says_when_a_token_comes_without_taking_it():
    clock = Clock()
    bucket = TokenBucket(2, burst=4, clock=clock)
    assert [bucket.take() for _ in range(4)] == [0.0] * 4
    assert bucket.take() == pytest.approx(0.5)
    assert bucket.take() == pytest.approx(0.5)  # refusals cost nothing
    clock.now += 0.5
    assert bucket.take() == 0.0
    assert bucket.take(3) == pytest.approx(1.5)


def test_no_rate_never_refuses():
    bucket = TokenBucket(0)
    assert all(bucket.take(10**9) == 0.0 for _ in range(10))
