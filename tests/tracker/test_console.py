"""The tracker's console lines: queued by RPC threads, written in order by flush()."""

import threading

import pytest
from napshare.common.console import LINES_LEFT_OUT, PEER_SEARCHED, render
from napshare.common.linelimit import CONSOLE_LINES, CONSOLE_WINDOW_SECONDS, LineLimiter
from napshare.tracker import console

from tests.support.clock import Clock


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """A fresh rate limit on a clock the test moves: lines of earlier tests do not count."""
    clock = Clock(0.0)
    monkeypatch.setattr(
        console, "_limiter", LineLimiter(CONSOLE_LINES, CONSOLE_WINDOW_SECONDS, clock)
    )
    return clock


def test_lines_from_many_threads_are_all_written_in_each_threads_order(capsys):
    def search(thread):
        for n in range(200):
            console.say(PEER_SEARCHED, peer=f"10.0.0.{thread}:1", name=f"{n}.mp4")

    threads = [threading.Thread(target=search, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    console.flush()

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 800
    for t in range(4):
        mine = [line for line in lines if f" 10.0.0.{t}:1 " in line]
        peer = f"10.0.0.{t}:1"
        expected = [render(PEER_SEARCHED, {"peer": peer, "name": f"{n}.mp4"}) for n in range(200)]
        assert mine == expected


def test_lines_are_written_without_a_reaper_once_many_are_queued(capsys):
    for n in range(console.MAX_QUEUED + 1):
        console.say(PEER_SEARCHED, peer="10.0.0.1:1", name=f"{n}.mp4")

    assert len(capsys.readouterr().out.splitlines()) == console.MAX_QUEUED + 1


def test_a_flood_of_one_kind_of_line_is_cut_to_the_rate_and_the_rest_counted(capsys, clock):
    for n in range(CONSOLE_LINES + 5000):
        console.say(PEER_SEARCHED, peer="10.0.0.1:1", name=f"{n}.mp4" * 100)
    console.flush()
    clock.now += CONSOLE_WINDOW_SECONDS
    console.flush()

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == CONSOLE_LINES + 1
    assert lines[-1] == render(LINES_LEFT_OUT, {"count": "5000"})
