"""A peer announced by name (`serve --host NAME`) joins as the address the name resolves to."""

from __future__ import annotations

from pathlib import Path

from napshare.peer.folder.store import SharedFolder
from napshare.peer.node import Node, NodeConfig
from napshare.peer.tracker_client import TrackerClient
from napshare.tracker.server import create_server


def test_a_peer_announced_as_localhost_joins_as_its_address(tmp_path: Path) -> None:
    server, port = create_server(host="127.0.0.1", port=0)
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    config = NodeConfig(
        folder=SharedFolder(folder),
        folder_label="shared",
        tracker=f"127.0.0.1:{port}",
        host="localhost",
        bind="127.0.0.1",
    )
    node = Node(config, lambda _peer, _files: None)
    client = TrackerClient(f"127.0.0.1:{port}")
    try:
        node.start()
        assert node.link.peer_id in (f"127.0.0.1:{node.port}", f"[::1]:{node.port}")
        assert [s.peer for s in client.search("a.txt")] == [node.link.peer_id]
    finally:
        client.close()
        node.stop()
        server.stop(None)
