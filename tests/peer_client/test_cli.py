"""The one-shot commands: the original's lines in English and Portuguese, and one-line errors."""

import signal
import socket
from pathlib import Path

import pytest

from .conftest import PeerProcess, Swarm, free_port, run_peer, start_cli, start_tracker

PT = "pt_BR.UTF-8"
EN = "C.UTF-8"


@pytest.mark.parametrize(
    ("lang", "found", "missing"),
    [
        (EN, "peers with requested file: {a} {b}", "peers with requested file:"),
        (PT, "peers com arquivo solicitado: {a} {b}", "peers com arquivo solicitado:"),
    ],
)
def test_search_prints_the_peers(swarm: Swarm, lang: str, found: str, missing: str) -> None:
    a = swarm.node(swarm.share("a"), swarm.tracker.address).link.peer_id
    b = swarm.node(swarm.share("b"), swarm.tracker.address).link.peer_id
    a, b = sorted((a, b))  # the tracker orders results by peer id

    hit = run_peer("search", "aula1.mp4", "--tracker", swarm.tracker.address, lang=lang)
    miss = run_peer("search", "aula9.mp4", "--tracker", swarm.tracker.address, lang=lang)

    assert (hit.returncode, hit.stdout) == (0, found.format(a=a, b=b) + "\n")
    assert (miss.returncode, miss.stdout) == (0, missing + "\n")


def test_search_by_keywords_lists_each_match(swarm: Swarm) -> None:
    a = swarm.node(swarm.share("a"), swarm.tracker.address).link.peer_id

    done = run_peer("search", "AULA mp4", "--query", "--tracker", swarm.tracker.address)

    assert done.returncode == 0
    size = (swarm.tmp / "a" / "aula1.mp4").stat().st_size
    assert done.stdout.splitlines() == [
        f"{a}\t{size}\taula1.mp4",
        f"peers with requested file: {a}",
    ]


@pytest.mark.parametrize(
    ("lang", "line"),
    [
        (EN, "File aula1.mp4 downloaded successfully into folder {folder}"),
        (PT, "Arquivo aula1.mp4 baixado com sucesso na pasta {folder}"),
    ],
)
def test_download_prints_the_success_line(swarm: Swarm, lang: str, line: str) -> None:
    swarm.node(swarm.share("peer1"), swarm.tracker.address)
    swarm.folder("peer2")

    done = run_peer(
        "download", "aula1.mp4", "--dir", "peer2", "--tracker", swarm.tracker.address,
        lang=lang, cwd=swarm.tmp,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert done.stdout == line.format(folder="peer2") + "\n"


@pytest.mark.parametrize(
    ("lang", "line"),
    [
        (EN, "I am peer {peer} with files aula1.mp4 b.txt"),
        (PT, "Sou peer {peer} com arquivos aula1.mp4 b.txt"),
    ],
)
def test_serve_prints_who_it_is_and_leaves_on_sigterm(swarm: Swarm, lang: str, line: str) -> None:
    folder = swarm.share("a")
    (folder / "b.txt").write_text("b")

    peer = swarm.spawn(folder, swarm.tracker.address, lang=lang)

    assert peer.output[0].startswith("listening on 127.0.0.1:")
    assert peer.output[1] == line.format(peer=peer.peer_id) + "\n"
    assert swarm.tracker.peers_with("b.txt") == [peer.peer_id]
    assert peer.stop(signal.SIGTERM) == 0
    assert swarm.tracker.peers_with("b.txt") == []  # Leave, not a lease running out


def test_unreachable_tracker_is_one_line(swarm: Swarm) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    for args in (
        ["search", "aula1.mp4", "--tracker", nowhere],
        ["download", "aula1.mp4", "--dir", str(swarm.folder("b")), "--tracker", nowhere],
    ):
        done = run_peer(*args)
        assert done.returncode == 6
        assert done.stderr.startswith(f"napshare-peer: tracker {nowhere} is unreachable")
        assert len(done.stderr.splitlines()) == 1


def test_missing_folder_is_one_line(swarm: Swarm) -> None:
    missing = str(swarm.tmp / "nope")
    for command in ("download", "serve"):
        args = [command, "--dir", missing, "--tracker", swarm.tracker.address]
        done = run_peer(*args, *(["aula1.mp4"] if command == "download" else ["--no-menu"]))
        assert done.returncode == 7
        assert done.stderr == f"napshare-peer: shared folder {missing} does not exist\n"


def test_port_in_use_is_one_line(swarm: Swarm) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_peer(
            "serve", "--no-menu", "--dir", str(swarm.folder("a")), "--host", "127.0.0.1",
            "--port", str(port), "--tracker", swarm.tracker.address,
        )  # fmt: skip
    assert done.returncode == 9
    assert done.stderr.startswith(f"napshare-peer: cannot listen on 127.0.0.1:{port}")
    assert len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["search", "x", "--tracker", "no-port"],
        ["download", "x", "--dir", ".", "--from", "1.2.3.4"],
        ["download", "../x", "--dir", "."],
        ["serve", "--dir", ".", "--chunk-size", "1"],
        ["download", "x", "--dir", ".", "--stall-timeout", "-1"],
        ["serve", "--dir", ".", "--host", "not a host"],
        ["serve", "--dir", ".", "--port", "65536"],
    ],
)
def test_bad_arguments_are_one_line(args: list[str], tmp_path: Path) -> None:
    done = run_peer(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("napshare-peer")
    assert len(done.stderr.splitlines()) == 1
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_help_documents_the_exit_codes() -> None:
    done = run_peer("download", "--help")
    assert done.returncode == 0
    assert "verification failed" in done.stdout
    assert "130" in done.stdout


def test_serve_without_a_tracker_keeps_serving_and_joins_when_it_appears(swarm: Swarm) -> None:
    port = free_port()
    process = start_cli(
        "serve", "--no-menu", "--dir", str(swarm.share("a")), "--host", "127.0.0.1",
        "--tracker", f"127.0.0.1:{port}",
    )  # fmt: skip
    peer = PeerProcess(process)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("listening on 127.0.0.1:")
        late = start_tracker(port)
        try:
            line = process.stdout.readline()
            assert line.startswith("I am peer 127.0.0.1:")
            assert late.peers_with("aula1.mp4") == [line.split()[3]]
        finally:
            late.client.close()
            late.server.stop(None)
    finally:
        peer.stop()
