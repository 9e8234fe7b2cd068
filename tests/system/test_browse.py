"""Browse (issue 22), across machines: the tracker answers it from its index, so a peer behind
a home router, which nobody can connect to, is browsed as a public one is; and its folder then
downloads through the paths reach finds (tests/system/test_reach.py), each file verified.

Real programs as users run them (TLS, default ports) on a small internet of network namespaces
(tests/support/netns.py).
"""

from pathlib import Path

from tests.support import netns
from tests.support.programs import (
    BIN,
    ENV,
    NOT_REACHABLE,
    REACHABLE,
    ServingPeer,
    Tracker,
)
from tests.support.trees import COURSE, TREE, files_under, make_tree

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


def browse(host: netns.Host, tracker: Tracker, what: str) -> tuple[int, list[str]]:
    """`napshare-peer browse WHAT` on a host, pinned to the tracker: exit code, lines."""
    done = host.run([str(BIN / "napshare-peer"), "browse", what, *tracker.pin()], env=ENV)
    return done.returncode, done.stdout.splitlines()


def test_a_peer_behind_a_home_router_is_browsed_and_its_folder_downloaded(
    internet: netns.Internet, tmp_path: Path
) -> None:
    tracker = Tracker(internet.public_host("tracker"), tmp_path / "tracker")
    home = internet.home_router("home")
    alice = ServingPeer(home.lan_host("alice"), make_tree(tmp_path / "alice"), tracker)
    alice.wait_for(NOT_REACHABLE)
    carol = internet.public_host("carol")
    # The control: nobody outside can open a connection to alice.
    assert carol.connect(home.wan_address, alice.port) == "refused"

    code, lines = browse(carol, tracker, alice.peer_id)

    assert code == 0, lines
    assert lines == [*TREE_LINES, f"5 files, 8.0 MiB, shared by {alice.peer_id}"]

    target = tmp_path / "carol"
    target.mkdir()
    argv = [str(BIN / "napshare-peer"), "download", "--folder", f"{alice.peer_id}:curso/"]
    done = carol.run([*argv, "--dir", str(target), *tracker.pin()], env=ENV, timeout=120)

    assert done.returncode == 0, done.stdout
    assert "Folder curso/ downloaded successfully" in done.stdout
    assert files_under(target) == {name: TREE[name] for name in COURSE}


def test_a_public_peer_is_browsed_folder_by_folder(
    internet: netns.Internet, tmp_path: Path
) -> None:
    tracker = Tracker(internet.public_host("tracker"), tmp_path / "tracker")
    bob = ServingPeer(internet.public_host("bob"), make_tree(tmp_path / "bob"), tracker)
    bob.wait_for(REACHABLE)
    carol = internet.public_host("carol")

    code, week = browse(carol, tracker, f"{bob.peer_id}:curso/semana1")
    missing, nothing = browse(carol, tracker, f"{bob.peer_id}:curso/semana9/")

    assert code == 0, week
    assert week == [*TREE_LINES[:4], f"2 files, 8.0 MiB, under curso/semana1/ of {bob.peer_id}"]
    assert missing == 0, nothing
    assert nothing == [f"peer {bob.peer_id} shares no file under curso/semana9/"]
