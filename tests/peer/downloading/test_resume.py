"""Resume: a download killed or interrupted midway goes on from its part, no byte fetched twice;
a noted piece that went bad on disk costs a piece, never a ban of an honest peer.
"""

import base64
import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from napshare.peer.downloading.engine import Downloader, DownloadOptions
from napshare.peer.downloading.partfile import PartFile
from napshare.peer.folder.layout import NOTE_SUFFIX, PARTIAL_DIR, STATE_DIR, partial_key
from napshare.peer.folder.store import SharedFolder
from napshare.peer.serving.server import create_server

from tests.support.downloads import (
    DATA_SIZE,
    FETCHED,
    NAME,
    Swarm,
    part_path,
    part_size,
    shared_info,
)
from tests.support.files import MIB, sha256_file
from tests.support.peers import SLOW_CHUNK, PeerProcess, run_peer, spawn_cli
from tests.support.processes import signal_a_thread_not_main
from tests.support.trackers import InProcessTracker
from tests.support.waiting import wait_until

GIB = 1 << 30


def start_download(swarm: Swarm, target: Path) -> subprocess.Popen[str]:
    return spawn_cli(
        "download", "aula1.mp4", "--dir", str(target), "--tracker", swarm.tracker.address
    )


def freeze_midway(source: PeerProcess, target: Path, download: subprocess.Popen[str]) -> None:
    """Stop the source once the .part has some bytes, so the part stops growing."""
    wait_until(lambda: part_size(target, "aula1.mp4") >= 4 * MIB or download.poll() is not None)
    source.process.send_signal(signal.SIGSTOP)
    assert download.poll() is None, "the download finished before it could be interrupted"


def resume(swarm: Swarm, target: Path) -> tuple[int, int]:
    """Run the download again to the end; (bytes fetched, bytes already there)."""
    done = run_peer(
        "download", "aula1.mp4", "--dir", str(target), "--tracker", swarm.tracker.address,
        "--log-level", "info",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sha256_file(target / "aula1.mp4") == swarm.sha256
    fetched = FETCHED.search(done.stderr)
    assert fetched is not None, done.stderr
    return int(fetched.group(1)), int(fetched.group(2))


def test_resume_after_the_downloading_process_is_killed(swarm: Swarm) -> None:
    source = swarm.spawn(swarm.share("a"), swarm.tracker.address, "--chunk-size", str(SLOW_CHUNK))
    target = swarm.folder("b")
    download = start_download(swarm, target)
    try:
        freeze_midway(source, target, download)
        download.kill()
        download.wait(timeout=30)
        kept = part_size(target, "aula1.mp4")
    finally:
        source.process.send_signal(signal.SIGCONT)
    assert 4 * MIB <= kept < DATA_SIZE

    fetched, already = resume(swarm, target)

    # Whole pieces only: the one being received when the process died is fetched again.
    assert already == kept // MIB * MIB
    assert fetched == DATA_SIZE - already
    assert not part_path(target, "aula1.mp4").exists()


@pytest.mark.parametrize("off_main", [False, True], ids=["to-the-process", "to-another-thread"])
def test_ctrl_c_leaves_a_resumable_part(swarm: Swarm, off_main: bool) -> None:
    source = swarm.spawn(swarm.share("a"), swarm.tracker.address, "--chunk-size", str(SLOW_CHUNK))
    target = swarm.folder("b")
    download = start_download(swarm, target)
    try:
        freeze_midway(source, target, download)
        if off_main:
            signal_a_thread_not_main(download.pid, signal.SIGINT)
        else:
            download.send_signal(signal.SIGINT)
        _out, err = download.communicate(timeout=30)
        kept = part_size(target, "aula1.mp4")
    finally:
        source.process.send_signal(signal.SIGCONT)

    assert download.returncode == 130
    assert err.strip().splitlines()[-1] == (
        "napshare-peer: download of aula1.mp4 interrupted; run the same command again to resume it"
    )
    assert kept >= 4 * MIB
    assert resume(swarm, target) == (DATA_SIZE - kept, kept)


def test_a_part_of_another_version_starts_over(swarm: Swarm) -> None:
    swarm.node(swarm.share("a"), swarm.tracker.address)
    target = swarm.folder("b")
    # A part begun for a file of the same name that had another sha256.
    old = PartFile(SharedFolder(target).root, "aula1.mp4", DATA_SIZE, "1" * 64, force=False)
    old.write(0, b"old bytes" * 1000)
    old.close()

    result = Downloader(SharedFolder(target), swarm.tracker.client).download("aula1.mp4")

    assert (result.resumed_from, result.bytes_received) == (0, DATA_SIZE)
    assert sha256_file(target / "aula1.mp4") == swarm.sha256


def test_a_part_without_its_note_starts_over(swarm: Swarm) -> None:
    swarm.node(swarm.share("a"), swarm.tracker.address)
    target = swarm.folder("b")
    part = part_path(target, "aula1.mp4")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"who knows" * 1000)

    result = Downloader(SharedFolder(target), swarm.tracker.client).download("aula1.mp4")

    assert (result.resumed_from, result.bytes_received) == (0, DATA_SIZE)
    assert sha256_file(target / "aula1.mp4") == swarm.sha256


def test_the_note_lives_apart_and_records_the_sources(swarm: Swarm) -> None:
    source = swarm.spawn(swarm.share("a"), swarm.tracker.address, "--chunk-size", str(SLOW_CHUNK))
    target = swarm.folder("b")
    download = start_download(swarm, target)
    try:
        freeze_midway(source, target, download)
        download.kill()
        download.wait(timeout=30)
    finally:
        source.process.send_signal(signal.SIGCONT)

    # Nothing but napshare's own folder in the user's; the part and its note side by side.
    assert [p.name for p in target.iterdir()] == [".napshare"]
    part = part_path(target, "aula1.mp4")
    assert sorted(p.name for p in part.parent.iterdir()) == [part.stem + ".json", part.name]
    assert part.name == hashlib.sha256(b"aula1.mp4").hexdigest()[:40] + ".part"
    assert json.loads(part.with_suffix(".json").read_text()) == {
        "name": "aula1.mp4",
        "size": DATA_SIZE,
        "sha256": swarm.sha256,
        "sources": [source.peer_id],
        "pieces_root": swarm.tracker.client.lookup("aula1.mp4").sources[0].pieces_root,
        "verified": 0,  # what notes of earlier versions kept instead of `pieces`
        "pieces": "",  # recorded every 64 MiB and at a clean stop; the process was killed
    }
    # The serving side never shares a part or the notes.
    assert [f.name for f in SharedFolder(target).scan()] == []


@pytest.mark.slow
def test_resume_past_4_gib(swarm: Swarm) -> None:
    # Offsets past 2^32 in the request, the chunks and the part; sparse, so quick to make.
    size = 4 * GIB + MIB + 3
    source = swarm.folder("a")
    with (source / "big.bin").open("wb") as out:
        out.truncate(size)
        out.seek(size - 5)
        out.write(b"tail!")
    [shared] = SharedFolder(source).scan()  # hashed once here, then cached for the peer
    swarm.node(source, swarm.tracker.address)
    target = swarm.folder("b")
    begun = PartFile(SharedFolder(target).root, "big.bin", size, shared.sha256, force=False)
    begun.close()
    os.truncate(part_path(target, "big.bin"), 4 * GIB + 1)  # as if 4 GiB + 1 byte had arrived

    result = Downloader(SharedFolder(target), swarm.tracker.client).download("big.bin")

    # The note verified nothing: the bytes on disk were checked, and kept as whole pieces.
    assert (result.resumed_from, result.bytes_received) == (4 * GIB, MIB + 3)
    assert result.sha256 == shared.sha256  # verified over the whole file, prefix included
    with (target / "big.bin").open("rb") as kept:
        kept.seek(size - 8)
        assert kept.read() == b"\0\0\0tail!"


def test_a_complete_part_is_only_verified_and_kept(swarm: Swarm) -> None:
    swarm.node(swarm.share("a"), swarm.tracker.address)
    target = swarm.folder("b")
    # Killed after the last byte arrived but before the rename.
    done = PartFile(SharedFolder(target).root, "aula1.mp4", DATA_SIZE, swarm.sha256, force=False)
    done.write(0, swarm.data.read_bytes())
    done.close()

    result = Downloader(SharedFolder(target), swarm.tracker.client).download("aula1.mp4")

    assert (result.resumed_from, result.bytes_received) == (DATA_SIZE, 0)
    assert sha256_file(target / "aula1.mp4") == swarm.sha256


def test_a_resumed_part_whose_noted_piece_went_bad_on_disk_bans_no_honest_peer(
    tracker: InProcessTracker, tmp_path: Path
) -> None:
    # An earlier run noted pieces 0-2 as verified; piece 1 then went bad on the disk (bit
    # rot, another program). Every piece of this run is checked as it arrives, so when the
    # whole-file sha256 fails, no peer's bytes can be the cause: yet the engine bans every
    # peer the note lists (here the one honest peer) and the download fails with "the bytes
    # from <honest peer> do not match". It could re-check the pieces on disk, drop the bad
    # one and fetch it again, as the issue asks (a bad piece costs a piece, never a ban of an
    # honest peer).
    size = 3 * MIB + 7
    info = shared_info(tmp_path, size)
    shared = SharedFolder(tmp_path / "data")
    server, port = create_server(shared, host="127.0.0.1")
    try:
        honest_id = tracker.client.join("127.0.0.1", port, [shared.get(NAME)]).peer_id
        target = tmp_path / "target"
        partial = target / STATE_DIR / PARTIAL_DIR
        partial.mkdir(parents=True)
        data = bytearray((tmp_path / "data" / NAME).read_bytes()[: 3 * MIB])
        data[MIB + 100] ^= 0xFF
        part_path(target, NAME).write_bytes(bytes(data))
        note = {
            "name": NAME,
            "size": size,
            "sha256": info.sha256,
            "sources": [honest_id],
            "pieces_root": info.pieces_root,
            "verified": 0,
            "pieces": base64.b64encode(bytes([0b11100000])).decode(),
        }
        (partial / (partial_key(NAME) + NOTE_SUFFIX)).write_text(json.dumps(note))

        Downloader(SharedFolder(target), tracker.client).download(NAME, DownloadOptions())
    finally:
        server.stop(None)

    assert hashlib.sha256((target / NAME).read_bytes()).hexdigest() == info.sha256
