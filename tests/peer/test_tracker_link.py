"""The tracker link: heartbeats, re-joining a restarted tracker, announcing new files, leaving."""

import logging
import os
import signal
import time
from collections.abc import Iterator

import pytest
from napshare.peer.folder.store import SharedFolder
from napshare.peer.tracker_client import TrackerClient
from napshare.peer.tracker_link import TrackerLink
from napshare.tracker.index import TrackerIndex
from napshare.tracker.server import create_server as create_tracker_server

from tests.support.downloads import Swarm
from tests.support.net import free_port
from tests.support.trackers import start_in_process_tracker
from tests.support.waiting import wait_until


def test_a_peer_process_rejoins_a_restarted_tracker(swarm: Swarm) -> None:
    port = free_port()
    first = start_in_process_tracker(port=port, heartbeat_interval=1.0)
    peer = swarm.spawn(swarm.share("a"), first.address)
    assert first.peers_with("aula1.mp4") == [peer.peer_id]

    first.server.stop(None)
    first.client.close()
    second = start_in_process_tracker(port=port, heartbeat_interval=1.0)  # a fresh, empty index
    try:
        assert second.peers_with("aula1.mp4") == []
        # Its next heartbeat fails (unreachable, then NOT_FOUND): it joins again.
        peer.wait_for("I am peer", timeout=30)
        assert second.peers_with("aula1.mp4") == [peer.peer_id]
        assert peer.stop(signal.SIGINT) == 0
        assert second.peers_with("aula1.mp4") == []
    finally:
        second.client.close()
        second.server.stop(None)


@pytest.mark.serial  # heartbeats every second against a 3 s lease
def test_heartbeats_keep_the_lease(swarm: Swarm) -> None:
    short = start_in_process_tracker(heartbeat_interval=1.0)
    try:
        node = swarm.node(swarm.share("a"), short.address)
        # The lease is three intervals of one second; heartbeats carry it past that.
        for _ in range(9):
            assert short.peers_with("aula1.mp4") == [node.link.peer_id]
            time.sleep(0.5)
        assert node.link.join_count == 1  # never had to join again
    finally:
        short.client.close()
        short.server.stop(None)


def test_a_lost_lease_means_joining_again(swarm: Swarm) -> None:
    node = swarm.node(swarm.share("a"), swarm.tracker.address)
    # The same identity joining again (as a restart does) replaces the registration and token.
    registration = node.link.tracker.join("127.0.0.1", node.port, [], identity=node.identity)
    assert swarm.tracker.peers_with("aula1.mp4") == []

    # The next Update (the rescan sees a new file) gets UNAUTHENTICATED: Join again.
    (swarm.tmp / "a" / "new.txt").write_text("new")
    wait_until(lambda: swarm.tracker.peers_with("aula1.mp4") == [registration.peer_id])
    assert swarm.tracker.peers_with("new.txt") == [registration.peer_id]
    # The tracker lists the files before the node's Join call returns and counts it.
    wait_until(lambda: node.link.join_count >= 2)


def test_files_copied_in_later_are_announced_and_removed_ones_dropped(swarm: Swarm) -> None:
    folder = swarm.share("a")
    node = swarm.node(folder, swarm.tracker.address)
    assert swarm.tracker.peers_with("late.bin") == []

    staging = swarm.folder("staging") / "late.bin"
    staging.write_bytes(os.urandom(10_000))
    os.rename(staging, folder / "late.bin")
    wait_until(lambda: swarm.tracker.peers_with("late.bin") == [node.link.peer_id])

    (folder / "aula1.mp4").unlink()
    wait_until(lambda: swarm.tracker.peers_with("aula1.mp4") == [])
    assert swarm.tracker.peers_with("late.bin") == [node.link.peer_id]
    assert node.link.join_count == 1  # changes went as Update deltas, never a re-join


def test_leave_on_stop(swarm: Swarm) -> None:
    node = swarm.node(swarm.share("a"), swarm.tracker.address)
    assert swarm.tracker.peers_with("aula1.mp4") == [node.link.peer_id]
    node.link.stop()
    assert swarm.tracker.peers_with("aula1.mp4") == []


def test_a_join_from_the_menu_brings_no_false_warning_and_no_extra_join(
    swarm: Swarm, caplog: pytest.LogCaptureFixture
) -> None:
    short = start_in_process_tracker(heartbeat_interval=1.0)
    try:
        node = swarm.node(swarm.share("a"), short.address)
        assert node.link.join_count == 1
        time.sleep(0.5)  # halfway to the first heartbeat, which carries the first token
        with caplog.at_level(logging.WARNING, logger="napshare.peer.tracker_link"):
            node.link.join()  # what the menu's JOIN does: a new token
            time.sleep(3.5)  # several heartbeat intervals
        assert [r.getMessage() for r in caplog.records] == []
        assert node.link.join_count == 2
        assert short.peers_with("aula1.mp4") == [node.link.peer_id]
    finally:
        short.client.close()
        short.server.stop(None)


def test_a_bug_in_a_rescan_is_logged_and_the_rescans_go_on(
    swarm: Swarm, caplog: pytest.LogCaptureFixture
) -> None:
    node = swarm.node(swarm.share("a"), swarm.tracker.address)
    folder = node.link.folder
    real_scan = folder.scan
    failures = []

    def scan_failing_once() -> list:  # type: ignore[type-arg]
        if not failures:
            failures.append(1)
            raise RuntimeError("planted bug")
        return real_scan()

    with caplog.at_level(logging.ERROR, logger="napshare.peer.tracker_link"):
        folder.scan = scan_failing_once  # type: ignore[method-assign]
        wait_until(lambda: bool(failures))
        (swarm.tmp / "a" / "later.txt").write_text("later")
        # The loop came back: the file copied in after the failure is announced.
        wait_until(lambda: swarm.tracker.peers_with("later.txt") == [node.link.peer_id])
    assert any("planted bug" in r.getMessage() or r.exc_info for r in caplog.records)


@pytest.fixture
def small_tracker() -> Iterator[tuple[str, TrackerClient]]:
    """A tracker that allows one file per peer, and a client of it."""
    server, port = create_tracker_server(TrackerIndex(max_files=1), host="127.0.0.1", port=0)
    client = TrackerClient(f"127.0.0.1:{port}")
    yield client.address, client
    client.close()
    server.stop(None)


def test_an_update_refused_for_another_reason_keeps_the_registration(
    swarm: Swarm, small_tracker: tuple[str, TrackerClient]
) -> None:
    _address, client = small_tracker
    folder = SharedFolder(swarm.share("a"))
    link = TrackerLink(client, folder, host="127.0.0.1", port=free_port())
    joined = link.join()
    (folder.root / "new.txt").write_text("new")

    link.announce(folder.get("new.txt"))  # FILE_LIMIT_REACHED: the lease is fine

    assert link.peer_id == joined.peer_id
    assert link.join_count == 1
    assert [s.peer for s in client.search("aula1.mp4")] == [joined.peer_id]


def test_an_update_refused_with_token_mismatch_means_joining_again(
    swarm: Swarm, small_tracker: tuple[str, TrackerClient]
) -> None:
    _address, client = small_tracker
    folder = SharedFolder(swarm.share("a"))
    port = free_port()
    link = TrackerLink(client, folder, host="127.0.0.1", port=port)
    link.join()
    client.join("127.0.0.1", port, [])  # replaces the link's token

    link.announce(folder.get("aula1.mp4"))

    assert link.peer_id == ""  # forgotten: the heartbeat thread joins again
