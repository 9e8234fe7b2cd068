"""--max-upload-rate and --max-download-rate on real processes: a cap is never exceeded.

Only lower bounds on time: a limiter that lets 12 MiB through a 2 MiB/s cap in under 5 s
is wrong whatever the machine; how much longer a loaded machine takes is not asserted.
"""

import os
import time
from collections.abc import Callable
from pathlib import Path

from napshare.common.exitcodes import ExitCode

from tests.support.files import MIB, sha256_file
from tests.support.peers import PeerProcess, run_peer
from tests.support.trackers import InProcessTracker

SIZE = 12 * MIB
# 12 MiB at 2 MiB/s is 6 s; the bucket's burst (0.5 s) and one chunk in flight may come free.
AT_LEAST = 5.0


def _shared(tmp_path: Path) -> tuple[Path, str]:
    folder = tmp_path / "shared"
    folder.mkdir()
    path = folder / "capped.bin"
    path.write_bytes(os.urandom(SIZE))
    return folder, sha256_file(path)


def _timed_download(tracker: InProcessTracker, into: Path, *extra: str) -> float:
    start = time.monotonic()
    result = run_peer(
        "download", "capped.bin", "--dir", str(into), "--tracker", tracker.address, *extra
    )
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    return elapsed


def test_a_serving_peer_sends_no_faster_than_its_upload_cap(
    tracker: InProcessTracker, tmp_path: Path, spawn_peer: Callable[..., PeerProcess]
) -> None:
    folder, digest = _shared(tmp_path)
    spawn_peer(folder, tracker.address, "--max-upload-rate", "2M")
    into = tmp_path / "into"
    into.mkdir()

    assert _timed_download(tracker, into) >= AT_LEAST
    assert sha256_file(into / "capped.bin") == digest


def test_a_download_receives_no_faster_than_its_download_cap(
    tracker: InProcessTracker, tmp_path: Path, spawn_peer: Callable[..., PeerProcess]
) -> None:
    folder, digest = _shared(tmp_path)
    spawn_peer(folder, tracker.address)
    into = tmp_path / "into"
    into.mkdir()

    assert _timed_download(tracker, into, "--max-download-rate", "2M") >= AT_LEAST
    assert sha256_file(into / "capped.bin") == digest


def test_a_rate_that_is_not_one_is_a_usage_error_of_one_line(tmp_path: Path) -> None:
    result = run_peer("download", "x", "--dir", str(tmp_path), "--max-download-rate", "fast")
    assert result.returncode == ExitCode.USAGE
    assert result.stderr.count("\n") == 1
    assert "'fast' is not a rate" in result.stderr
    result = run_peer("serve", "--dir", str(tmp_path), "--max-upload-rate=-2M")
    assert result.returncode == ExitCode.USAGE
    assert "is not a rate" in result.stderr
