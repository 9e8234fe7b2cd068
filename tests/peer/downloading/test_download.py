"""Downloading by name: verified, announced, empty files, no overwriting, nothing outside."""

import fcntl
import os
import re
import shutil
import subprocess
import sys

import pytest
from napshare.common.names import InvalidNameError
from napshare.peer.downloading.engine import Downloader, DownloadOptions
from napshare.peer.errors import (
    AlreadyExistsError,
    DownloadInProgressError,
    FolderProblemError,
    NotFoundError,
)
from napshare.peer.folder.layout import STATE_DIR
from napshare.peer.folder.store import SharedFolder

from tests.support.downloads import DATA_SIZE, Swarm, part_path
from tests.support.files import sha256_file
from tests.support.peers import run_peer
from tests.support.processes import cli_env
from tests.support.waiting import wait_until

GIB = 1 << 30

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_download_by_name_is_verified_and_announced(swarm: Swarm) -> None:
    source = swarm.node(swarm.share("peer1"), swarm.tracker.address)
    downloader = swarm.node(swarm.folder("peer2"), swarm.tracker.address)
    assert swarm.tracker.peers_with("aula1.mp4") == [source.link.peer_id]

    result = downloader.downloader.download("aula1.mp4")

    kept = swarm.tmp / "peer2" / "aula1.mp4"
    assert result.path == kept.resolve()
    assert (result.size, result.sha256) == (DATA_SIZE, swarm.sha256)
    assert sha256_file(kept) == swarm.sha256
    assert result.sources == (source.link.peer_id,)
    assert result.bytes_received == DATA_SIZE
    assert not part_path(swarm.tmp / "peer2", "aula1.mp4").exists()

    # Announced by Update once its sha256 is computed (afterwards, in the background): the
    # downloader is a source now, with the same digest.
    def listed() -> dict[str, str]:
        return {s.peer: s.sha256 for s in swarm.tracker.search("aula1.mp4")}

    wait_until(lambda: len(listed()) == 2)
    assert listed() == {source.link.peer_id: swarm.sha256, downloader.link.peer_id: swarm.sha256}
    # ...and the folder remembered its digest, so a rescan does not hash it again.
    hashed = downloader.config.folder.hash_count
    downloader.config.folder.scan()
    assert downloader.config.folder.hash_count == hashed


def test_empty_file(swarm: Swarm) -> None:
    (swarm.folder("a") / "empty.txt").write_bytes(b"")
    swarm.node(swarm.tmp / "a", swarm.tracker.address)
    target = swarm.folder("b")

    result = Downloader(SharedFolder(target), swarm.tracker.client).download("empty.txt")

    assert (target / "empty.txt").read_bytes() == b""
    assert (result.size, result.sha256, result.bytes_received) == (0, EMPTY_SHA256, 0)
    assert sorted(p.name for p in target.iterdir()) == [".napshare", "empty.txt"]


def test_a_missing_file_is_not_found(swarm: Swarm) -> None:
    target = swarm.folder("b")
    # The tracker just started, so it is gathering: do not wait for peers to join.
    options = DownloadOptions(wait_for_peers=0)
    with pytest.raises(NotFoundError, match=r"no peer shares nope\.mp4"):
        Downloader(SharedFolder(target), swarm.tracker.client).download("nope.mp4", options)
    assert list(target.iterdir()) == []


def test_never_overwrites_without_force(swarm: Swarm) -> None:
    swarm.node(swarm.share("a"), swarm.tracker.address)
    target = swarm.folder("b")
    (target / "aula1.mp4").write_bytes(b"my own file")
    downloader = Downloader(SharedFolder(target), swarm.tracker.client)

    with pytest.raises(AlreadyExistsError, match="--force"):
        downloader.download("aula1.mp4")
    assert (target / "aula1.mp4").read_bytes() == b"my own file"

    downloader.download("aula1.mp4", DownloadOptions(force=True))
    assert sha256_file(target / "aula1.mp4") == swarm.sha256


def test_cli_download_refuses_to_overwrite(swarm: Swarm) -> None:
    swarm.node(swarm.share("a"), swarm.tracker.address)
    target = swarm.folder("b")
    (target / "aula1.mp4").write_bytes(b"mine")

    done = run_peer(
        "download", "aula1.mp4", "--dir", str(target), "--tracker", swarm.tracker.address
    )

    assert done.returncode == 8
    assert done.stderr.strip().splitlines()[-1].endswith("use --force to download it again")
    assert (target / "aula1.mp4").read_bytes() == b"mine"


@pytest.mark.parametrize(
    "name",
    [
        "../aula1.mp4",
        "a/../../aula1.mp4",
        "/etc/passwd",
        "a//b",
        "a\\b",
        "",
        "..",
        "x\x00y",
        ".napshare/identity/key.pem",
    ],
)
def test_hostile_names_are_rejected_before_anything_is_written(swarm: Swarm, name: str) -> None:
    target = swarm.folder("inside")
    with pytest.raises(InvalidNameError):
        Downloader(SharedFolder(target), swarm.tracker.client).download(name)
    assert list(target.iterdir()) == []
    assert sorted(p.name for p in swarm.tmp.iterdir()) == ["inside"]


def test_symlinks_in_the_folder_never_lead_writes_outside(swarm: Swarm) -> None:
    swarm.node(swarm.share("a"), swarm.tracker.address)
    outside = swarm.folder("outside")
    victim = outside / "victim"
    victim.write_bytes(b"precious")
    target = swarm.folder("b")
    downloader = Downloader(SharedFolder(target), swarm.tracker.client)

    # A part that is a symlink to a file outside.
    part = part_path(target, "aula1.mp4")
    part.parent.mkdir(parents=True)
    os.symlink(victim, part)
    with pytest.raises(FolderProblemError):
        downloader.download("aula1.mp4")
    assert victim.read_bytes() == b"precious"
    os.unlink(part)

    # The notes folder a symlink to a folder outside.
    shutil.rmtree(target / ".napshare")
    os.symlink(outside, target / ".napshare")
    with pytest.raises(FolderProblemError):
        downloader.download("aula1.mp4")
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]
    os.unlink(target / ".napshare")

    # The final name a dangling symlink: it counts as an existing file.
    os.symlink(outside / "created", target / "aula1.mp4")
    with pytest.raises(AlreadyExistsError):
        downloader.download("aula1.mp4")
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]

    # With --force the symlink itself is replaced, never followed.
    downloader.download("aula1.mp4", DownloadOptions(force=True))
    assert not (target / "aula1.mp4").is_symlink()
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]


def test_only_one_download_writes_a_part_at_a_time(swarm: Swarm) -> None:
    swarm.node(swarm.share("a"), swarm.tracker.address)
    target = swarm.folder("b")
    part = part_path(target, "aula1.mp4")
    part.parent.mkdir(parents=True)
    fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(DownloadInProgressError, match="another process"):
            Downloader(SharedFolder(target), swarm.tracker.client).download("aula1.mp4")
    finally:
        os.close(fd)


def test_the_peer_named_by_the_user_is_asked_first(swarm: Swarm) -> None:
    swarm.node(swarm.share("listed"), swarm.tracker.address)
    # A peer the tracker does not list, named by the user as in the original's DOWNLOAD.
    port = swarm.plain(swarm.share("named")).port
    target = swarm.folder("c")

    result = Downloader(SharedFolder(target), swarm.tracker.client).download(
        "aula1.mp4", DownloadOptions(preferred=f"127.0.0.1:{port}")
    )

    assert result.sources == (f"127.0.0.1:{port}",)
    assert sha256_file(target / "aula1.mp4") == swarm.sha256


@pytest.mark.slow
@pytest.mark.serial  # a peak of memory, which a loaded machine moves
@pytest.mark.parametrize("sources", [1, 4])
def test_memory_stays_bounded_while_downloading_1_gib(swarm: Swarm, sources: int) -> None:
    first = swarm.folder("a0")
    with (first / "big.bin").open("wb") as out:
        out.truncate(GIB)
    SharedFolder(first).scan()  # hashed once: the cache holds for hard links of the file
    for index in range(sources):
        folder = first if index == 0 else swarm.folder(f"a{index}")
        if index:
            os.link(first / "big.bin", folder / "big.bin")
            shutil.copytree(first / STATE_DIR, folder / STATE_DIR)
        swarm.node(folder, swarm.tracker.address)
    target = swarm.folder("b")
    # VmHWM is this process's own peak; ru_maxrss would inherit the parent's across exec.
    measured = (
        "import re, sys; from napshare.peer.ui.cli import main; code = main(sys.argv[1:]); "
        "status = open('/proc/self/status').read(); "
        "print('peak', re.search(r'VmHWM:\\s+(\\d+)', status).group(1), file=sys.stderr); "
        "sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", measured, "download", "--plaintext", "big.bin", "--dir", str(target),
         "--tracker", swarm.tracker.address, "--log-level", "info"],
        capture_output=True, text=True, timeout=300, check=False, env=cli_env(),
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert (target / "big.bin").stat().st_size == GIB
    peak_kib = int(done.stderr.split("peak ")[1].split()[0])
    # Issue 12's 100 MiB is the bench's target (swarm-memory: 94 MiB with 4 sources). Four
    # streams' buffers and malloc's arenas move the peak from run to run: 87-97 MiB measured
    # here, 102.7 and 104.3 MiB once each (a loaded machine, a CI run), so the test, which
    # guards against growth with the file (150 MiB and more before the caps), allows 4 streams
    # a margin of 12 MiB over it.
    bound = 100 if sources == 1 else 112
    assert peak_kib < bound * 1024, f"{peak_kib} KiB"
    # All of them sent: the download's own account (a progress line may never come, on a
    # machine fast enough to fetch the whole GiB within the first line's interval).
    sent = re.search(r"fetched \d+ bytes of big\.bin \(\d+ were already there\) from (.*)$",
                     done.stderr, re.MULTILINE)  # fmt: skip
    assert sent is not None, done.stderr
    assert len(sent.group(1).split()) == sources, sent.group(0)
