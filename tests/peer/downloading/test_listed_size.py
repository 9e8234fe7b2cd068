"""What a listed size can make a downloader allocate: nothing for a size over --max-file-size
(refused with its reason before a byte is asked), and, for a size it takes, pieces assembled
in bounded memory however large they are (a 4 TiB file has 256 MiB pieces).

A real tracker in this process and a hostile peer listing a huge file it does not have
(tests.support.hostile.HugeLiar); the downloads are `python -m napshare.peer` processes whose
own peak RSS (VmHWM) is measured.
"""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from napshare.common.exitcodes import ExitCode
from napshare.common.identity import PEER_NAME, make_identity
from napshare.peer.folder.layout import PARTIAL_DIR, STATE_DIR
from napshare.peer.tracker_client import TrackerClient
from napshare.tracker.server import create_server as create_tracker

from tests.support.files import ROOT
from tests.support.hostile import HugeLiar
from tests.support.processes import cli_env

NAME = "big.bin"
TIB = 1 << 40
PIB = 1 << 50
# The peak RSS of this download before the fix: 582 MiB for a 4 TiB listing (two streams,
# each holding a 256 MiB piece). Bounded now by what one stream holds besides gRPC's windows
# (about 70 MiB measured, for any size); the bound leaves room for malloc's arenas.
PEAK_BOUND_MIB = 150
# python -c: run the CLI, then print this process's own peak RSS (ru_maxrss would inherit the
# parent's across exec).
MEASURED = (
    "import re, sys; from napshare.peer.ui.cli import main; code = main(sys.argv[1:]); "
    "status = open('/proc/self/status').read(); "
    "print('peak', re.search(r'VmHWM:\\s+(\\d+)', status).group(1), file=sys.stderr); "
    "sys.exit(code)"
)


@pytest.fixture
def tracker() -> Iterator[str]:
    """A tracker in plain text in this process; its address."""
    server, port = create_tracker(host="127.0.0.1", port=0)
    yield f"127.0.0.1:{port}"
    server.stop(None)


@pytest.fixture
def liars() -> Iterator[list[HugeLiar]]:
    started: list[HugeLiar] = []
    yield started
    for liar in started:
        liar.server.stop(None)


def listed(tracker: str, liars: list[HugeLiar], size: int) -> HugeLiar:
    """A liar listing big.bin at `size` bytes, joined with an identity of its own."""
    liar = HugeLiar(NAME, size)
    liars.append(liar)
    client = TrackerClient(tracker)
    try:
        joined = client.join(
            "127.0.0.1", liar.port, [liar.listing()], identity=make_identity(PEER_NAME)
        )
    finally:
        client.close()
    assert joined.reachable
    return liar


def download(tracker: str, folder: Path, *extra: str) -> tuple[int, str, int]:
    """Exit status, stderr and peak RSS in KiB of `download big.bin` into `folder`."""
    folder.mkdir(exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", MEASURED, "download", "--plaintext", NAME, "--dir", str(folder),
         "--tracker", tracker, "--give-up-after", "30", *extra],
        cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    peak = int(done.stderr.split("peak ")[1].split()[0]) if "peak " in done.stderr else -1
    return done.returncode, done.stderr, peak


@pytest.mark.parametrize(
    ("size", "shown"), [(512 * PIB, "512.0 PiB"), (4 * TIB, "4.0 TiB"), (TIB + 1, "1.0 TiB")]
)
def test_a_size_over_the_largest_is_refused_before_anything_is_asked(
    tracker, liars, tmp_path, size, shown
):
    liar = listed(tracker, liars, size)

    code, err, _ = download(tracker, tmp_path / "b")

    assert code == ExitCode.OTHER, err
    lines = [line for line in err.splitlines() if not line.startswith("peak ")]
    assert lines[-1] == (
        f"napshare-peer: refused to download {NAME}: it is listed at {shown} ({size:,} "
        "bytes), more than the largest file this peer downloads, 1.0 TiB (--max-file-size)"
    )
    assert "MemoryError" not in err
    assert liar.asked == 0
    assert not (tmp_path / "b" / STATE_DIR / PARTIAL_DIR).exists() or not any(
        (tmp_path / "b" / STATE_DIR / PARTIAL_DIR).iterdir()
    )


@pytest.mark.serial  # a peak of memory, which a loaded machine moves
def test_the_memory_of_a_download_is_bounded_whatever_the_listed_size(tracker, liars, tmp_path):
    # 4 TiB: pieces of 256 MiB, the listing that took a downloader to 582 MiB.
    liar = listed(tracker, liars, 4 * TIB)

    code, err, peak = download(tracker, tmp_path / "b", "--max-file-size", "4T")

    assert code == ExitCode.VERIFICATION_FAILED, err  # its one source sent a bad piece
    assert "does not match its hash" in err
    assert liar.asked >= 2  # the piece layer, then pieces
    assert 0 < peak < PEAK_BOUND_MIB * 1024, f"peak RSS {peak} KiB"
