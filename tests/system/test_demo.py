"""`make demo` at a few MiB: the whole flow a–e must keep working."""

import os
import re
import subprocess
import sys

from tests.support.files import ROOT

DEMO = ROOT / "tests" / "demo.py"


def test_demo_shows_the_whole_flow() -> None:
    result = subprocess.run(
        [sys.executable, str(DEMO), "--size", str(3 * 1024**2)],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "LANG": "C.UTF-8", "LC_ALL": "", "LANGUAGE": ""},
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for heading in ("=== a.", "=== b.", "=== c.", "=== d.", "=== e."):
        assert heading in out
    assert re.search(r"I am peer 127\.0\.0\.1:\d+ with files aula1\.mp4\n", out)
    assert re.search(r"\[tracker\] Peer 127\.0\.0\.1:\d+ added with files aula1\.mp4\n", out)
    assert re.search(r"\[tracker\] Peer 127\.0\.0\.1:\d+ requested file aula99\.mp4\n", out)
    assert re.search(r"search aula99\.mp4 .*\n  peers with requested file:\n", out)
    assert re.search(r"search aula1\.mp4 .*\n  peers with requested file: 127\.0\.0\.1:\d+\n", out)
    assert "File aula1.mp4 downloaded successfully into folder peer2" in out
    assert "peer2/ is empty" in out
    assert "sha256 match" in out
    assert re.search(r"peers with requested file: 127\.0\.0\.1:\d+ 127\.0\.0\.1:\d+\n", out)
    assert out.count("exited with 0") == 3
    assert "removed " in out
