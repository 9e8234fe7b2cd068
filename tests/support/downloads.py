"""What download tests share: the data file, a download's part on disk, a download run in a
thread, and Swarm, the tracker, peer starters and data of one test together.
"""

import os
import random
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from napshare.peer.downloading.engine import Downloader, DownloadOptions, DownloadResult
from napshare.peer.folder.layout import PART_SUFFIX, PARTIAL_DIR, STATE_DIR, partial_key
from napshare.peer.folder.store import SharedFile, SharedFolder
from napshare.peer.node import Node

from tests.support.files import MIB
from tests.support.peers import InProcessPeer, PeerProcess
from tests.support.trackers import InProcessTracker

NAME = "aula1.mp4"  # the file of every download test
DATA_SIZE = 96 * MIB + 12345  # the data file's size: not a multiple of any chunk size
# The downloader's info line: bytes fetched, bytes already there, the peers that sent any.
FETCHED = re.compile(r"fetched (\d+) bytes of \S+ \((\d+) were already there\) from (.*)")


def make_data_file(path: Path) -> None:
    """Write DATA_SIZE pseudo-random bytes to `path`, the same every run."""
    rng = random.Random(1099)
    with path.open("wb") as out:
        left = DATA_SIZE
        while left:
            block = rng.randbytes(min(left, 8 * MIB))
            out.write(block)
            left -= len(block)


def shared_file(tmp_path: Path, size: int) -> Path:
    """A file of `size` random bytes in tmp_path/data, named NAME."""
    (tmp_path / "data").mkdir(exist_ok=True)
    path = tmp_path / "data" / NAME
    path.write_bytes(os.urandom(size))
    return path


def shared_info(tmp_path: Path, size: int) -> SharedFile:
    """shared_file(tmp_path, size) as its folder shares it."""
    path = shared_file(tmp_path, size)
    return SharedFolder(path.parent).get(path.name)


def download_file(tmp_path: Path, tracker: InProcessTracker, options: DownloadOptions) -> Path:
    """Download NAME into tmp_path/target with `options`; the path it has there."""
    target = tmp_path / "target"
    target.mkdir()
    Downloader(SharedFolder(target), tracker.client).download(NAME, options)
    return target / NAME


def part_path(folder: Path, name: str) -> Path:
    """Where the bytes of an unfinished download of `name` into `folder` are kept."""
    return folder / STATE_DIR / PARTIAL_DIR / (partial_key(name) + PART_SUFFIX)


def part_size(folder: Path, name: str) -> int:
    """The size of the part of `name` in `folder`, 0 when it does not exist."""
    try:
        return part_path(folder, name).stat().st_size
    except FileNotFoundError:
        return 0


def download_in_thread(
    download: Callable[[], DownloadResult],
) -> tuple[threading.Thread, list[DownloadResult | BaseException]]:
    """A thread (not started) that runs `download()`; its result, or what it raised, lands in
    the list.
    """
    outcome: list[DownloadResult | BaseException] = []

    def run() -> None:
        try:
            outcome.append(download())
        except BaseException as error:  # the test looks at it
            outcome.append(error)

    return threading.Thread(target=run), outcome


@dataclass
class Swarm:
    """Everything a download test needs: a tracker, ways to start peers, the data, tmp_path.

    `node` starts a Node in this process, `spawn` a peer process, `plain` a bare peer server in
    this process that the test registers with the tracker itself.
    """

    tracker: InProcessTracker
    tmp: Path
    data: Path
    sha256: str
    node: Callable[..., Node]
    spawn: Callable[..., PeerProcess]
    plain: Callable[..., InProcessPeer]

    def share(self, folder_name: str) -> Path:
        """A new folder under tmp holding a copy of the data file."""
        folder = self.folder(folder_name)
        shutil.copyfile(self.data, folder / self.data.name)
        return folder

    def folder(self, folder_name: str) -> Path:
        """A new empty folder under tmp."""
        folder = self.tmp / folder_name
        folder.mkdir()
        return folder
