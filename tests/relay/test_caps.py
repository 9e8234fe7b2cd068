"""Each cap of a session ends it or holds it back, on a real relay; the flags that set them."""

import argparse
import os
import threading
import time

import pytest
from napshare.common.cliargs import parse_size
from napshare.relay.caps import RelayCaps, add_cap_flags, caps_from_args

from tests.support.relays import MIB, read_all, send_and_close
from tests.support.waiting import wait_until


def test_a_session_past_its_byte_cap_is_ended_after_exactly_the_cap(start_relay) -> None:
    running = start_relay(session_bytes=MIB + 7)
    serving, downloading = running.pair()

    writer = send_and_close(serving, os.urandom(4 * MIB))
    got = read_all(downloading)
    writer.join(10)

    assert len(got) == MIB + 7
    assert read_all(serving) == b""  # the relay closed both connections
    wait_until(lambda: running.relay.stats().ended == {"max_bytes": 1})
    serving.close()
    downloading.close()


def test_a_session_past_its_time_cap_is_ended(start_relay) -> None:
    running = start_relay(session_seconds=0.3)
    serving, downloading = running.pair()

    assert read_all(downloading) == b""
    assert read_all(serving) == b""
    wait_until(lambda: running.relay.stats().ended == {"max_seconds": 1})
    serving.close()
    downloading.close()


def _timed_transfer(serving, downloading, size: int) -> float:
    data = os.urandom(size)
    began = time.monotonic()
    writer = send_and_close(serving, data)
    assert read_all(downloading) == data
    writer.join(10)
    return time.monotonic() - began


def test_a_sessions_rate_cap_holds_its_bytes_back(start_relay) -> None:
    rate = 4 * MIB
    running = start_relay(session_rate=rate)
    serving, downloading = running.pair()

    elapsed = _timed_transfer(serving, downloading, 3 * MIB)

    # The bucket starts full (a quarter second of the rate); the rest comes at the rate.
    assert elapsed >= (3 * MIB - rate / 4) / rate * 0.9
    serving.close()
    downloading.close()


def test_the_relays_rate_cap_holds_for_all_sessions_together(start_relay) -> None:
    rate = 4 * MIB
    running = start_relay(rate=rate)
    pairs = [running.pair(), running.pair()]
    times: list[float] = []
    threads = [
        threading.Thread(target=lambda p=pair: times.append(_timed_transfer(*p, 2 * MIB)))
        for pair in pairs
    ]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    elapsed = time.monotonic() - began

    assert len(times) == 2
    assert elapsed >= (4 * MIB - rate / 4) / rate * 0.9  # 4 MiB in all at 4 MiB/s
    for sock in [*pairs[0], *pairs[1]]:
        sock.close()


def test_without_caps_a_session_carries_more_than_the_default_byte_cap_would_allow(
    start_relay,
) -> None:
    running = start_relay(session_bytes=0, session_seconds=0)
    serving, downloading = running.pair()

    _timed_transfer(serving, downloading, 8 * MIB)

    assert running.relay.stats().bytes == 8 * MIB
    serving.close()
    downloading.close()


@pytest.mark.parametrize(
    ("text", "size"),
    [("4096", 4096), ("64K", 65536), ("512MiB", 512 * MIB), ("1g", 1024**3), ("0", 0)],
)
def test_sizes_are_read_in_binary_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "-1", "1.5G", "10 apples", "G"])
def test_what_is_no_size_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a number of bytes"):
        parse_size(text)


def test_the_flags_default_to_the_caps_defaults_and_set_each_cap() -> None:
    parser = argparse.ArgumentParser()
    add_cap_flags(parser, prefix="relay-")

    assert caps_from_args(parser.parse_args([]), prefix="relay-") == RelayCaps()
    args = parser.parse_args(
        [
            *("--relay-max-session-bytes", "2G", "--relay-max-session-seconds", "60"),
            *("--relay-max-session-rate", "10M", "--relay-max-rate", "1G"),
            *("--relay-max-sessions-per-peer", "3", "--relay-max-sessions", "9"),
            *("--relay-pairing-timeout", "4", "--relay-max-waiting-per-address", "5"),
            *("--relay-max-waiting", "50", "--relay-hello-timeout", "2"),
        ]
    )
    assert caps_from_args(args, prefix="relay-") == RelayCaps(
        session_bytes=2 * 1024**3,
        session_seconds=60,
        session_rate=10 * MIB,
        rate=1024**3,
        sessions_per_peer=3,
        sessions=9,
        pairing_seconds=4,
        waiting_per_address=5,
        waiting=50,
        hello_seconds=2,
    )


@pytest.mark.parametrize(
    "fields",
    [{"sessions": 0}, {"waiting": 0}, {"pairing_seconds": 0}, {"session_bytes": -1}],
)
def test_caps_that_would_let_nothing_in_or_make_no_sense_are_refused(fields) -> None:
    with pytest.raises(ValueError, match="cap"):
        RelayCaps(**fields)
