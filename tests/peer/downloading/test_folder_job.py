"""Folders: a peer's tree downloaded with its folders, resumed as one job, and nothing ever
written outside the destination, whatever the names or the folder on the way.
"""

import os
import threading
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from napshare.common.ratelimit import TokenBucket
from napshare.peer.downloading.engine import Downloader, DownloadOptions
from napshare.peer.downloading.folder_job import download_folder, plan_folder
from napshare.peer.downloading.reporting import SilentReporter
from napshare.peer.errors import (
    AlreadyExistsError,
    CancelledError,
    ClientError,
    FolderProblemError,
    NotFoundError,
)
from napshare.peer.folder.layout import STATE_DIR
from napshare.peer.folder.store import SharedFolder
from napshare.peer.tracker_client import TrackerClient
from napshare.v1 import file_info_pb2, tracker_pb2, tracker_pb2_grpc

from tests.support.downloads import Swarm, part_path
from tests.support.files import MIB
from tests.support.trees import COURSE, TREE, files_under, make_tree

OPTIONS = DownloadOptions(stall_timeout=5, give_up_after=20, wait_for_peers=0)


def silent(_position: int, _file: object) -> SilentReporter:
    return SilentReporter()


def test_a_nested_tree_is_shared_and_downloaded_with_its_folders(swarm: Swarm) -> None:
    source = swarm.node(make_tree(swarm.folder("a")), swarm.tracker.address)
    target = swarm.folder("b")
    downloader = Downloader(SharedFolder(target), swarm.tracker.client)

    plan = plan_folder(downloader, source.link.peer_id, "curso/")
    results = list(download_folder(downloader, plan, OPTIONS, silent))

    assert [f.name for f in plan.files] == COURSE
    assert [r.name for r in results] == COURSE
    assert files_under(target) == {name: TREE[name] for name in COURSE}
    assert sorted(p.name for p in swarm.tmp.iterdir()) == ["a", "b"]
    # Shared from the new folder under the same names, without hashing them again.
    folder = SharedFolder(target)
    assert [f.name for f in folder.scan()] == COURSE
    assert folder.hash_count == 0


def test_each_file_is_the_version_the_peer_listed_whatever_others_share(swarm: Swarm) -> None:
    source = swarm.node(make_tree(swarm.folder("a")), swarm.tracker.address)
    name = "curso/semana2/aula1.mp4"
    for decoy in ("c", "d"):  # two listings of other bytes under the name outrank one
        folder = swarm.folder(decoy)
        (folder / "curso" / "semana2").mkdir(parents=True)
        (folder / name).write_bytes(b"other bytes")
        swarm.node(folder, swarm.tracker.address)
    target = swarm.folder("b")
    downloader = Downloader(SharedFolder(target), swarm.tracker.client)

    plan = plan_folder(downloader, source.link.peer_id, "curso/semana2")
    [result] = download_folder(downloader, plan, OPTIONS, silent)

    assert result.sources == (source.link.peer_id,)
    assert files_under(target) == {name: TREE[name]}

    # Gone before the next run: the others' bytes under the name are not taken for its.
    (target / name).unlink()
    source.stop()
    with pytest.raises(ClientError):
        list(download_folder(downloader, plan, OPTIONS, silent))
    assert files_under(target) == {}


def test_the_whole_share_is_the_empty_folder(swarm: Swarm) -> None:
    source = swarm.node(make_tree(swarm.folder("a")), swarm.tracker.address)
    target = swarm.folder("b")
    downloader = Downloader(SharedFolder(target), swarm.tracker.client)

    plan = plan_folder(downloader, source.link.peer_id, "")
    list(download_folder(downloader, plan, OPTIONS, silent))

    assert files_under(target) == TREE


def test_a_folder_download_resumes_where_it_stopped(swarm: Swarm) -> None:
    source = swarm.node(make_tree(swarm.folder("a")), swarm.tracker.address)
    target = swarm.folder("b")
    # Paced, so the rest of the second file is still on its way when the job is cancelled.
    downloader = Downloader(SharedFolder(target), swarm.tracker.client, rate=TokenBucket(4 * MIB))
    cancel = threading.Event()

    class StopMidway(SilentReporter):
        """Stops the job once the second file has 2 MiB or more."""

        def __init__(self, position: int) -> None:
            self.position = position
            self.done = 0

        def begin(self, name: str, size: int, have: int) -> None:
            self.done = have

        def advance(self, count: int) -> None:
            self.done += count
            if self.position == 2 and self.done >= 2 * MIB:
                cancel.set()

    plan = plan_folder(downloader, source.link.peer_id, "curso")
    first: list[str] = []

    def run() -> None:
        jobs = download_folder(downloader, plan, OPTIONS, lambda at, _f: StopMidway(at), cancel)
        first.extend(result.name for result in jobs)

    with pytest.raises(CancelledError):
        run()
    assert first == [COURSE[0]]
    assert part_path(target, COURSE[1]).stat().st_size >= MIB

    again = plan_folder(downloader, source.link.peer_id, "curso")
    rest = list(download_folder(downloader, again, OPTIONS, silent))

    assert again.present == {COURSE[0]}
    assert [r.name for r in rest] == COURSE[1:]
    assert rest[0].resumed_from >= MIB  # the second file went on from its part
    assert files_under(target) == {name: TREE[name] for name in COURSE}


def test_files_of_other_contents_in_the_way_stop_the_job_unless_forced(swarm: Swarm) -> None:
    source = swarm.node(make_tree(swarm.folder("a")), swarm.tracker.address)
    target = swarm.folder("b")
    (target / "curso" / "semana2").mkdir(parents=True)
    (target / "curso" / "semana2" / "aula1.mp4").write_bytes(b"mine")
    downloader = Downloader(SharedFolder(target), swarm.tracker.client)

    with pytest.raises(AlreadyExistsError, match=r"curso/semana2/aula1\.mp4"):
        plan_folder(downloader, source.link.peer_id, "curso")
    assert files_under(target) == {"curso/semana2/aula1.mp4": b"mine"}

    plan = plan_folder(downloader, source.link.peer_id, "curso", force=True)
    options = DownloadOptions(stall_timeout=5, give_up_after=20, force=True)
    list(download_folder(downloader, plan, options, silent))
    assert files_under(target) == {name: TREE[name] for name in COURSE}


def test_a_folder_with_no_files_or_an_unknown_peer_is_not_found(swarm: Swarm) -> None:
    source = swarm.node(make_tree(swarm.folder("a")), swarm.tracker.address)
    downloader = Downloader(SharedFolder(swarm.folder("b")), swarm.tracker.client)

    with pytest.raises(NotFoundError, match=r"shares no file under nada/"):
        plan_folder(downloader, source.link.peer_id, "nada")
    with pytest.raises(NotFoundError, match=r"has no peer 127\.0\.0\.1:9"):
        plan_folder(downloader, "127.0.0.1:9", "curso")


@pytest.mark.parametrize("planted", ["before", "during"])
def test_a_folder_on_the_way_that_is_a_symlink_is_never_written_through(
    swarm: Swarm, planted: str
) -> None:
    source = swarm.node(make_tree(swarm.folder("a")), swarm.tracker.address)
    target = swarm.folder("b")
    outside = swarm.folder("outside")
    name = "curso/semana1/aula2.mp4"

    def plant() -> None:
        (target / "curso").mkdir(exist_ok=True)
        (target / "curso" / "semana1").symlink_to(outside, target_is_directory=True)

    class Planting(SilentReporter):
        def advance(self, count: int) -> None:
            if not (target / "curso" / "semana1").is_symlink():
                plant()

    if planted == "before":
        plant()
    downloader = Downloader(SharedFolder(target), swarm.tracker.client)

    with pytest.raises(FolderProblemError, match="curso/semana1 is a symlink or a file"):
        downloader.download(name, OPTIONS, Planting())

    assert list(outside.iterdir()) == []
    if planted == "during":  # the bytes are kept: once the way is clear, it resumes
        assert part_path(target, name).stat().st_size == len(TREE[name])
        (target / "curso" / "semana1").unlink()
        result = downloader.download(name, OPTIONS)
        assert result.bytes_received == 0
        assert (target / name).read_bytes() == TREE[name]
    assert sorted(p.name for p in swarm.tmp.iterdir()) == ["a", "b", "outside"]
    assert source.link.peer_id


def test_a_file_where_a_folder_should_be_is_refused_before_any_byte(swarm: Swarm) -> None:
    swarm.node(make_tree(swarm.folder("a")), swarm.tracker.address)
    target = swarm.folder("b")
    (target / "curso").write_bytes(b"a file")

    with pytest.raises(FolderProblemError, match="curso is a symlink or a file"):
        Downloader(SharedFolder(target), swarm.tracker.client).download(COURSE[0], OPTIONS)

    assert (target / "curso").read_bytes() == b"a file"
    assert not part_path(target, COURSE[0]).exists()


HOSTILE = [
    "../escaped.txt",
    "curso/../../escaped.txt",
    "/tmp/escaped.txt",
    "curso//x.txt",
    "curso\\..\\escaped.txt",
    f"{STATE_DIR}/identity/key.pem",
    "curso/new\nline.txt",
]


class HostileTracker(tracker_pb2_grpc.TrackerServiceServicer):
    """A tracker that lists hostile names among good ones, in and out of order."""

    def __init__(self, good: str) -> None:
        self.good = good

    def Browse(self, request, context):  # noqa: N802
        names = [*HOSTILE, self.good, "curso/a.txt"]  # the last is out of order
        files = [file_info_pb2.FileInfo(name=n, size=3, sha256="0" * 64) for n in names]
        return tracker_pb2.BrowseResponse(files=files)


def test_hostile_names_from_a_tracker_are_dropped_and_nothing_is_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    tracker_pb2_grpc.add_TrackerServiceServicer_to_server(HostileTracker("curso/ok.txt"), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    target = tmp_path / "b"
    target.mkdir()
    client = TrackerClient(f"127.0.0.1:{port}")
    try:
        listed = [f.name for page in client.browse("127.0.0.1:8776") for f in page]
        plan = plan_folder(Downloader(SharedFolder(target), client), "127.0.0.1:8776", "")
    finally:
        client.close()
        server.stop(None)

    assert listed == ["curso/ok.txt"]
    assert [f.name for f in plan.files] == ["curso/ok.txt"]
    assert "listed 8 malformed files of 127.0.0.1:8776" in caplog.text
    assert sorted(os.listdir(tmp_path)) == ["b"]
    assert os.listdir(target) == []
