"""What `napshare-tracker --help` and `--version` say: the tracker's own words only."""

import re
import subprocess
import sys


def napshare_tracker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "napshare.tracker", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        check=False,
    )


def test_help_speaks_of_the_tracker_alone() -> None:
    done = napshare_tracker("--help")

    assert done.returncode == 0
    assert "napshare-peer" not in done.stdout
    assert re.search(r"^  0 +success$", done.stdout, re.MULTILINE)


def test_version() -> None:
    done = napshare_tracker("--version")

    assert done.returncode == 0
    assert re.fullmatch(r"napshare-tracker \d+\.\d+\.\d+\S*\n", done.stdout)
