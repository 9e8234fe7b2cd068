"""The console lines: exact wording in both languages, and names that cannot forge lines."""

import io

from napshare.common import console


def test_english_and_portuguese_lines_are_the_originals() -> None:
    fields = {"peer": "127.0.0.1:8776", "files": ["aula1.mp4", "aula2.mp4"]}
    assert (
        console.render(console.PEER_JOINED, fields, ("en",))
        == "Peer 127.0.0.1:8776 added with files aula1.mp4 aula2.mp4"
    )
    assert (
        console.render(console.PEER_JOINED, fields, ("pt_BR",))
        == "Peer 127.0.0.1:8776 adicionado com arquivos aula1.mp4 aula2.mp4"
    )
    assert (
        console.render(console.PEERS_WITH_FILE, {"peers": []}, ("pt_BR",))
        == "peers com arquivo solicitado:"
    )


def test_control_characters_in_names_are_escaped() -> None:
    line = console.render(
        console.PEER_SEARCHED,
        {"peer": "127.0.0.1:8776", "name": "a.mp4\nPeer 6.6.6.6:1 added with files x\x1b[2J"},
        ("en",),
    )
    assert "\n" not in line
    assert "\x1b" not in line
    assert line == (
        "Peer 127.0.0.1:8776 requested file a.mp4\\nPeer 6.6.6.6:1 added with files x\\x1b[2J"
    )


def test_printable_unicode_is_kept() -> None:
    line = console.render(console.DOWNLOADED, {"name": "ação ünï.mp4", "folder": "vídeos"}, ("en",))
    assert line == "File ação ünï.mp4 downloaded successfully into folder vídeos"


def names(count: int, width: int = 5) -> list[str]:
    return [f"f{n:0{width}d}.mp4" for n in range(count)]


def test_file_lists_up_to_the_threshold_print_the_original_line() -> None:
    files = names(console.MAX_LISTED)
    for message, start in (
        (console.PEER_JOINED, "Peer 1.2.3.4:5 added with files "),
        (console.I_AM_PEER, "I am peer 1.2.3.4:5 with files "),
        (console.PEER_DEAD, "Peer 1.2.3.4:5 dead. Removing its files "),
    ):
        line = console.render(message, {"peer": "1.2.3.4:5", "files": iter(files)}, ("en",))
        assert line == start + " ".join(files)


def test_long_file_lists_print_a_count_and_the_first_names() -> None:
    fields = {"peer": "1.2.3.4:5", "files": names(5000)}
    assert console.render(console.PEER_JOINED, fields, ("en",)) == (
        "Peer 1.2.3.4:5 added with 5000 files: f00000.mp4 f00001.mp4 f00002.mp4 and 4997 more"
    )
    assert console.render(console.I_AM_PEER, fields, ("pt_BR",)) == (
        "Sou peer 1.2.3.4:5 com 5000 arquivos: f00000.mp4 f00001.mp4 f00002.mp4 e mais 4997"
    )
    assert console.render(console.PEER_DEAD, fields, ("pt_BR",)) == (
        "Peer 1.2.3.4:5 morto. Eliminando seus 5000 arquivos: f00000.mp4 f00001.mp4 "
        "f00002.mp4 e mais 4997"
    )
    one_more = {"peer": "1.2.3.4:5", "files": names(console.MAX_LISTED + 1)}
    assert console.render(console.I_AM_PEER, one_more, ("en",)).endswith(
        f"with {console.MAX_LISTED + 1} files: f00000.mp4 f00001.mp4 f00002.mp4 and "
        f"{console.MAX_LISTED - 2} more"
    )


def test_a_few_long_names_are_counted_too_and_the_line_stays_bounded() -> None:
    long_names = ["a" * 250 + f"{n}.mp4" for n in range(2)]
    line = console.render(console.PEER_JOINED, {"peer": "1.2.3.4:5", "files": long_names}, ("en",))
    assert line == f"Peer 1.2.3.4:5 added with 2 files: {long_names[0]} and 1 more"
    huge = ["\x01" * 200 + f"{n}" for n in range(50_000)]
    line = console.render(console.PEER_DEAD, {"peer": "1.2.3.4:5", "files": huge}, ("en",))
    assert len(line) < 1200


def test_show_escapes_each_column_and_joins_them_with_tabs() -> None:
    out = io.StringIO()
    console.show("127.0.0.1:1", "5", "a\tb\x1b[2J\nPeer x", file=out)
    assert out.getvalue() == "127.0.0.1:1\t5\ta\\tb\\x1b[2J\\nPeer x\n"
