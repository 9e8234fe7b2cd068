"""Progress: plain periodic lines off a terminal, a rich bar on one."""

import io
import re
import time

from napshare.peer.ui.progress import BarReporter, PlainReporter, reporter_for
from napshare.peer.units import human
from rich.console import Console


def test_human_sizes() -> None:
    assert [human(n) for n in (0, 1023, 1024, 3 * 2**20 // 2, 5 * 2**30 + 1)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "1.5 MiB",
        "5.0 GiB",
    ]


def test_plain_lines_say_how_far_and_how_fast() -> None:
    out = io.StringIO()
    reporter = PlainReporter(out, interval=0.0)
    reporter.begin("aula1.mp4", 4 * 2**20, 2**20)
    reporter.advance(2**20)
    reporter.end()

    first, second = out.getvalue().splitlines()
    assert first == "downloading aula1.mp4: 4.0 MiB, resuming after 1.0 MiB"
    assert second.startswith("aula1.mp4: 50% 2.0 MiB of 4.0 MiB, ")
    assert second.endswith(" s left")


def test_plain_lines_are_periodic_not_per_chunk() -> None:
    out = io.StringIO()
    reporter = PlainReporter(out, interval=3600.0)
    reporter.begin("x", 1000, 0)
    for _ in range(1000):
        reporter.advance(1)
    assert out.getvalue().splitlines() == ["downloading x: 1000 B"]


def test_a_terminal_gets_a_bar_with_rate_and_time_left() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    reporter = BarReporter(console)
    reporter.begin("aula1.mp4", 2**30, 0)
    reporter.advance(2**28)
    time.sleep(0.05)
    reporter.advance(2**28)
    reporter.end()

    shown = screen.getvalue()
    assert "aula1.mp4" in shown
    assert "0.5/1.0 GiB" in shown
    assert re.search(r"\d+\.\d [KMG]iB/s", shown)  # the rate
    assert re.search(r"\d:\d\d:\d\d", shown)  # the time left


def test_reporter_for_picks_plain_lines_off_a_terminal() -> None:
    assert isinstance(reporter_for(io.StringIO()), PlainReporter)


def test_the_bar_shows_a_hostile_name_escaped_and_without_markup() -> None:
    out = io.StringIO()
    reporter = BarReporter(Console(file=out, force_terminal=True, width=120))
    reporter.begin("[red]x\x1b[2J\ny.mp4", 100, 0)
    reporter.advance(100)
    reporter.end()

    shown = out.getvalue()
    assert "\x1b[2J" not in shown
    assert "[red]x\\x1b[2J\\ny.mp4" in shown


def test_a_queued_download_says_its_place_at_once_and_when_it_moves() -> None:
    out = io.StringIO()
    reporter = PlainReporter(out, interval=3600.0)
    reporter.begin("aula1.mp4", 2**20, 0)
    reporter.sources(1)  # the waiting stream: no peer sends yet
    reporter.queued("127.0.0.1:8776", 3, 3, 0)  # the peer cannot tell yet
    reporter.queued("127.0.0.1:8776", 3, 3, 50)  # only the estimate: no line
    reporter.queued("127.0.0.1:8776", 2, 2, 30)
    reporter.queued("127.0.0.1:8776", 0, 0, 0)  # its data comes

    lines = out.getvalue().splitlines()
    assert lines[1:] == [
        "aula1.mp4: 0% 0 B of 1.0 MiB, 0 B/s, waiting in the upload queue of "
        "127.0.0.1:8776: 3 of 3",
        "aula1.mp4: 0% 0 B of 1.0 MiB, 0 B/s, waiting in the upload queue of "
        "127.0.0.1:8776: 2 of 2, about 30 s",
    ]
    assert reporter.status().endswith(", from 1 peer")  # its data comes


def test_the_bar_shows_the_best_place_among_the_queues() -> None:
    screen = io.StringIO()
    reporter = BarReporter(Console(file=screen, force_terminal=True, width=200))
    reporter.begin("aula1.mp4", 2**20, 0)
    reporter.queued("198.51.100.7:8776", 4, 9, 80)
    reporter.queued("203.0.113.5:8776", 1, 2, 12)
    reporter.end()

    assert "waiting in the upload queue of 203.0.113.5:8776: 1 of 2, about 12 s" in (
        screen.getvalue()
    )
