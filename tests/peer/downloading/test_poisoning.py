"""Lying peers cost their bad pieces, never the file: exact blame, honest peers never banned.

The liar is a small real PeerService (tests.support.liar, a gRPC server on a free loopback port,
registered with the tracker by a direct Join); the honest peer is a real napshare peer.
Each counts the file bytes it sent, so the test sees what was fetched twice.
"""

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from napshare.peer.downloading.engine import Downloader, DownloadOptions
from napshare.peer.downloading.partfile import PartFile
from napshare.peer.downloading.pieces import PieceLayer
from napshare.peer.errors import NoPeerReachableError
from napshare.peer.folder.store import SharedFolder

from tests.support.downloads import DATA_SIZE, Swarm, part_path
from tests.support.files import MIB, sha256_file
from tests.support.liar import CHUNK, LyingPeer
from tests.support.poisoning import Honest, banned, start_liar


def download(swarm: Swarm, target: Path, preferred: str, **options: float) -> object:
    return Downloader(SharedFolder(target), swarm.tracker.client).download(
        "aula1.mp4", DownloadOptions(preferred=preferred, stall_timeout=5.0, **options)
    )


def test_wrong_bytes_in_the_last_chunk_cost_only_the_last_piece(
    swarm: Swarm, honest: Honest, liars: Callable[..., LyingPeer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    liar, liar_id = start_liar(swarm, honest, liars, "last chunk")
    target = swarm.folder("c")

    download(swarm, target, liar_id)

    assert sha256_file(target / "aula1.mp4") == swarm.sha256
    last_piece = DATA_SIZE % MIB
    assert liar.sent == DATA_SIZE
    assert honest.sent == last_piece  # fetched twice: the last piece, nothing else
    assert [liar_id in line for line in banned(caplog)] == [True]


@pytest.mark.parametrize("first", [CHUNK, CHUNK // 2], ids=["whole piece", "half a piece"])
def test_a_corrupted_first_chunk_then_a_drop_never_bans_the_honest_peer(
    swarm: Swarm,
    honest: Honest,
    liars: Callable[..., LyingPeer],
    caplog: pytest.LogCaptureFixture,
    first: int,
) -> None:
    caplog.set_level(logging.INFO)
    liar, liar_id = start_liar(swarm, honest, liars, "first chunk then drop", first)
    target = swarm.folder("c")

    download(swarm, target, liar_id)

    assert sha256_file(target / "aula1.mp4") == swarm.sha256
    assert liar.sent == first
    assert honest.sent == DATA_SIZE  # the liar's bytes were never kept, one piece at most
    assert not any(honest.peer_id in line for line in banned(caplog))
    # A whole bad piece is exact proof; half a piece then a drop proves nothing, so no ban.
    assert len(banned(caplog)) == (1 if first == CHUNK else 0)


def test_a_layer_that_does_not_match_the_root_bans_only_its_sender(
    swarm: Swarm, honest: Honest, liars: Callable[..., LyingPeer], caplog: pytest.LogCaptureFixture
) -> None:
    liar, liar_id = start_liar(swarm, honest, liars, "layer")
    target = swarm.folder("c")

    download(swarm, target, liar_id)

    assert sha256_file(target / "aula1.mp4") == swarm.sha256
    assert liar.sent == 0  # no byte is asked of a peer before the layer is trusted
    assert honest.sent == DATA_SIZE
    assert [liar_id in line and "piece layer" in line for line in banned(caplog)] == [True]


def test_a_peer_whose_bytes_are_never_kept_is_not_called_a_peer_that_sent_nothing(
    swarm: Swarm, liars: Callable[..., LyingPeer]
) -> None:
    info = SharedFolder(swarm.share("a")).get("aula1.mp4")
    liar = liars(swarm.data, info, "first chunk then drop", CHUNK // 2)
    liar_id = swarm.tracker.client.join("127.0.0.1", liar.port, [info]).peer_id
    target = swarm.folder("c")

    with pytest.raises(NoPeerReachableError, match="no peer sent a good piece for 2 s"):
        download(swarm, target, liar_id, give_up_after=2.0)

    assert liar.sent >= CHUNK // 2


def test_a_restart_fetches_only_the_missing_pieces_and_checks_only_the_unnoted_ones(
    swarm: Swarm, honest: Honest
) -> None:
    target = swarm.folder("c")
    data = swarm.data.read_bytes()
    info = honest.info
    part = PartFile(
        SharedFolder(target).root,
        "aula1.mp4",
        DATA_SIZE,
        info.sha256,
        force=False,
        pieces_root=info.pieces_root,
    )
    layer_bytes = SharedFolder(swarm.tmp / "honest").piece_layer("aula1.mp4")[1]
    part.attach(PieceLayer.checked(DATA_SIZE, info.pieces_root, MIB, layer_bytes))
    for index in range(5):
        part.put_piece(index, [memoryview(data)[index * MIB : (index + 1) * MIB]])
    part.close()  # a clean stop: the note says 5 pieces are verified
    # As if a crash came later: 3 more pieces reached the disk, the note never heard of them,
    # and the last of them is damaged.
    with part_path(target, "aula1.mp4").open("r+b") as raw:
        raw.seek(5 * MIB)
        raw.write(data[5 * MIB : 7 * MIB] + b"\0" * MIB)

    result = Downloader(SharedFolder(target), swarm.tracker.client).download("aula1.mp4")

    assert (result.resumed_from, result.bytes_received) == (7 * MIB, DATA_SIZE - 7 * MIB)
    assert honest.sent == DATA_SIZE - 7 * MIB
    assert sha256_file(target / "aula1.mp4") == swarm.sha256
