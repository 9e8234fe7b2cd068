"""`make soak` for seconds with a few peers, so that its machinery cannot rot between runs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.files import ROOT

pytestmark = pytest.mark.slow  # the soak, for seconds: left out of make check


def test_a_short_soak_sees_no_bug_codes_and_verifies_every_finished_download(
    tmp_path: Path,
) -> None:
    summary = tmp_path / "soak.json"
    command = [sys.executable, "-m", "tests.bench.soak", "--seconds", "15", "--sim-peers", "24"]
    command += ["--real-peers", "2", "--file-mib", "2", "--kill-every", "5", "--downloaders", "1"]
    command += ["--slow-readers", "1", "--slow-pause", "2", "--slice", "3"]
    command += ["--replica-seconds", "4", "--replica-kill-every", "1"]
    command += ["--no-report", "--json", str(summary)]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    total = json.loads(summary.read_text())
    assert total["bugs"] == 0
    assert total["corrupt"] == 0
    assert total["verified"] >= 1
    assert total["searches"] > 0
    assert total["kills"] >= 1
    for rpc in ("Join", "Heartbeat", "Search", "Health (tracker)", "Download (slow reader)"):
        assert f"| {rpc} | " in result.stdout
    assert "| 0–3 |" in result.stdout  # the first slice's row
    assert total["replica_problems"] == []
    assert total["replica_kills"] >= 2
    assert "### Replicas on one Redis" in result.stdout
