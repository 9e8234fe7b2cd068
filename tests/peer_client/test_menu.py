"""The interactive menu: JOIN, SEARCH, DOWNLOAD (in the background), LIST, QUIT."""

import io

from napshare.peer.ui.menu import Menu

from .conftest import Swarm, sha256_file


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
    assert "choose 1-5 or one of JOIN SEARCH DOWNLOAD LIST QUIT" in out
    assert "must be a plain name" in out
    assert "File aula1.mp4 downloaded successfully into folder peer2\n" in out
    assert out.count("sharing ") == 1  # the LIST after QUIT was never run
    assert sha256_file(swarm.tmp / "peer2" / "aula1.mp4") == swarm.sha256
    assert {s.peer for s in swarm.tracker.search("aula1.mp4")} == {
        source.link.peer_id,
        me.link.peer_id,
    }


def test_menu_join_list_and_end_of_input(swarm: Swarm) -> None:
    me = swarm.node(swarm.share("peer1"), swarm.tracker.address)
    shown = io.StringIO()

    Menu(me, io.StringIO("1\nJOIN\n4\n"), shown).run()  # ends at end of input

    assert me.link.join_count == 3
    out = shown.getvalue()
    assert f"sharing 1 file as {me.link.peer_id}:" in out
    assert "  aula1.mp4  96.0 MiB" in out
    assert out.startswith("1) JOIN  2) SEARCH  3) DOWNLOAD  4) LIST  5) QUIT\n")
