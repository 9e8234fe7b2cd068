"""`napshare-peer browse` and `download --folder`, and the menu's BROWSE, against a real tracker
and real peers: the tree as a user reads it, a folder downloaded with its folders, and a folder
download stopped by a real Ctrl-C (SIGINT) and resumed as one job by running it again.
"""

import io
import signal
from pathlib import Path

from napshare.common.exitcodes import ExitCode
from napshare.peer.ui.menu import Menu

from tests.support.downloads import Swarm, part_path
from tests.support.files import MIB
from tests.support.peers import run_peer, spawn_cli
from tests.support.trees import COURSE, TREE, files_under, make_tree
from tests.support.waiting import wait_until

TREE_LINES = [
    "curso/",
    "  semana1/",
    "    aula1.mp4  3.0 MiB",
    "    aula2.mp4  5.0 MiB",
    "  semana2/",
    "    aula1.mp4  1000 B",
    "  vazio.txt  0 B",
    "notas.txt  6 B",
]


def test_browse_draws_the_tree_of_what_a_peer_shares(swarm: Swarm) -> None:
    peer = swarm.node(make_tree(swarm.folder("a")), swarm.tracker.address).link.peer_id

    whole = run_peer("browse", peer, "--tracker", swarm.tracker.address)
    week = run_peer("browse", f"{peer}:curso/semana1", "--tracker", swarm.tracker.address)

    assert (whole.returncode, whole.stderr) == (0, "")
    assert whole.stdout.splitlines() == [*TREE_LINES, f"5 files, 8.0 MiB, shared by {peer}"]
    assert week.returncode == 0, week.stderr
    assert week.stdout.splitlines() == [
        *TREE_LINES[:4],
        f"2 files, 8.0 MiB, under curso/semana1/ of {peer}",
    ]


def test_browse_of_a_peer_the_tracker_does_not_know_is_one_line_and_exit_3(swarm: Swarm) -> None:
    done = run_peer("browse", "127.0.0.1:9", "--tracker", swarm.tracker.address)

    assert done.returncode == ExitCode.NOT_FOUND
    assert done.stderr == (
        f"napshare-peer: tracker {swarm.tracker.address} has no peer 127.0.0.1:9 (it left, its "
        "lease ran out, or it never joined)\n"
    )


def test_a_hostile_folder_is_refused_with_its_reason_before_anything_is_asked(
    swarm: Swarm,
) -> None:
    target = swarm.folder("b")
    for folder, reason in [
        ("../", "has a '..' segment"),
        ("curso/../../x", "has a '..' segment"),
        ("/etc", "is an absolute path"),
        (".napshare/identity", "napshare's own folder"),
        ("a//b", "has an empty segment"),
    ]:
        done = run_peer(
            "download", "--folder", f"127.0.0.1:9:{folder}", "--dir", str(target),
            "--tracker", swarm.tracker.address,
        )  # fmt: skip
        assert done.returncode == ExitCode.USAGE, done.stderr
        assert reason in done.stderr
        assert done.stderr.count("\n") == 1
    assert list(target.iterdir()) == []
    assert [p.name for p in swarm.tmp.iterdir()] == ["b"]


def test_download_folder_takes_no_other_source_or_version(tmp_path: Path) -> None:
    for flag in (["--from", "127.0.0.1:7"], ["--sha256", "a" * 64], ["--root", "b" * 64]):
        done = run_peer("download", "--folder", "127.0.0.1:9:curso", "--dir", str(tmp_path), *flag)
        assert done.returncode == ExitCode.USAGE, done.stderr
        assert done.stderr.endswith("leave out --from, --sha256 and --root (see --help)\n")
        assert done.stderr.count("\n") == 1


def test_download_folder_puts_each_file_under_its_path(swarm: Swarm) -> None:
    peer = swarm.node(make_tree(swarm.folder("a")), swarm.tracker.address).link.peer_id
    swarm.folder("b")

    done = run_peer(
        "download", "--folder", f"{peer}:curso/", "--dir", "b", "--tracker",
        swarm.tracker.address, cwd=swarm.tmp,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        *(f"File {name} downloaded successfully into folder b" for name in COURSE),
        "Folder curso/ downloaded successfully into folder b: 4 files, 8.0 MiB",
    ]
    assert f"napshare-peer: downloading 4 files (8.0 MiB) of curso/ from {peer} into b\n" in (
        done.stderr
    )
    assert files_under(swarm.tmp / "b") == {name: TREE[name] for name in COURSE}


def test_a_folder_download_interrupted_by_ctrl_c_resumes_as_one_job(swarm: Swarm) -> None:
    peer = swarm.node(make_tree(swarm.folder("a")), swarm.tracker.address).link.peer_id
    target = swarm.folder("b")
    second = COURSE[1]  # curso/semana1/aula2.mp4, 5 MiB
    argv = ("download", "--folder", f"{peer}:curso", "--dir", str(target))
    tracker = ("--tracker", swarm.tracker.address)

    # Paced at 2 MiB/s, so that Ctrl-C lands in the middle of the second file.
    running = spawn_cli(*argv, *tracker, "--max-download-rate", "2M")
    wait_until(lambda: part_path(target, second).exists(), timeout=60)
    wait_until(lambda: part_path(target, second).stat().st_size >= MIB, timeout=60)
    running.send_signal(signal.SIGINT)
    out, err = running.communicate(timeout=60)

    assert running.returncode == ExitCode.INTERRUPTED, err
    assert out.splitlines() == [f"File {COURSE[0]} downloaded successfully into folder {target}"]
    assert err.splitlines()[-1] == (
        "napshare-peer: download of folder curso/ interrupted after 1 of 4 files; run the same "
        "command again to resume it"
    )
    kept = part_path(target, second).stat().st_size
    assert MIB <= kept < len(TREE[second])

    again = run_peer(*argv, *tracker)

    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        *(f"File {name} downloaded successfully into folder {target}" for name in COURSE[1:]),
        f"Folder curso/ downloaded successfully into folder {target}: 4 files, 8.0 MiB",
    ]
    assert (
        f"napshare-peer: 1 of 4 files of curso/ are already in {target}; downloading the other 3"
    ) in again.stderr
    assert "napshare-peer: resumed: " in again.stderr
    assert files_under(target) == {name: TREE[name] for name in COURSE}


def test_the_menu_browses_a_peer_and_downloads_its_folder(swarm: Swarm) -> None:
    source = swarm.node(make_tree(swarm.folder("a")), swarm.tracker.address)
    me = swarm.node(swarm.folder("b"), swarm.tracker.address)
    peer = source.link.peer_id
    shown = io.StringIO()

    Menu(me, io.StringIO(f"4\n{peer}:curso/semana1/\ny\n"), shown).run()
    [job] = me.downloads
    job.thread.join(timeout=60)

    out = shown.getvalue()
    assert "".join(f"  {line}\n" for line in TREE_LINES[:4]) in out
    assert f"2 files, 8.0 MiB, under curso/semana1/ of {peer}\n" in out
    assert f"download curso/semana1/ of {peer} into b? [y/N] " in out
    assert "Folder curso/semana1/ downloaded successfully into folder b: 2 files, 8.0 MiB" in out
    assert files_under(swarm.tmp / "b") == {name: TREE[name] for name in COURSE[:2]}


def test_the_menu_downloads_a_folder_named_with_a_slash_at_its_end(swarm: Swarm) -> None:
    source = swarm.node(make_tree(swarm.folder("a")), swarm.tracker.address)
    me = swarm.node(swarm.folder("b"), swarm.tracker.address)
    peer = source.link.peer_id
    shown = io.StringIO()

    typed = f"3\n../x/\n3\ncurso/\n{peer}\n"  # DOWNLOAD a hostile folder, then a good one
    Menu(me, io.StringIO(typed), shown).run()
    [job] = me.downloads
    job.thread.join(timeout=60)

    out = shown.getvalue()
    assert "file name (a folder: end it with /): file name '../x' has a '..' segment" in out
    assert f"downloading folder curso/ of {peer} in the background" in out
    assert "Folder curso/ downloaded successfully into folder b: 4 files, 8.0 MiB" in out
    assert files_under(swarm.tmp / "b") == {name: TREE[name] for name in COURSE}
    assert sorted(p.name for p in swarm.tmp.iterdir()) == ["a", "b"]
