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


def test_show_escapes_each_column_and_joins_them_with_tabs() -> None:
    out = io.StringIO()
    console.show("127.0.0.1:1", "5", "a\tb\x1b[2J\nPeer x", file=out)
    assert out.getvalue() == "127.0.0.1:1\t5\ta\\tb\\x1b[2J\\nPeer x\n"
