"""`make demo` at a few MiB: the whole flow a–e keeps working, and prints what README.md shows.

The README records a run with a 1.1 GiB video made by ffmpeg; this one moves 3 MiB, so what
differs with the size and the speed matches by pattern (DEMO_VARYING, on top of the sessions'
VARYING of tests/support/sessions.py: sizes, rates, durations, digests, the temporary folder),
and the progress lines, as many as the speed makes, must each have the form of the README's
(PROGRESS). Two kinds of line come in the order of events that happen at once (the tracker's
join lines of a., the peers of a search, sorted by address): they are compared as sets.
Without ffmpeg on this machine, the README's video lines (the one that says how the video was
made, and e.'s) are compared with the demo's lines for random data instead (NO_FFMPEG_*).
"""

import os
import re
import shutil
import subprocess
import sys

from tests.support.files import ROOT
from tests.support.sessions import Values, Varying

DEMO = ROOT / "tests" / "demo.py"
README = ROOT / "README.md"
SIZE = 3 * 1024**2
PROGRESS = re.compile(
    r"  aula1\.mp4: \d+% \d+\.\d [KMG]?i?B of \d+\.\d [KMG]?i?B, \d+\.\d [KMG]?i?B/s, "
    r"\d+ s left, from \d+ peers?"
)
AT_ONCE = {
    "joins": re.compile(r"  \[tracker\] Peer \S+ added with files"),
    "peers": re.compile(r"  peers with requested file:"),
}
MADE = "=== Making the video"
PLAYS = "=== e. The downloaded video plays"
STOPPING = "=== Stopping everything"
NO_FFMPEG_MADE = "  random data (install ffmpeg for a real, playable video)"
NO_FFMPEG_PLAYS = [
    "  ffmpeg is not installed: the file is random data, so there is nothing to play.",
    "  Install ffmpeg (e.g. apt-get install ffmpeg) and run make demo again.",
]


def _varying(what: str, doc: str, actual: str) -> Varying:
    return Varying(what, re.compile(doc), actual)


DEMO_VARYING = (
    _varying("the demo's folder", r"/tmp/(?P<value>napshare-demo-\w+)", r"napshare-demo-\w+"),
    _varying("a size in bytes", r"(?P<value>\d{1,3}(?:,\d{3})+) bytes", r"[\d,]+"),
    _varying("a size", r"(?P<value>\d+\.\d [KMG]iB)(?!/s)", r"\d+\.\d [KMG]?i?B"),
    _varying("a size in GiB", r"\((?P<value>\d+\.\d\d) GiB\)", r"\d+\.\d\d"),
    _varying("the download's time", r" in (?P<value>\d+\.\d) s,", r"\d+\.\d"),
    _varying("the download's rate", r"(?P<value>\d+) MiB/s including", r"\d+"),
    _varying("a file's sha256", r"sha256 peer\d: (?P<value>[0-9a-f]{64})", "[0-9a-f]{64}"),
    _varying("the sha256 checked", r"^  sha256 (?P<value>[0-9a-f]{64}): checked", "[0-9a-f]{64}"),
    _varying(
        "a file's sha256, searched for",
        r"requested file sha256:(?P<value>[0-9a-f]{64})$",
        "[0-9a-f]{64}",
    ),
    _varying("the certificate's", r"SHA-256 (?P<value>[0-9a-f]{64})", "[0-9a-f]{64}"),
    _varying("the video's length", r"^  duration=(?P<value>[\d.]+)$", r"[\d.]+"),
    _varying("the video's size", r"^  size=(?P<value>\d+)$", r"\d+"),
    _varying("the demo's time", r"^Demo finished in (?P<value>\d+) s\.$", r"\d+"),
)


def readme_demo() -> list[str]:
    """The lines of README's recorded `make demo`: the ```text block that starts with ===."""
    lines = README.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if line == "```text" and lines[number + 1].startswith("=== "):
            return lines[number + 1 : lines.index("```", number + 1)]
    raise AssertionError("README.md has no recorded make demo")


def without_video(lines: list[str]) -> list[str]:
    """The README's lines as a run without ffmpeg prints them."""
    made = next(n for n, line in enumerate(lines) if line.startswith(MADE)) + 1
    plays = lines.index(PLAYS) + 1
    stopping = next(n for n, line in enumerate(lines) if line.startswith(STOPPING))
    return [
        *lines[:made],
        NO_FFMPEG_MADE,
        *lines[made + 1 : plays],
        *NO_FFMPEG_PLAYS,
        "",
        *lines[stopping:],
    ]


def _at_once(line: str) -> str | None:
    return next((kind for kind, pattern in AT_ONCE.items() if pattern.match(line)), None)


def _as_set(lines: list[str]) -> list[list[str]]:
    return sorted(sorted(line.split()) for line in lines)


def compare(expected: list[str], actual: list[str]) -> None:
    """AssertionError unless the run printed the README's lines (see the module's doc)."""
    for line in expected:
        if line.startswith("  aula1.mp4: "):
            assert PROGRESS.fullmatch(line), f"README's progress line has a new form: {line!r}"
    expected = [line for line in expected if not PROGRESS.fullmatch(line)]
    actual = [line for line in actual if not PROGRESS.fullmatch(line)]
    values = Values({}, DEMO_VARYING)
    problems = []
    if len(expected) != len(actual):
        problems.append(f"{len(actual)} lines, not the README's {len(expected)}")
    n = 0
    while n < min(len(expected), len(actual)):
        kind = _at_once(expected[n])
        end = n + 1
        while kind is not None and end < len(expected) and _at_once(expected[end]) == kind:
            end += 1
        if kind is not None:
            want = [values.substitute(line) for line in expected[n:end]]
            if _as_set(want) != _as_set(actual[n:end]):
                problems.append(f"lines {n + 1}-{end}: {actual[n:end]} are not {want}")
        elif not values.matches(expected[n], actual[n]):
            want_line = values.substitute(expected[n])
            problems.append(f"line {n + 1}: {actual[n]!r} is not {want_line!r}")
        n = end
    assert not problems, "make demo does not print what README.md shows:\n" + "\n".join(
        [*problems, "", "it printed:", *actual]
    )


def test_demo_shows_the_whole_flow_as_the_readme_does() -> None:
    result = subprocess.run(
        [sys.executable, str(DEMO), "--size", str(SIZE)],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "LANG": "C.UTF-8", "LC_ALL": "", "LANGUAGE": ""},
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    expected = readme_demo()
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        expected = without_video(expected)
    compare(expected, result.stdout.splitlines()[1:])  # it starts with a blank line
