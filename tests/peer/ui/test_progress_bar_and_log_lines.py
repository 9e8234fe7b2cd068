"""On a terminal, a log line printed during a download goes above the progress bar, on a line
of its own, and the bar is drawn again below it (as the menu does with its prompt).
"""

import random
import re
import sys
from collections.abc import Callable
from pathlib import Path

from napshare.peer.folder.store import SharedFolder

from tests.support.peers import InProcessPeer
from tests.support.processes import cli_env
from tests.support.terminal import TerminalProcess
from tests.support.trackers import InProcessTracker

MIB = 1 << 20
NAME = "aula1.mp4"
SIZE = 24 * MIB
RATE = "3M"  # bytes per second the download takes: the bar shows for about 8 s
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING ")


def test_a_warning_during_a_download_prints_above_the_bar(
    tmp_path: Path, tracker: InProcessTracker, start_peer: Callable[..., InProcessPeer]
) -> None:
    data = random.Random(8776).randbytes(SIZE)
    peers = []
    for name in ("a", "b"):  # two sources of the same file
        folder = tmp_path / name
        folder.mkdir()
        (folder / NAME).write_bytes(data)
        peers.append(start_peer(folder))
        tracker.client.join("127.0.0.1", peers[-1].port, SharedFolder(folder).scan())
    target = tmp_path / "downloads"
    target.mkdir()
    download = TerminalProcess(
        [
            *(sys.executable, "-m", "napshare.peer", "download", NAME, "--dir", str(target)),
            *("--tracker", tracker.address, "--plaintext", "--max-download-rate", RATE),
        ],
        cwd=tmp_path,
        env={**cli_env(), "TERM": "xterm-256color"},
    )
    try:
        download.wait_for(re.compile(r"aula1\.mp4 .*[1-9]\.\d/24\.0 MiB"))
        peers[1].server.stop(None)  # one source goes away mid-download: the engine warns
        download.wait_for(re.compile("WARNING"))
        status = download.wait(timeout=120)
    finally:
        download.close()

    lines = download.lines()
    assert status == 0, "\n".join(lines)
    warnings = [n for n, line in enumerate(lines) if "WARNING" in line]
    assert warnings, "\n".join(lines)
    for n in warnings:
        assert LOG_LINE.match(lines[n]), f"a log line glued to another:\n{lines[n]!r}"
        assert "going on with peer" in lines[n]
    bars = [n for n, line in enumerate(lines) if line.startswith(NAME) and "MiB" in line]
    assert bars, "\n".join(lines)
    assert max(bars) > max(warnings), "the bar is not drawn again below the log line"
    assert lines[-1] == f"File {NAME} downloaded successfully into folder {target}"
    assert (target / NAME).stat().st_size == SIZE
