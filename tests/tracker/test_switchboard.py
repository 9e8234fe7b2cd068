"""The switchboard on its own: one stream per peer, events only to the current registration,
the cap, and what ends a stream.
"""

import threading

import pytest
from napshare.tracker.errors import ListenersFullError, ListenReplacedError, UnknownPeerError
from napshare.tracker.switchboard import MAX_QUEUED, Switchboard


def test_events_reach_the_stream_of_the_registration_in_order():
    board: Switchboard[str] = Switchboard()
    listener = board.register("10.0.0.1:1", "token")
    assert board.listening("10.0.0.1:1", "token")
    assert board.deliver("10.0.0.1:1", "token", "one")
    assert board.deliver("10.0.0.1:1", "token", "two")
    assert [listener.next(1), listener.next(1)] == ["one", "two"]
    assert listener.next(0.01) is None  # nothing more: the wait times out


def test_another_registrations_token_gets_nothing_through():
    board: Switchboard[str] = Switchboard()
    listener = board.register("10.0.0.1:1", "old token")
    assert not board.listening("10.0.0.1:1", "new token")
    assert not board.deliver("10.0.0.1:1", "new token", "dial")
    assert not board.deliver("10.0.0.1:2", "old token", "dial")
    assert listener.next(0.01) is None


def test_a_newer_stream_of_the_same_peer_ends_the_older_one():
    board: Switchboard[str] = Switchboard()
    old = board.register("10.0.0.1:1", "token")
    new = board.register("10.0.0.1:1", "token 2")
    assert old.closed
    assert isinstance(old.error, ListenReplacedError)
    board.unregister(old)  # the older call ends: the newer stream stays
    assert board.listening("10.0.0.1:1", "token 2")
    assert board.deliver("10.0.0.1:1", "token 2", "dial")
    assert new.next(1) == "dial"
    assert len(board) == 1


def test_past_the_cap_new_peers_are_refused_with_a_retry_but_replacements_get_in():
    board: Switchboard[str] = Switchboard(max_listeners=2)
    board.register("10.0.0.1:1", "a")
    board.register("10.0.0.1:2", "b")
    with pytest.raises(ListenersFullError) as caught:
        board.register("10.0.0.1:3", "c")
    assert caught.value.retry_delay
    assert caught.value.metadata["flag"] == "--max-listeners"
    board.register("10.0.0.1:2", "b again")
    assert len(board) == 2


def test_a_slow_stream_holds_at_most_its_queue():
    board: Switchboard[int] = Switchboard()
    board.register("10.0.0.1:1", "t")
    delivered = [board.deliver("10.0.0.1:1", "t", n) for n in range(MAX_QUEUED + 5)]
    assert delivered == [True] * MAX_QUEUED + [False] * 5


def test_end_wakes_the_waiting_stream_with_the_reason():
    board: Switchboard[str] = Switchboard()
    listener = board.register("10.0.0.1:1", "t")
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(listener.next(30)))
    reader.start()
    board.end("10.0.0.1:1", UnknownPeerError("peer 10.0.0.1:1 left"))
    reader.join(5)
    assert got == [None]
    assert isinstance(listener.error, UnknownPeerError)
    assert not board.listening("10.0.0.1:1", "t")


def test_close_ends_every_stream_and_takes_no_more():
    board: Switchboard[str] = Switchboard()
    listeners = [board.register(f"10.0.0.1:{n}", "t") for n in range(1, 4)]
    board.close()
    assert all(listener.closed and listener.error is None for listener in listeners)
    assert len(board) == 0
    with pytest.raises(ListenersFullError):
        board.register("10.0.0.1:9", "t")
