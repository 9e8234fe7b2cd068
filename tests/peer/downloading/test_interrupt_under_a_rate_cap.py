"""Ctrl-C stops a download held to a rate cap at once: the stream stops being read as soon as
the cap's wait sees the cancel, instead of taking at full speed, until the watchdog's next
look, what the peer sends meanwhile (often the whole rest of the file).
"""

import random
import re
import signal
from collections.abc import Callable
from pathlib import Path

from napshare.peer.folder.store import SharedFolder

from tests.support.peers import InProcessPeer, spawn_cli
from tests.support.trackers import InProcessTracker

MIB = 1 << 20
SIZE = 48 * MIB
PROGRESS = re.compile(r"aula1\.mp4: \d+% \d+\.\d MiB of 48\.0 MiB")


def test_ctrl_c_under_a_rate_cap_interrupts_the_download(
    tmp_path: Path, tracker: InProcessTracker, start_peer: Callable[..., InProcessPeer]
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "aula1.mp4").write_bytes(random.Random(4).randbytes(SIZE))
    peer = start_peer(source)
    tracker.client.join("127.0.0.1", peer.port, SharedFolder(source).scan())
    target = tmp_path / "downloads"
    target.mkdir()
    download = spawn_cli(
        *("download", "aula1.mp4", "--dir", str(target), "--tracker", tracker.address),
        *("--max-download-rate", "4M"),
    )
    assert download.stderr is not None
    for line in download.stderr:  # the first progress line comes after 2 s
        if PROGRESS.match(line):
            break
    download.send_signal(signal.SIGINT)
    out, err = download.communicate(timeout=60)

    assert download.returncode == 130, out + err
    assert err.splitlines()[-1] == (
        "napshare-peer: download of aula1.mp4 interrupted; run the same command again to resume it"
    )
    assert not (target / "aula1.mp4").exists()
