"""Log and console lines are bounded: so many of one kind per window, then a count; cut long."""

import io
import logging

from napshare.common import logsetup
from napshare.common.linelimit import MAX_LINE_CHARS, LineLimiter, cut

from tests.support.clock import Clock


def test_past_the_limit_lines_of_one_kind_are_counted_and_reported_once_the_window_ends() -> None:
    clock = Clock(100.0)
    limiter = LineLimiter(3, 10.0, clock)

    admitted = [limiter.admit("bad request") for _ in range(1000)]
    other = limiter.admit("joined")
    clock.now += 5
    assert limiter.left_out() == []  # the window is not over yet
    clock.now += 5

    assert admitted.count(True) == 3
    assert other
    assert limiter.left_out() == [("bad request", 997)]
    assert limiter.left_out() == []
    assert limiter.admit("bad request")


def test_a_kind_that_is_left_out_waits_for_its_count_to_be_reported() -> None:
    clock = Clock(100.0)
    limiter = LineLimiter(1, 1.0, clock)
    assert limiter.admit("x")
    assert not limiter.admit("x")
    clock.now += 2

    assert not limiter.admit("x")  # counted with the others, reported together
    assert limiter.left_out() == [("x", 2)]
    assert limiter.admit("x")


def test_long_lines_are_cut_and_say_how_much() -> None:
    line = "y" * (MAX_LINE_CHARS * 3)

    shown = cut(line)

    assert len(shown) == MAX_LINE_CHARS
    assert shown.endswith(f"[… {len(line) - shown.index(' [')} more characters]")
    assert cut("short") == "short"


def test_the_log_handler_writes_a_bounded_number_of_lines_for_a_flood() -> None:
    handler = logsetup.LimitedHandler(lines=5, seconds=3600)
    handler.setStream(io.StringIO())
    handler.setFormatter(logsetup.EscapingFormatter(logsetup.LOG_FORMAT))
    log = logging.getLogger("napshare.test.flood")
    log.propagate = False
    log.addHandler(handler)
    try:
        for n in range(5000):
            log.warning("bad request %d: %s", n, "z" * 10_000)
    finally:
        log.removeHandler(handler)
        handler.close()

    lines = handler.stream.getvalue().splitlines()
    assert len(lines) == 6
    assert all(len(line) < MAX_LINE_CHARS + 100 for line in lines)
    assert "4995 similar lines left out: bad request %d: %s" in lines[-1]
