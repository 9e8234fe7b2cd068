"""What `napshare-peer` says: its help on the .napshare/ folder, --version, a search without a
name, keyword results without the exact-name line, the line of a download that waits for
peers, and the line of a download that resumed.
"""

import random
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from napshare.peer.folder.store import SharedFolder
from napshare.peer.serving.server import create_server as create_peer
from napshare.peer.tracker_client import TrackerClient
from napshare.tracker.server import create_server as create_tracker

MIB = 1 << 20
PROGRESS = re.compile(r"aula1\.mp4: \d+% (\d+\.\d) MiB of 48\.0 MiB")


def napshare_peer(*args: str, lang: str = "C.UTF-8") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "napshare.peer", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "LANG": lang},
        check=False,
    )


@pytest.fixture
def tracker() -> Iterator[str]:
    """A plain text tracker started a moment ago (so gathering); its address."""
    server, port = create_tracker(host="127.0.0.1", port=0)
    yield f"127.0.0.1:{port}"
    server.stop(None)


def test_help_describes_the_state_folder_as_it_is() -> None:
    done = napshare_peer("--help")

    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "layers/ the piece layer (a SHA-256 per piece) of each shared file" in text
    assert "a note (KEY.json: which file they are pieces of, which pieces are verified" in text
    assert "the start of" not in text
    assert "0 success (for search, finding nothing is a success too)" in text


def test_help_in_portuguese_too() -> None:
    done = napshare_peer("--help", lang="pt_BR.UTF-8")

    assert done.returncode == 0
    assert "layers/" in done.stdout
    assert "layers/ the piece layer" not in done.stdout


def test_version() -> None:
    done = napshare_peer("--version")

    assert done.returncode == 0
    assert re.fullmatch(r"napshare-peer \d+\.\d+\.\d+\S*\n", done.stdout)


@pytest.mark.parametrize("args", [["search"], ["search", "--query"], ["search", ""]])
def test_search_without_a_name_says_what_to_type(args: list[str]) -> None:
    done = napshare_peer(*args)

    assert done.returncode == 2
    assert done.stderr == (
        "napshare-peer search: say what to look for: a file name (napshare-peer search "
        'aula1.mp4) or keywords (napshare-peer search --query "aula mp4") (see --help)\n'
    )


def test_keyword_results_are_the_rows_alone(tmp_path: Path, tracker: str) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    for name in ("aula1.mp4", "aula2.mp4"):
        (folder / name).write_bytes(name.encode())
    client = TrackerClient(tracker)
    try:
        client.join("127.0.0.1", 8776, SharedFolder(folder).scan())
    finally:
        client.close()

    found = napshare_peer("search", "--query", "aula mp4", "--tracker", tracker, "--plaintext")
    none = napshare_peer("search", "--query", "nothing", "--tracker", tracker, "--plaintext")

    assert found.returncode == 0, found.stderr
    assert found.stdout == "127.0.0.1:8776\t9\taula1.mp4\n127.0.0.1:8776\t9\taula2.mp4\n"
    assert none.returncode == 0, none.stderr
    assert none.stdout == ""
    assert none.stderr == (
        "napshare-peer: the tracker started moments ago and its peers may still be joining\n"
    )


def test_a_download_that_waits_for_peers_says_so_as_napshare_peer(
    tmp_path: Path, tracker: str
) -> None:
    done = napshare_peer(
        *("download", "aula9.mp4", "--dir", str(tmp_path), "--tracker", tracker),
        *("--plaintext", "--wait-for-peers", "0.5"),
    )

    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "napshare-peer: the tracker started moments ago and its peers may still be joining; "
        "waiting up to 0.5 s for a peer that shares aula9.mp4",
        "napshare-peer: no peer shares aula9.mp4",
    ]


def test_a_resumed_download_says_what_was_already_there(tmp_path: Path, tracker: str) -> None:
    source = tmp_path / "source"
    source.mkdir()
    # Far more than gRPC's windows hold: what is in flight at Ctrl-C cannot finish the file.
    data = random.Random(130).randbytes(48 * MIB)
    (source / "aula1.mp4").write_bytes(data)
    server, port = create_peer(SharedFolder(source), host="127.0.0.1", port=0)
    client = TrackerClient(tracker)
    target = tmp_path / "downloads"
    target.mkdir()
    command = [
        *(sys.executable, "-m", "napshare.peer", "download", "aula1.mp4", "--dir", str(target)),
        *("--tracker", tracker, "--plaintext"),
    ]
    try:
        client.join("127.0.0.1", port, SharedFolder(source).scan())
        slow = subprocess.Popen(
            [*command, "--max-download-rate", "4M"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
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

        done = napshare_peer(*command[3:])
    finally:
        client.close()
        server.stop(None)

    assert done.returncode == 0, done.stderr
    assert done.stdout == f"File aula1.mp4 downloaded successfully into folder {target}\n"
    resumed = done.stderr.splitlines()[-1]
    assert re.fullmatch(
        r"napshare-peer: resumed: \d+\.\d MiB of 48\.0 MiB were already there", resumed
    ), done.stderr
    assert (target / "aula1.mp4").read_bytes() == data
