"""The menu's DOWNLOAD over TLS, as serve runs by default: a peer the tracker never listed, a
bad name, and a file already in the folder each get a line that fits the menu.
"""

import hashlib
import io
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from napshare.common.identity import TRACKER_NAME, make_identity
from napshare.peer.downloading.engine import DownloadOptions
from napshare.peer.folder.store import SharedFolder
from napshare.peer.node import Node, NodeConfig
from napshare.peer.transport import Transport
from napshare.peer.ui.menu import Menu
from napshare.tracker.server import create_server as create_tracker

NAME = "aula1.mp4"
DATA = random.Random(23).randbytes(3 * 1024 * 1024 + 17)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Callable[[str], Node]]:
    """Start serving nodes of one TLS tracker, each on a folder of tmp_path, by name."""
    identity = make_identity(TRACKER_NAME, ["127.0.0.1"])
    tracker, port = create_tracker(host="127.0.0.1", port=0, tls=identity)
    nodes: list[Node] = []

    def start(name: str) -> Node:
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        started = Node(
            NodeConfig(
                folder=SharedFolder(folder),
                folder_label=name,
                tracker=f"127.0.0.1:{port}",
                host="127.0.0.1",
                download=DownloadOptions(wait_for_peers=0),
                transport=Transport(plaintext=False, tracker_cert=identity.certificate_pem),
            ),
            lambda _peer, _files: None,
        )
        started.start()
        nodes.append(started)
        return started

    yield start
    for started in nodes:
        started.stop()
    tracker.stop(None)


def run_menu(me: Node, typed: str) -> str:
    """Everything the menu showed for `typed`, once its downloads ended."""
    shown = io.StringIO()
    Menu(me, io.StringIO(typed), shown).run()
    for job in me.downloads:
        job.thread.join(timeout=60)
    return shown.getvalue()


def test_a_peer_the_tracker_never_listed_is_named_and_the_listed_ones_send(
    tmp_path: Path, node: Callable[[str], Node]
) -> None:
    (tmp_path / "peer1").mkdir()
    (tmp_path / "peer1" / NAME).write_bytes(DATA)
    source = node("peer1")
    me = node("peer2")

    out = run_menu(me, f"3\n{NAME}\n127.0.0.1:9\n6\n")

    assert (
        f"the tracker does not list peer 127.0.0.1:9 as sharing {NAME} (it never joined, or "
        "shares no file of that name), so nothing says which certificate it must show; "
        "downloading from the peers it lists\n"
    ) in out
    assert "anonymously" not in out
    assert f"File {NAME} downloaded successfully into folder peer2\n" in out
    assert (tmp_path / "peer2" / NAME).read_bytes() == DATA
    assert source.link.peer_id in {s.peer for s in me.tracker.search(NAME)}


def test_a_bad_name_is_reported_before_the_peer_is_asked(node: Callable[[str], Node]) -> None:
    me = node("peer2")

    out = run_menu(me, "3\n../etc/passwd\n6\n")

    assert (
        "file name (a folder: end it with /): file name '../etc/passwd' has a '..' segment" in out
    )
    assert "from peer" not in out
    assert me.downloads == []


def test_a_file_already_there_is_replaced_only_when_the_user_says_so(
    tmp_path: Path, node: Callable[[str], Node]
) -> None:
    (tmp_path / "peer1").mkdir()
    (tmp_path / "peer1" / NAME).write_bytes(DATA)
    (tmp_path / "peer2").mkdir()
    (tmp_path / "peer2" / NAME).write_bytes(b"an older copy")
    node("peer1")
    me = node("peer2")

    kept = run_menu(me, f"3\n{NAME}\n\nn\n6\n")

    question = f"{NAME} is already in the folder; download it again and replace it? [y/N] "
    assert question in kept
    assert "--force" not in kept
    assert me.downloads == []
    assert (tmp_path / "peer2" / NAME).read_bytes() == b"an older copy"

    replaced = run_menu(me, f"3\n{NAME}\n\ny\n6\n")

    assert question in replaced
    assert f"File {NAME} downloaded successfully into folder peer2\n" in replaced
    assert hashlib.sha256((tmp_path / "peer2" / NAME).read_bytes()).digest() == (
        hashlib.sha256(DATA).digest()
    )
