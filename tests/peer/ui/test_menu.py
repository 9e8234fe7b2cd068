"""The interactive menu: JOIN, SEARCH, DOWNLOAD (in the background), LIST, QUIT."""

import io
import logging
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from napshare.common import console
from napshare.peer.ui.menu import Menu

from tests.support.downloads import Swarm
from tests.support.files import ROOT, sha256_file
from tests.support.net import free_port
from tests.support.processes import cli_env, signal_a_thread_not_main
from tests.support.trackers import start_in_process_tracker
from tests.support.waiting import wait_until

STOP_WAIT = 60.0  # seconds; a stop takes a few, more on a loaded machine (Leave, grace)


def test_menu_searches_and_downloads_in_the_background(swarm: Swarm) -> None:
    source = swarm.node(swarm.share("peer1"), swarm.tracker.address)
    me = swarm.node(swarm.folder("peer2"), swarm.tracker.address)
    typed = io.StringIO(
        "2\naula1.mp4\n"  # SEARCH by number
        "search\nnothing.mp4\n"  # by word, any case
        f"DOWNLOAD\naula1.mp4\n{source.link.peer_id}\n"
        "7\n"  # not a choice
        "download\n../etc/passwd\n\n"
        "list\n"
        "QUIT\n"
        "LIST\n"  # never read: QUIT ends the menu
    )
    shown = io.StringIO()

    Menu(me, typed, shown).run()
    [job] = me.downloads
    job.thread.join(timeout=60)

    out = shown.getvalue()
    assert f"peers with requested file: {source.link.peer_id}\n" in out
    assert "peers with requested file:\n" in out
    assert "downloading aula1.mp4 in the background" in out
    assert "choose 1-6 or one of JOIN SEARCH DOWNLOAD BROWSE LIST QUIT" in out
    assert "has a '..' segment" in out
    assert "File aula1.mp4 downloaded successfully into folder peer2\n" in out
    assert out.count("sharing ") == 1  # the LIST after QUIT was never run
    assert sha256_file(swarm.tmp / "peer2" / "aula1.mp4") == swarm.sha256
    # Announced once its sha256 is computed, after the download.
    wait_until(
        lambda: (
            {s.peer for s in swarm.tracker.search("aula1.mp4")}
            == {source.link.peer_id, me.link.peer_id}
        )
    )


def test_menu_join_list_and_end_of_input(swarm: Swarm) -> None:
    me = swarm.node(swarm.share("peer1"), swarm.tracker.address)
    shown = io.StringIO()

    Menu(me, io.StringIO("1\nJOIN\n5\n"), shown).run()  # ends at end of input

    assert me.link.join_count == 3
    out = shown.getvalue()
    assert f"sharing 1 file as {me.link.peer_id}:" in out
    assert "  aula1.mp4  96.0 MiB" in out
    assert out.startswith("1) JOIN  2) SEARCH  3) DOWNLOAD  4) BROWSE  5) LIST  6) QUIT\n")


def test_a_folder_gone_while_the_menu_runs_is_a_line_not_the_end(swarm: Swarm) -> None:
    folder = swarm.share("gone")
    me = swarm.node(folder, swarm.tracker.address)
    shown = io.StringIO()
    shutil.rmtree(folder)

    Menu(me, io.StringIO("5\n1\n6\n"), shown).run()  # LIST, JOIN, then QUIT

    out = shown.getvalue()
    assert out.count("shared folder") == 2, out  # one line each for LIST and JOIN
    assert out.count("1) JOIN  2) SEARCH") == 3  # the menu came back after both


@pytest.fixture
def portuguese(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process speaks Brazilian Portuguese during the test (gettext reads the environment)."""
    for key in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("LANG", "pt_BR.UTF-8")
    console._translations.cache_clear()
    yield
    console._translations.cache_clear()


@pytest.mark.usefixtures("portuguese")
def test_menu_speaks_portuguese_and_takes_the_portuguese_choices(swarm: Swarm) -> None:
    me = swarm.node(swarm.share("peer1"), swarm.tracker.address)
    typed = io.StringIO(
        "BUSCAR\naula1.mp4\n"  # SEARCH by its Portuguese name
        "7\n"  # not a choice
        "baixar\naula9.mp4\n\n"  # DOWNLOAD, any case: nobody shares it
        "5\n"
        "search\naula1.mp4\n"  # the English names still work
        "SAIR\n"
        "LISTAR\n"  # never read: SAIR ends the menu
    )
    shown = io.StringIO()

    Menu(me, typed, shown).run()
    for job in me.downloads:
        job.thread.join(timeout=60)

    out = shown.getvalue()
    assert out.startswith(
        "1) ENTRAR  2) BUSCAR  3) BAIXAR  4) EXPLORAR  5) LISTAR  6) SAIR\n> nome do arquivo: "
    )
    assert f"peers com arquivo solicitado: {me.link.peer_id}\n" in out
    assert out.count("peers com arquivo solicitado:") == 2
    assert "escolha 1-6 ou um de ENTRAR BUSCAR BAIXAR EXPLORAR LISTAR SAIR\n" in out
    assert "do peer ip:porta (vazio = qualquer um): " in out
    assert "baixando aula9.mp4 em segundo plano; LISTAR mostra até onde chegou\n" in out
    assert "o download de aula9.mp4 falhou: nenhum peer compartilha aula9.mp4\n" in out
    assert f"compartilhando 1 arquivo como {me.link.peer_id}:\n" in out
    assert out.count("compartilhando") == 1


def _wait_for(out: io.StringIO, text: str) -> None:
    wait_until(lambda: out.getvalue().endswith(text), timeout=30)


def test_a_log_line_while_the_menu_waits_goes_above_a_redrawn_prompt(swarm: Swarm) -> None:
    me = swarm.node(swarm.folder("peer1"), swarm.tracker.address)
    read, write = os.pipe()
    typed = os.fdopen(read, "r")
    keys = os.fdopen(write, "w")
    shown = io.StringIO()
    handlers = list(logging.getLogger().handlers)
    menu = threading.Thread(target=Menu(me, typed, shown).run)
    menu.start()
    try:
        _wait_for(shown, "> ")
        logging.getLogger("napshare.peer.tracker_link").warning("evil\x1b[2J name\nforged")
        _wait_for(shown, "evil\\x1b[2J name\\nforged\n> ")
    finally:
        keys.write("QUIT\n")
        keys.close()
        menu.join(timeout=30)
        typed.close()
    out = shown.getvalue()
    assert re.search(
        r"\n> \r\x1b\[K\S+ \S+ WARNING napshare\.peer\.tracker_link: "
        r"evil\\x1b\[2J name\\nforged\n> $",
        out,
    ), out
    assert logging.getLogger().handlers == handlers  # the menu's handler is gone again


def test_on_a_terminal_a_sigterm_that_lands_on_another_thread_stops_the_peer(
    swarm: Swarm,
) -> None:
    terminal, side = pty.openpty()
    env = cli_env()
    env["TERM"] = "xterm"
    command = [sys.executable, "-m", "napshare.peer", "serve", "--plaintext"]
    command += ["--dir", str(swarm.share("a"))]
    command += ["--tracker", swarm.tracker.address, "--host", "127.0.0.1"]
    peer = subprocess.Popen(command, stdin=side, stdout=side, stderr=side, cwd=ROOT, env=env)
    os.close(side)
    seen = bytearray()
    try:
        _read_until(terminal, r"QUIT\r\n(?:\x1b\[[?0-9;]*[a-zA-Z])*> $", seen)
        os.write(terminal, b"SEA")  # readline waits in select() on the terminal alone
        _read_until(terminal, r"> SEA$", seen)
        signal_a_thread_not_main(peer.pid, signal.SIGTERM)
        assert _drain_until_exit(peer, terminal, seen) == 0
    finally:
        if peer.poll() is None:
            peer.kill()
            peer.wait(timeout=30)
        os.close(terminal)
    assert swarm.tracker.peers_with("aula1.mp4") == []  # it left the tracker on its way out


def _read_until(terminal: int, pattern: str, seen: bytearray, timeout: float = 30.0) -> None:
    """Read the terminal's output into `seen` until it matches `pattern`; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not re.search(pattern.encode(), seen):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([terminal], [], [], left)[0]:
            pytest.fail(f"no {pattern!r} on the terminal: {bytes(seen)!r}")
        seen += os.read(terminal, 65536)


def _drain_until_exit(process: subprocess.Popen[bytes], terminal: int, seen: bytearray) -> int:
    """Keep reading the terminal, as a terminal does, until `process` exits; its exit code.

    A process whose terminal is not read blocks in its next write once the pty's buffer fills.
    """
    deadline = time.monotonic() + STOP_WAIT
    while process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(
                f"the peer did not stop within {STOP_WAIT:g} s of SIGTERM: {bytes(seen[-2000:])!r}"
            )
        if select.select([terminal], [], [], 0.2)[0]:
            try:
                seen += os.read(terminal, 65536)
            except OSError:  # the other side closed
                process.wait(timeout=30)
    return process.returncode


def test_on_a_terminal_a_log_line_redraws_the_prompt_with_what_was_typed(swarm: Swarm) -> None:
    port = free_port()
    short = start_in_process_tracker(port=port, heartbeat_interval=1.0)
    terminal, side = pty.openpty()
    env = cli_env()
    env["TERM"] = "xterm"
    command = [sys.executable, "-m", "napshare.peer", "serve", "--plaintext"]
    command += ["--dir", str(swarm.share("a"))]
    command += ["--tracker", short.address, "--host", "127.0.0.1"]
    peer = subprocess.Popen(command, stdin=side, stdout=side, stderr=side, cwd=ROOT, env=env)
    os.close(side)
    seen = bytearray()
    try:
        _read_until(terminal, r"QUIT\r\n(?:\x1b\[[?0-9;]*[a-zA-Z])*> $", seen)
        os.write(terminal, b"SEA")  # typed, not entered yet
        _read_until(terminal, r"> SEA$", seen)
        short.server.stop(None)  # the next heartbeat fails: a warning while the menu waits
        _read_until(terminal, r"WARNING[^\r\n]*\r\n> SEA", seen)
        assert re.search(rb"> SEA\r\x1b\[K[^\r\n]* WARNING napshare[^\r\n]*\r\n> SEA", seen), seen

        short.client.close()
        # Back: the peer joins again.
        short = start_in_process_tracker(port=port, heartbeat_interval=1.0)
        _read_until(terminal, r"\r\x1b\[KI am peer [^\r\n]*\r\n> SEA", seen)
    finally:
        short.client.close()
        short.server.stop(None)
        peer.send_signal(signal.SIGTERM)
        _drain_until_exit(peer, terminal, seen)
        os.close(terminal)
