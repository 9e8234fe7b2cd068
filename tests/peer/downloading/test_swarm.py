"""One download from every peer at once: each sends a part, faster ones more, a stalled or
lying one leaves its pieces to the others, slow ones do not hold the end-game from a faster
one that comes late, and a part filled out of order resumes.

Real serving peers (in-process nodes or `napshare-peer serve` processes) registered with a
real tracker, capped with their own `--max-upload-rate` so that they overlap in time.
"""

import logging
import re
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from napshare.peer.downloading.engine import Downloader, DownloadOptions, DownloadResult
from napshare.peer.downloading.partfile import PartFile
from napshare.peer.downloading.pieces import PieceLayer
from napshare.peer.folder.store import SharedFolder
from napshare.peer.serving.server import create_server

from tests.support.downloads import (
    DATA_SIZE,
    FETCHED,
    NAME,
    Swarm,
    download_in_thread,
    part_path,
    part_size,
    shared_info,
)
from tests.support.files import MIB, sha256_file
from tests.support.liar import LyingPeer
from tests.support.peers import run_peer, spawn_cli
from tests.support.poisoning import Honest, banned, start_liar
from tests.support.slowpeer import SlowPeer, start_slow_peer
from tests.support.trackers import InProcessTracker
from tests.support.waiting import wait_until

RATE = 8 * MIB  # each serving peer's cap: the 96 MiB file takes seconds, so streams overlap


def _download(swarm: Swarm, target_name: str, **options: float) -> DownloadResult:
    target = swarm.folder(target_name)
    result = Downloader(SharedFolder(target), swarm.tracker.client).download(
        "aula1.mp4",
        DownloadOptions(**options),  # type: ignore[arg-type]
    )
    assert sha256_file(target / "aula1.mp4") == swarm.sha256
    return result


def test_every_peer_that_has_the_file_sends_a_part_of_it(swarm: Swarm) -> None:
    peers = [
        swarm.node(swarm.share(name), swarm.tracker.address, max_upload_rate=RATE)
        for name in ("a", "b", "c")
    ]

    result = _download(swarm, "d")

    ids = {p.link.peer_id for p in peers}
    assert set(result.sources) == ids
    sent = dict(result.received_from)
    assert set(sent) == ids
    assert all(count > 0 for count in sent.values())
    assert sum(sent.values()) == DATA_SIZE  # every byte kept once
    assert (result.resumed_from, result.bytes_received) == (0, DATA_SIZE)


def test_a_faster_peer_sends_more_of_the_file(swarm: Swarm) -> None:
    slow = swarm.node(swarm.share("slow"), swarm.tracker.address, max_upload_rate=2 * MIB)
    fast = swarm.node(swarm.share("fast"), swarm.tracker.address, max_upload_rate=16 * MIB)

    sent = dict(_download(swarm, "d").received_from)

    # The caps differ 8 times; the stolen shares follow the rates.
    assert sent[fast.link.peer_id] > 2 * sent[slow.link.peer_id] > 0


def test_a_peer_that_joins_during_the_download_is_drawn_from_too(swarm: Swarm) -> None:
    first = swarm.node(swarm.share("a"), swarm.tracker.address, max_upload_rate=RATE)
    target = swarm.folder("c")
    downloader = Downloader(SharedFolder(target), swarm.tracker.client)
    options = DownloadOptions(refresh_every=0.2)
    thread, outcome = download_in_thread(lambda: downloader.download("aula1.mp4", options))
    thread.start()
    wait_until(lambda: part_size(target, "aula1.mp4") >= 4 * MIB or not thread.is_alive())
    late = swarm.node(swarm.share("b"), swarm.tracker.address, max_upload_rate=RATE)
    thread.join(timeout=120)

    [result] = outcome
    assert sha256_file(target / "aula1.mp4") == swarm.sha256
    sent = dict(result.received_from)
    assert set(sent) == {first.link.peer_id, late.link.peer_id}
    assert sum(sent.values()) == DATA_SIZE


def test_max_sources_one_takes_one_peer_at_a_time(swarm: Swarm) -> None:
    for name in ("a", "b"):
        swarm.node(swarm.share(name), swarm.tracker.address)

    result = _download(swarm, "d", max_sources=1)

    assert len(result.sources) == 1
    assert result.received_from == ((result.sources[0], DATA_SIZE),)


def test_a_stalled_peer_hands_its_pieces_to_the_others(swarm: Swarm) -> None:
    stalling = swarm.spawn(
        swarm.share("a"), swarm.tracker.address, "--max-upload-rate", str(2 * MIB)
    )
    other = swarm.node(swarm.share("b"), swarm.tracker.address, max_upload_rate=RATE)
    target = swarm.folder("c")
    downloader = Downloader(SharedFolder(target), swarm.tracker.client)
    options = DownloadOptions(stall_timeout=1.0)
    thread, outcome = download_in_thread(lambda: downloader.download("aula1.mp4", options))
    thread.start()
    try:
        # Both send; then one stops answering without closing its connection.
        wait_until(lambda: part_size(target, "aula1.mp4") >= 8 * MIB or not thread.is_alive())
        stalling.process.send_signal(signal.SIGSTOP)
        thread.join(timeout=120)
    finally:
        stalling.process.send_signal(signal.SIGCONT)

    [result] = outcome
    assert sha256_file(target / "aula1.mp4") == swarm.sha256
    sent = dict(result.received_from)
    assert sum(sent.values()) == DATA_SIZE
    assert sent[other.link.peer_id] > DATA_SIZE // 2  # it took over the stalled peer's range


def test_a_liar_among_honest_peers_costs_only_its_bad_pieces(
    swarm: Swarm,
    honest: Honest,
    liars: Callable[..., LyingPeer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    liar, liar_id = start_liar(swarm, honest, liars, "every chunk")

    result = _download(swarm, "d", stall_timeout=5.0)

    assert dict(result.received_from) == {honest.peer_id: DATA_SIZE}
    assert [liar_id in line for line in banned(caplog)] == [True]  # the honest one never
    # The liar's first bad piece was its last: what it sent beyond is what was in flight.
    assert liar.sent <= 8 * MIB


def test_the_progress_lines_say_how_many_peers_send(swarm: Swarm) -> None:
    for name in ("a", "b"):
        swarm.spawn(swarm.share(name), swarm.tracker.address, "--max-upload-rate", str(4 * MIB))
    target = swarm.folder("c")

    done = run_peer(
        "download", "aula1.mp4", "--dir", str(target), "--tracker", swarm.tracker.address,
        "--log-level", "info",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert re.search(r"aula1\.mp4: \d+% .* MiB/s.*, from 2 peers$", done.stderr, re.M), done.stderr
    fetched = FETCHED.search(done.stderr)
    assert fetched is not None
    assert len(fetched.group(3).split()) == 2


def test_a_part_filled_out_of_order_resumes_with_only_the_missing_pieces(swarm: Swarm) -> None:
    for name in ("a", "b"):
        swarm.spawn(swarm.share(name), swarm.tracker.address, "--max-upload-rate", str(4 * MIB))
    target = swarm.folder("c")
    download = spawn_cli(
        "download", "aula1.mp4", "--dir", str(target), "--tracker", swarm.tracker.address,
    )  # fmt: skip
    # Two streams from the start and the middle: the part ends far past its first bytes.
    wait_until(
        lambda: part_size(target, "aula1.mp4") > DATA_SIZE // 2 or download.poll() is not None
    )
    download.send_signal(signal.SIGINT)  # a clean stop: the note lists every verified piece
    download.communicate(timeout=60)

    done = run_peer(
        "download", "aula1.mp4", "--dir", str(target), "--tracker", swarm.tracker.address,
        "--log-level", "info",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert sha256_file(target / "aula1.mp4") == swarm.sha256
    fetched = FETCHED.search(done.stderr)
    assert fetched is not None, done.stderr
    received, kept = int(fetched.group(1)), int(fetched.group(2))
    assert kept > 0
    assert received + kept == DATA_SIZE
    # The pieces the note lists were read back and checked: without the whole file's sha256,
    # nothing after this would catch one that went bad on disk.
    assert f"{kept} bytes an earlier run left checked on disk, {kept} of them good" in done.stderr


def test_with_the_whole_sha256_checked_only_unnoted_pieces_that_hold_bytes_are_read_back(
    swarm: Swarm, honest: Honest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    data = memoryview(swarm.data.read_bytes())
    target = SharedFolder(swarm.folder("c")).root
    info = honest.info
    layer_bytes = SharedFolder(swarm.tmp / "honest").piece_layer("aula1.mp4")[1]
    layer = PieceLayer.checked(DATA_SIZE, info.pieces_root, MIB, layer_bytes)

    def piece(index: int) -> memoryview:
        return data[index * MIB : (index + 1) * MIB]

    part = PartFile(
        target, "aula1.mp4", DATA_SIZE, info.sha256, force=False, pieces_root=info.pieces_root
    )
    part.attach(layer)
    for index in (0, 3, 40):
        assert part.put_piece(index, [piece(index)])
    part.close()
    # As if a crash came after two more pieces reached the disk: one good, one damaged.
    with part_path(target, "aula1.mp4").open("r+b") as raw:
        raw.seek(7 * MIB)
        raw.write(piece(7))
        raw.seek(9 * MIB)
        raw.write(b"\0" * MIB)

    # The whole file's sha256 will catch a noted piece gone bad: the note is trusted.
    again = PartFile(
        target,
        "aula1.mp4",
        DATA_SIZE,
        info.sha256,
        force=False,
        pieces_root=info.pieces_root,
        whole_sha256=True,
    )
    again.attach(layer)
    try:
        kept = [i for i, done in enumerate(again.verified_pieces()) if done]
        checked = [r.getMessage() for r in caplog.records if "checked on disk" in r.getMessage()]
    finally:
        again.close()

    assert kept == [0, 3, 7, 40]
    # Pieces 7 and 9 were read back; the holes between the pieces were not.
    assert checked == [
        f"aula1.mp4: {2 * MIB} bytes an earlier run left checked on disk, {MIB} of them good pieces"
    ]
    assert again.resumed_from == 4 * MIB


def test_a_fast_peer_that_joins_late_is_not_locked_out_by_two_slow_peers_in_the_end_game(
    tracker: InProcessTracker, tmp_path: Path, slow_peers: list[SlowPeer]
) -> None:
    # A file of one piece: the first slow peer claims it, the second asks for it too (the
    # end-game, two streams a piece). Both keep sending a few bytes a second, so neither
    # stalls; the fast peer that joins then must still get the piece (issue 10: "one slow
    # peer never holds the tail"). The plan only offers it the oldest piece, which two
    # streams cover already, so it gets nothing, and the download waits for ever.
    info = shared_info(tmp_path, 512 * 1024)
    for _ in range(2):
        start_slow_peer(tracker, slow_peers, tmp_path / "data" / NAME, chunk=16, pause=0.05)
    target = tmp_path / "target"
    target.mkdir()
    cancel = threading.Event()
    download = Downloader(SharedFolder(target), tracker.client)
    options = DownloadOptions(refresh_every=0.2, stall_timeout=2.0)
    thread, outcome = download_in_thread(lambda: download.download(NAME, options, cancel=cancel))

    thread.start()
    try:
        wait_until(lambda: all(p.asked for p in slow_peers))
        shared = SharedFolder(tmp_path / "data")
        server, port = create_server(shared, host="127.0.0.1")
        try:
            tracker.client.join("127.0.0.1", port, [shared.get(NAME)])
            thread.join(timeout=30)
            finished = not thread.is_alive()
        finally:
            cancel.set()
            thread.join(timeout=30)
            server.stop(None)
    finally:
        cancel.set()
    assert finished, "the download still waited on the two slow peers 30 s after a fast one came"
    [result] = outcome
    assert isinstance(result, DownloadResult)
    assert sha256_file(target / NAME) == info.sha256
