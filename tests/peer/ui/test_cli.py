"""The one-shot commands: the original's lines in English and Portuguese, and one-line errors."""

import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from napshare.common.exitcodes import ExitCode
from napshare.peer.node import BackgroundDownload, Node
from napshare.peer.ui.cli import EXIT_CODES_SAID
from napshare.v1 import peer_pb2, peer_pb2_grpc

from tests.support.downloads import Swarm, part_path
from tests.support.files import ROOT
from tests.support.net import free_port
from tests.support.peers import PeerProcess, run_peer, spawn_cli
from tests.support.processes import cli_env, signal_a_thread_not_main
from tests.support.trackers import InProcessTracker, start_in_process_tracker

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
    assert done.stdout.splitlines() == [f"{a}\t{size}\taula1.mp4"]  # the rows alone


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


@pytest.mark.serial  # a SIGTERM and a Leave in time: slow under load
@pytest.mark.parametrize(
    ("lang", "listening", "line"),
    [
        (EN, "listening on", "I am peer {peer} with files aula1.mp4 b.txt"),
        (PT, "escutando em", "Sou peer {peer} com arquivos aula1.mp4 b.txt"),
    ],
)
def test_serve_prints_who_it_is_and_leaves_on_sigterm(
    swarm: Swarm, lang: str, listening: str, line: str
) -> None:
    folder = swarm.share("a")
    (folder / "b.txt").write_text("b")

    peer = swarm.spawn(folder, swarm.tracker.address, lang=lang)

    assert peer.output[0].startswith(listening + " 127.0.0.1:")
    assert peer.output[1] == line.format(peer=peer.peer_id) + "\n"
    assert swarm.tracker.peers_with("b.txt") == [peer.peer_id]
    assert peer.stop(signal.SIGTERM) == 0
    assert swarm.tracker.peers_with("b.txt") == []  # Leave, not a lease running out


@pytest.mark.serial  # a SIGTERM and a Leave in time: slow under load
def test_serve_stops_on_a_sigterm_that_lands_on_a_thread_not_the_main_one(swarm: Swarm) -> None:
    peer = swarm.spawn(swarm.share("a"), swarm.tracker.address)
    assert swarm.tracker.peers_with("aula1.mp4") == [peer.peer_id]

    signal_a_thread_not_main(peer.process.pid, signal.SIGTERM)

    assert peer.process.wait(timeout=30) == 0  # the main thread sleeps in time.sleep meanwhile
    assert swarm.tracker.peers_with("aula1.mp4") == []


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


def test_errors_are_portuguese_one_liners_under_pt_br(swarm: Swarm) -> None:
    folder = str(swarm.folder("b"))
    missing = str(swarm.tmp / "nope")
    nowhere = f"127.0.0.1:{free_port()}"
    tracker = swarm.tracker.address

    # The tracker just started, so it is gathering; not waiting for peers keeps this quick.
    not_found = run_peer(
        "download",
        "nope.mp4",
        "--dir",
        folder,
        "--tracker",
        tracker,
        "--wait-for-peers",
        "0",
        lang=PT,
    )
    no_folder = run_peer("download", "nope.mp4", "--dir", missing, "--tracker", tracker, lang=PT)
    no_tracker = run_peer("search", "aula1.mp4", "--tracker", nowhere, lang=PT)
    bad_number = run_peer("download", "x", "--dir", folder, "--stall-timeout", "-1", lang=PT)

    assert (not_found.returncode, not_found.stderr) == (
        ExitCode.NOT_FOUND,
        "napshare-peer: nenhum peer compartilha nope.mp4\n",
    )
    assert (no_folder.returncode, no_folder.stderr) == (
        ExitCode.FOLDER,
        f"napshare-peer: a pasta compartilhada {missing} não existe\n",
    )
    assert no_tracker.returncode == ExitCode.TRACKER_UNREACHABLE
    assert no_tracker.stderr.startswith(f"napshare-peer: o tracker {nowhere} está inalcançável (")
    assert len(no_tracker.stderr.splitlines()) == 1
    assert (bad_number.returncode, bad_number.stderr) == (
        ExitCode.USAGE,
        "napshare-peer download: argument --stall-timeout: '-1' não é um número positivo "
        "(veja --help)\n",
    )


def test_input_errors_are_portuguese_while_servers_answer_in_english(swarm: Swarm) -> None:
    bad_name = run_peer("search", "../b", "--tracker", swarm.tracker.address, lang=PT)
    scheme = run_peer("search", "x", "--tracker", "http://127.0.0.1:1099", lang=PT)
    assert (bad_name.returncode, bad_name.stderr) == (
        ExitCode.USAGE,
        "napshare-peer: o nome de arquivo '../b' tem um segmento '..'; os nomes ficam dentro "
        "da sua pasta (veja --help)\n",
    )
    assert scheme.returncode == ExitCode.USAGE
    assert "tem um esquema: informe host:porta sem http://" in scheme.stderr

    # The same rule broken in a request to a peer that runs under pt_BR: its answer is English.
    peer = swarm.spawn(swarm.share("pt"), swarm.tracker.address, lang=PT)
    channel = grpc.insecure_channel(peer.peer_id)
    try:
        download = peer_pb2_grpc.PeerServiceStub(channel).Download
        with pytest.raises(grpc.RpcError) as refused:
            next(iter(download(peer_pb2.DownloadRequest(name="../b"), timeout=10)))
    finally:
        channel.close()
    assert refused.value.details() == (  # type: ignore[attr-defined]
        "file name '../b' has a '..' segment; names stay inside their folder"
    )


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
        ["serve", "--dir", ".", "--min-upload-rate", "-1"],
        ["serve", "--dir", ".", "--max-uploads-per-address", "0"],
        ["serve", "--dir", ".", "--upload-rate-window", "0"],
    ],
)
def test_bad_arguments_are_one_line(args: list[str], tmp_path: Path) -> None:
    done = run_peer(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("napshare-peer")
    assert len(done.stderr.splitlines()) == 1
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [[], ["serve"], ["search"], ["download"]])
def test_help_lists_every_exit_code_of_the_table(command: list[str]) -> None:
    done = run_peer(*command, "--help")

    assert done.returncode == 0
    listed = done.stdout.split("exit codes:\n", 1)[1]
    for code in ExitCode:
        said = EXIT_CODES_SAID.get(code, code.description)
        assert f"  {code.value:<4} {said}\n" in listed


@pytest.mark.parametrize(
    ("command", "option"),
    [
        ([], "download  baixa um arquivo, ou uma pasta de um peer, e sai"),
        (["serve"], "rodar como daemon até SIGINT ou SIGTERM"),
        (["download"], "o endereço do tracker, ou os das suas réplicas"),
    ],
)
def test_help_is_portuguese_under_pt_br(command: list[str], option: str) -> None:
    done = run_peer(*command, "--help", lang=PT)

    assert done.returncode == 0
    helped, listed = done.stdout.split("códigos de saída:\n", 1)
    assert option in helped
    assert "  3    não encontrado: nenhum peer compartilha o arquivo\n" in listed
    assert "  7    a pasta não existe ou não pode ser usada\n" in listed
    assert "a pasta .napshare/:" in listed


def test_serve_help_gives_the_upload_slot_defaults() -> None:
    done = run_peer("serve", "--help")

    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for flag, default in [
        ("--max-uploads-per-address N", "(default: 2)"),
        ("--min-upload-rate KIB_S", "(default: 64)"),
        ("--upload-rate-window S", "(default: 30)"),
        ("--upload-grace S", "(default: 10)"),
        ("--upload-stall-timeout S", "(default: 60)"),
    ]:
        assert flag in text
        assert default in text.split(flag, 2)[2].split(" --", 1)[0]


def test_help_says_what_the_napshare_folder_holds() -> None:
    done = run_peer("--help")

    assert done.returncode == 0
    assert "DIR/.napshare/" in done.stdout
    assert "hashes.json" in done.stdout
    assert "partial/" in done.stdout


@pytest.mark.parametrize(
    "args",
    [["search", "a/../b"], ["download", "a/../b", "--dir", "."]],
)
def test_a_bad_file_name_is_a_usage_error_for_search_and_download(
    tracker: InProcessTracker, tmp_path: Path, args: list[str]
) -> None:
    done = run_peer(*args, "--tracker", tracker.address, cwd=tmp_path)

    assert done.returncode == ExitCode.USAGE
    assert done.stderr.startswith("napshare-peer: file name 'a/../b' ")
    assert len(done.stderr.splitlines()) == 1


def test_a_second_download_into_the_same_folder_says_so(swarm: Swarm) -> None:
    swarm.node(swarm.share("a"), swarm.tracker.address)
    target = swarm.folder("b")
    # What a first `napshare-peer download aula1.mp4 --dir b` holds while it runs.
    part = part_path(target, "aula1.mp4")
    part.parent.mkdir(parents=True)
    fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        done = run_peer("download", "aula1.mp4", "--dir", str(target),
                        "--tracker", swarm.tracker.address)  # fmt: skip
    finally:
        os.close(fd)

    assert done.returncode == ExitCode.DOWNLOAD_IN_PROGRESS == 10
    assert done.stderr == (
        f"napshare-peer: aula1.mp4 is already being downloaded into {target} by another "
        "process; wait for it to finish, or stop it first\n"
    )


# A bug planted in the search, as a ValueError from deep inside would be one.
_BUGGY_SEARCH = """
import sys
from napshare.peer.tracker_client import TrackerClient
def find(self, *args, **kwargs):
    raise ValueError("planted bug")
TrackerClient.find = find
from napshare.peer.ui.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("level", ["warning", "debug"])
def test_an_internal_error_is_one_line_and_exit_1(tracker: InProcessTracker, level: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _BUGGY_SEARCH, "search", "x", "--tracker", tracker.address,
         "--log-level", level],
        cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == ExitCode.OTHER
    last = done.stderr.splitlines()[-1]
    assert last.startswith("napshare-peer: internal error: ValueError: planted bug")
    if level == "debug":
        assert "Traceback" in done.stderr
    else:
        assert done.stderr == last + "\n"


def test_a_background_download_reports_a_bug_as_an_internal_error(
    swarm: Swarm, start_node: Callable[..., Node]
) -> None:
    node = start_node(swarm.folder("a"), swarm.tracker.address)

    def planted_bug(*_args: object) -> None:
        raise ValueError("planted bug")

    node.downloader.download = planted_bug  # type: ignore[method-assign]
    finished = threading.Event()

    def done(_job: BackgroundDownload) -> None:
        finished.set()

    job = node.download_in_background("aula1.mp4", None, done)
    assert finished.wait(30)
    assert job.error == "internal error: ValueError: planted bug"


@pytest.mark.parametrize(
    "args",
    [
        ["search", "x", "--tracker", "http://127.0.0.1:1099"],
        ["download", "x", "--dir", ".", "--from", "grpc://127.0.0.1:8000"],
    ],
)
def test_an_address_with_a_scheme_says_to_drop_it(args: list[str], tmp_path: Path) -> None:
    done = run_peer(*args, cwd=tmp_path)

    assert done.returncode == ExitCode.USAGE
    assert "give host:port without " in done.stderr
    assert "IPv6" not in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_an_ipv6_address_without_brackets_says_so(tmp_path: Path) -> None:
    done = run_peer("search", "x", "--tracker", "fe80::1:1099", cwd=tmp_path)

    assert done.returncode == ExitCode.USAGE
    assert "IPv6 address 'fe80::1:1099' must look like [addr]:port" in done.stderr


def test_a_tracker_address_that_is_a_peer_says_so(swarm: Swarm) -> None:
    port = swarm.plain(swarm.folder("a")).port

    done = run_peer("search", "x", "--tracker", f"127.0.0.1:{port}")

    assert done.returncode == ExitCode.OTHER
    assert done.stderr == (
        f"napshare-peer: 127.0.0.1:{port} is not a napshare tracker "
        "(it does not serve napshare.v1.TrackerService)\n"
    )


def test_a_from_address_that_is_the_tracker_says_so(swarm: Swarm) -> None:
    swarm.node(swarm.share("a"), swarm.tracker.address)
    swarm.folder("b")

    done = run_peer(
        "download", "aula1.mp4", "--dir", "b", "--from", swarm.tracker.address,
        "--tracker", swarm.tracker.address, cwd=swarm.tmp,
    )  # fmt: skip

    assert done.returncode == ExitCode.OK, done.stderr
    assert (
        f"{swarm.tracker.address} is not a napshare peer "
        "(it does not serve napshare.v1.PeerService)"
    ) in done.stderr


def test_serve_without_a_tracker_keeps_serving_and_joins_when_it_appears(swarm: Swarm) -> None:
    port = free_port()
    process = spawn_cli(
        "serve", "--no-menu", "--dir", str(swarm.share("a")), "--host", "127.0.0.1",
        "--tracker", f"127.0.0.1:{port}",
    )  # fmt: skip
    peer = PeerProcess(process)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("listening on 127.0.0.1:")
        late = start_in_process_tracker(port=port)
        try:
            line = process.stdout.readline()
            assert line.startswith("I am peer 127.0.0.1:")
            assert late.peers_with("aula1.mp4") == [line.split()[3]]
        finally:
            late.client.close()
            late.server.stop(None)
    finally:
        peer.stop()


def test_a_download_or_a_search_loads_none_of_the_serving_stack() -> None:
    # prometheus_client, the node and the upload slots are about 5 MiB of a downloader's RSS,
    # whose bound (100 MiB) has little room; only `serve` needs them.
    serving = ("prometheus_client", "napshare.peer.node", "napshare.peer.serving.slots")
    code = (
        "import sys; import napshare.peer.ui.cli, napshare.peer.ui.commands; "
        f"print([m for m in {serving!r} if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stdout
