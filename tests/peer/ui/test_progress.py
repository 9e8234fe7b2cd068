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
