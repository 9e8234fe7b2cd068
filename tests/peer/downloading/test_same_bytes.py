"""Every source of the same bytes: a download by name also draws from the peers that share
those bytes under other names (a search by content), each asked for its own name, within
--max-sources.

Real serving peers (in-process nodes) registered with a real tracker, capped with their own
upload rate so that they overlap in time.
"""

import shutil
from pathlib import Path

import pytest
from napshare.peer.downloading.engine import Downloader, DownloadOptions
from napshare.peer.errors import NotFoundError
from napshare.peer.folder.store import SharedFolder

from tests.support.downloads import DATA_SIZE, NAME, Swarm
from tests.support.files import MIB, sha256_file

RATE = 8 * MIB  # each serving peer's cap: the 96 MiB file takes seconds, so streams overlap
NAMES = (NAME, "Aula 1 - Redes.mp4", "redes-aula1.mp4", "aula_01.mp4")


def _share_as(swarm: Swarm, folder_name: str, name: str) -> Path:
    folder = swarm.folder(folder_name)
    shutil.copyfile(swarm.data, folder / name)
    return folder


def test_one_file_under_four_names_from_four_peers_comes_from_all_four(swarm: Swarm) -> None:
    peers = [
        swarm.node(_share_as(swarm, f"p{n}", name), swarm.tracker.address, max_upload_rate=RATE)
        for n, name in enumerate(NAMES)
    ]
    target = swarm.folder("d")

    result = Downloader(SharedFolder(target), swarm.tracker.client).download(NAME)

    assert sha256_file(target / NAME) == swarm.sha256
    assert [p.name for p in target.iterdir() if p.is_file()] == [NAME]
    sent = dict(result.received_from)
    assert set(sent) == {p.link.peer_id for p in peers}
    assert all(count > 0 for count in sent.values())
    assert sum(sent.values()) == DATA_SIZE


def test_max_sources_still_caps_the_peers_found_by_content(swarm: Swarm) -> None:
    for n, name in enumerate(NAMES[:3]):
        swarm.node(_share_as(swarm, f"p{n}", name), swarm.tracker.address)
    target = swarm.folder("d")

    result = Downloader(SharedFolder(target), swarm.tracker.client).download(
        NAME, DownloadOptions(max_sources=1)
    )

    assert sha256_file(target / NAME) == swarm.sha256
    assert len(result.sources) == 1
    assert result.received_from == ((result.sources[0], DATA_SIZE),)


def test_a_file_shared_under_other_names_only_is_not_found_by_its_name(swarm: Swarm) -> None:
    # The search by content widens a version the name search found; it does not stand in
    # for it (a download by name of a file nobody calls so is a download of nothing).
    swarm.node(_share_as(swarm, "p", "other.mp4"), swarm.tracker.address)
    target = swarm.folder("d")

    downloader = Downloader(SharedFolder(target), swarm.tracker.client)
    with pytest.raises(NotFoundError, match="no peer shares"):
        downloader.download(NAME, DownloadOptions(wait_for_peers=0))
    assert not (target / NAME).exists()
