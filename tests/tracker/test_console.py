"""The tracker's console lines: queued by RPC threads, written in order by flush()."""

import threading

from napshare.common.console import PEER_SEARCHED, render
from napshare.tracker import console


def test_lines_from_many_threads_are_all_written_in_each_threads_order(capsys):
    def search(thread):
        for n in range(200):
            console.say(PEER_SEARCHED, peer=f"10.0.0.{thread}:1", name=f"{n}.mp4")

    threads = [threading.Thread(target=search, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    console.flush()

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 800
    for t in range(4):
        mine = [line for line in lines if f" 10.0.0.{t}:1 " in line]
        peer = f"10.0.0.{t}:1"
        expected = [render(PEER_SEARCHED, {"peer": peer, "name": f"{n}.mp4"}) for n in range(200)]
        assert mine == expected


def test_lines_are_written_without_a_reaper_once_many_are_queued(capsys):
    for n in range(console.MAX_QUEUED + 1):
        console.say(PEER_SEARCHED, peer="10.0.0.1:1", name=f"{n}.mp4")

    assert len(capsys.readouterr().out.splitlines()) == console.MAX_QUEUED + 1
