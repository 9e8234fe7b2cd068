"""A download never touches the user's files; a full, read-only or removed folder is one line."""

import errno
import os
import random
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from napshare.common.exitcodes import ExitCode
from napshare.peer.downloading.engine import Downloader
from napshare.peer.folder.store import SharedFolder

from tests.support.downloads import FETCHED, Swarm, part_path, part_size
from tests.support.files import MIB, sha256_file
from tests.support.peers import SLOW_CHUNK, run_peer, spawn_cli
from tests.support.waiting import wait_until

BIG = 16 * MIB


def test_a_users_own_dot_part_file_is_never_touched_and_is_shared(swarm: Swarm) -> None:
    swarm.node(swarm.share("a"), swarm.tracker.address)
    target = swarm.folder("b")
    mine = target / "aula1.mp4.part"
    mine.write_bytes(b"my own notes, not a download" * 1000)
    os.utime(mine, ns=(1_000_000_000, 1_000_000_000))

    Downloader(SharedFolder(target), swarm.tracker.client).download("aula1.mp4")

    assert sha256_file(target / "aula1.mp4") == swarm.sha256
    assert mine.read_bytes() == b"my own notes, not a download" * 1000
    assert mine.stat().st_mtime_ns == 1_000_000_000
    assert "aula1.mp4.part" in [f.name for f in SharedFolder(target).scan()]


def test_the_partial_lives_under_napshare_only(swarm: Swarm) -> None:
    swarm.spawn(swarm.share("a"), swarm.tracker.address, "--chunk-size", str(SLOW_CHUNK))
    target = swarm.folder("b")
    download = _start(swarm, target, "aula1.mp4")
    try:
        wait_until(lambda: part_size(target, "aula1.mp4") > 0 or download.poll() is not None)
    finally:
        download.kill()
        download.wait(timeout=30)

    assert [p.name for p in target.iterdir()] == [".napshare"]
    assert part_path(target, "aula1.mp4").parent == target / ".napshare" / "partial"
    assert part_size(target, "aula1.mp4") > 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs mounted on a folder of this test; unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def _remount(disk: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(disk)], check=True)


def _start(swarm: Swarm, target: Path, name: str) -> subprocess.Popen[str]:
    return spawn_cli("download", name, "--dir", str(target), "--tracker", swarm.tracker.address)


def _download(swarm: Swarm, target: Path, name: str) -> subprocess.CompletedProcess[str]:
    return run_peer(
        "download", name, "--dir", str(target), "--tracker", swarm.tracker.address,
        "--log-level", "info",
    )  # fmt: skip


def _share_big(swarm: Swarm) -> str:
    source = swarm.folder("big-source")
    (source / "big.bin").write_bytes(random.Random(16).randbytes(BIG))
    swarm.node(source, swarm.tracker.address)
    return sha256_file(source / "big.bin")


def test_a_full_disk_is_one_line_and_the_part_resumes_after_space_is_freed(
    swarm: Swarm, small_disk: Path
) -> None:
    sha256 = _share_big(swarm)

    full = _download(swarm, small_disk, "big.bin")

    assert full.returncode == ExitCode.DISK_FULL == 11
    last = full.stderr.strip().splitlines()[-1]
    found = re.fullmatch(
        rf"napshare-peer: the disk of {re.escape(str(small_disk))} is full: kept (\d+) of "
        rf"{BIG} bytes of big\.bin; free some space and run the same download again to resume it",
        last,
    )
    assert found is not None, full.stderr
    assert "Traceback" not in full.stderr
    kept = int(found.group(1))
    assert 0 < kept < BIG
    assert not (small_disk / "big.bin").exists()
    assert part_size(small_disk, "big.bin") == kept

    _remount(small_disk, "size=32m")
    done = _download(swarm, small_disk, "big.bin")

    assert done.returncode == 0, done.stderr
    assert sha256_file(small_disk / "big.bin") == sha256
    fetched = FETCHED.search(done.stderr)
    assert fetched is not None, done.stderr
    assert (int(fetched.group(1)), int(fetched.group(2))) == (BIG - kept, kept)


def test_a_read_only_folder_is_one_line(swarm: Swarm, small_disk: Path) -> None:
    swarm.node(swarm.share("a"), swarm.tracker.address)
    _remount(small_disk, "ro")

    done = _download(swarm, small_disk, "aula1.mp4")

    assert done.returncode == ExitCode.FOLDER == 7
    assert done.stderr.strip().splitlines()[-1] == (
        f"napshare-peer: cannot download into {small_disk}: it is read-only (Read-only file system)"
    )
    assert list(small_disk.iterdir()) == []


def _remove_tree(folder: Path) -> None:
    """Remove `folder` while a download writes in it: its note's temporary files come and go,
    so one may vanish under rmtree, or appear in a folder rmtree has just emptied.
    """
    for _ in range(100):
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            continue
        except OSError as error:
            if error.errno != errno.ENOTEMPTY:
                raise
            continue
        return
    shutil.rmtree(folder)


def test_a_folder_removed_mid_download_is_one_line_and_nothing_is_written_elsewhere(
    swarm: Swarm,
) -> None:
    swarm.spawn(swarm.share("a"), swarm.tracker.address, "--chunk-size", str(SLOW_CHUNK))
    target = swarm.folder("b")
    download = _start(swarm, target, "aula1.mp4")
    try:
        wait_until(lambda: part_size(target, "aula1.mp4") >= MIB or download.poll() is not None)
        assert download.poll() is None, "the download finished before the folder was removed"
        _remove_tree(target)
        target.mkdir()  # a new folder under the same name must stay untouched
        _out, err = download.communicate(timeout=120)
    finally:
        if download.poll() is None:
            download.kill()
            download.wait(timeout=30)

    assert download.returncode == ExitCode.FOLDER
    assert err.strip().splitlines()[-1] == (
        f"napshare-peer: folder {target} (or its .napshare/) was removed during the download "
        "of aula1.mp4; stopped, nothing was kept"
    )
    assert list(target.iterdir()) == []
