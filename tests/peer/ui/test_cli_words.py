"""What `napshare-peer` says: its help on the .napshare/ folder, --version, a search without a
name, keyword results without the exact-name line, the line of a download that waits for
peers, and the line of a download that resumed.
"""

import random
import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from napshare.peer.folder.store import SharedFolder

from tests.support.peers import InProcessPeer, run_peer, spawn_cli
from tests.support.trackers import InProcessTracker

MIB = 1 << 20
PT = "pt_BR.UTF-8"
# The progress line of the resumed test's 48 MiB download, with the MiB it holds.
PROGRESS = re.compile(r"aula1\.mp4: \d+% (\d+\.\d) MiB of 48\.0 MiB")


def test_help_describes_the_state_folder_as_it_is() -> None:
    done = run_peer("--help")

    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "layers/ the piece layer (a SHA-256 per piece) of each shared file" in text
    assert "a note (KEY.json: which file they are pieces of, which pieces are verified" in text
    assert "the start of" not in text
    assert "0 success (for search, finding nothing is a success too)" in text


def test_help_in_portuguese_too() -> None:
    done = run_peer("--help", lang=PT)

    assert done.returncode == 0
    assert "layers/, a camada de peças" in " ".join(done.stdout.split())


def test_version() -> None:
    done = run_peer("--version")

    assert done.returncode == 0
    assert re.fullmatch(r"napshare-peer \d+\.\d+\.\d+\S*\n", done.stdout)


@pytest.mark.parametrize("args", [["search"], ["search", "--query"], ["search", ""]])
def test_search_without_a_name_says_what_to_type(args: list[str]) -> None:
    done = run_peer(*args)

    assert done.returncode == 2
    assert done.stderr == (
        "napshare-peer search: say what to look for: a file name (napshare-peer search "
        'aula1.mp4), keywords (napshare-peer search --query "aula mp4") or the bytes '
        "(napshare-peer search --sha256 HEX) (see --help)\n"
    )


def test_keyword_results_are_the_rows_alone(tmp_path: Path, tracker: InProcessTracker) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    for name in ("aula1.mp4", "aula2.mp4"):
        (folder / name).write_bytes(name.encode())
    tracker.client.join("127.0.0.1", 8776, SharedFolder(folder).scan())

    found = run_peer("search", "--query", "aula mp4", "--tracker", tracker.address)
    none = run_peer("search", "--query", "nothing", "--tracker", tracker.address)

    assert found.returncode == 0, found.stderr
    assert found.stdout == "127.0.0.1:8776\t9\taula1.mp4\n127.0.0.1:8776\t9\taula2.mp4\n"
    assert none.returncode == 0, none.stderr
    assert none.stdout == ""
    assert none.stderr == (
        "napshare-peer: the tracker started moments ago and its peers may still be joining\n"
    )


def test_a_download_that_waits_for_peers_says_so_as_napshare_peer(
    tmp_path: Path, tracker: InProcessTracker
) -> None:
    done = run_peer(
        *("download", "aula9.mp4", "--dir", str(tmp_path), "--tracker", tracker.address),
        *("--wait-for-peers", "0.5"),
    )

    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "napshare-peer: the tracker started moments ago and its peers may still be joining; "
        "waiting up to 0.5 s for a peer that shares aula9.mp4",
        "napshare-peer: no peer shares aula9.mp4",
    ]


def test_a_resumed_download_says_what_was_already_there(
    tmp_path: Path, tracker: InProcessTracker, start_peer: Callable[..., InProcessPeer]
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    # Far more than gRPC's windows hold: what is in flight at Ctrl-C cannot finish the file.
    data = random.Random(130).randbytes(48 * MIB)
    (source / "aula1.mp4").write_bytes(data)
    peer = start_peer(source)
    tracker.client.join("127.0.0.1", peer.port, SharedFolder(source).scan())
    target = tmp_path / "downloads"
    target.mkdir()
    download = ("download", "aula1.mp4", "--dir", str(target), "--tracker", tracker.address)
    slow = spawn_cli(*download, "--max-download-rate", "4M")
    assert slow.stderr is not None
    seen = []
    for line in slow.stderr:  # a progress line every 2 s: stop once 2 MiB are in
        seen.append(line)
        got = PROGRESS.match(line)
        if got is not None and float(got.group(1)) >= 2:
            break
    slow.send_signal(signal.SIGINT)
    _, stopped = slow.communicate(timeout=60)
    assert slow.returncode == 130, "".join(seen) + stopped

    done = run_peer(*download)

    assert done.returncode == 0, done.stderr
    assert done.stdout == f"File aula1.mp4 downloaded successfully into folder {target}\n"
    resumed = done.stderr.splitlines()[-1]
    assert re.fullmatch(
        r"napshare-peer: resumed: \d+\.\d MiB of 48\.0 MiB were already there", resumed
    ), done.stderr
    assert (target / "aula1.mp4").read_bytes() == data
