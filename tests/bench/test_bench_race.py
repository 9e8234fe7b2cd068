"""The helpers of the transfer race: bencode, the .torrent, the loopback tracker, the count of
a forking server's CPU, and the check for missing programs.
"""

import hashlib
import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from urllib.parse import quote_from_bytes

import pytest

from tests.bench import bittorrent, tools
from tests.bench.files import MIB, make_random_file
from tests.bench.procs import settled_cpu_seconds

pytestmark = pytest.mark.slow  # the bench's helpers: left out of make check with the bench


def test_bencode_follows_the_spec_examples_and_decodes_back() -> None:
    assert bittorrent.bencode(b"spam") == b"4:spam"
    assert bittorrent.bencode(-3) == b"i-3e"
    assert bittorrent.bencode(["spam", 42]) == b"l4:spami42ee"
    # Keys sorted as raw bytes, whatever order they were given in.
    assert bittorrent.bencode({"spam": ["a", "b"], "cow": "moo"}) == (b"d3:cow3:moo4:spaml1:a1:bee")
    value: dict[bytes, bittorrent.Bencoded] = {
        b"peers": b"\x7f\x00\x00\x01\x1a\xe1",
        b"interval": 1800,
        b"l": [b"", 0],
    }
    assert bittorrent.bdecode(bittorrent.bencode(value)) == value
    with pytest.raises(TypeError):
        bittorrent.bencode(True)


@pytest.mark.parametrize("data", [b"i1e0", b"5:spam", b"d3:cowe", b"di1ei2ee", b"l" * 40, b""])
def test_bdecode_refuses_what_is_not_exactly_one_value(data: bytes) -> None:
    with pytest.raises(ValueError, match="not one bencoded value"):
        bittorrent.bdecode(data)


def test_pieces_are_about_a_thousand_powers_of_two() -> None:
    assert bittorrent.piece_length_for(1024 * MIB) == MIB
    assert bittorrent.piece_length_for(4 * 1024 * MIB) == 4 * MIB
    assert bittorrent.piece_length_for(3 * MIB) == 16 * 1024
    assert bittorrent.piece_length_for(1 << 50) == bittorrent.MAX_PIECE


def test_the_torrent_describes_the_file_and_its_info_hash_is_that_of_its_info(
    tmp_path: Path,
) -> None:
    source = make_random_file(tmp_path / "lecture.mp4", 3 * MIB + 17)
    torrent, info_hash = bittorrent.make_torrent(source, "http://127.0.0.1:1/announce")
    decoded = bittorrent.bdecode(torrent)
    assert isinstance(decoded, dict)
    info = decoded[b"info"]
    assert isinstance(info, dict)
    assert decoded[b"announce"] == b"http://127.0.0.1:1/announce"
    assert info_hash == hashlib.sha1(bittorrent.bencode(info)).digest()
    length = info[b"piece length"]
    assert isinstance(length, int)
    assert (info[b"name"], info[b"length"]) == (b"lecture.mp4", 3 * MIB + 17)
    data = source.read_bytes()
    expected = b"".join(
        hashlib.sha1(data[at : at + length]).digest() for at in range(0, len(data), length)
    )
    assert info[b"pieces"] == expected


def _query(info_hash: bytes, peer_id: bytes, port: object, **extra: str) -> str:
    parts = [f"info_hash={quote_from_bytes(info_hash)}", f"peer_id={quote_from_bytes(peer_id)}"]
    parts += [f"port={port}", *(f"{k}={v}" for k, v in extra.items())]
    return "&".join(parts)


def test_an_announce_is_checked_and_only_a_loopback_ip_is_believed() -> None:
    info_hash, peer_id = bytes(range(20)), b"-aria2-" + b"x" * 13
    announce = bittorrent.parse_announce(
        _query(info_hash, peer_id, 6881, ip="127.0.0.2", event="started"), "127.0.0.1"
    )
    assert announce == bittorrent.Announce(info_hash, peer_id, "127.0.0.2", 6881, "started")
    elsewhere = bittorrent.parse_announce(
        _query(info_hash, peer_id, 1, ip="192.0.2.7"), "127.0.0.1"
    )
    assert elsewhere.host == "127.0.0.1"
    for bad in (
        _query(info_hash[:19], peer_id, 6881),
        _query(info_hash, peer_id, 0),
        _query(info_hash, peer_id, 70000),
        _query(info_hash, peer_id, "x"),
        _query(info_hash, peer_id, 6881, event="paused"),
        "port=6881",
    ):
        with pytest.raises(ValueError, match="must"):
            bittorrent.parse_announce(bad, "127.0.0.1")


def _announce(url: str, info_hash: bytes, peer_id: bytes, port: int, event: str) -> object:
    query = _query(info_hash, peer_id, port, event=event, compact="1")
    with urllib.request.urlopen(f"{url}?{query}", timeout=10) as answer:
        return bittorrent.bdecode(answer.read())


def test_the_tracker_answers_announces_over_a_socket_with_the_other_peers() -> None:
    info_hash = hashlib.sha1(b"the lecture").digest()
    seeder, leecher = b"S" * 20, b"L" * 20
    with bittorrent.Tracker() as tracker:
        assert tracker.url.startswith("http://127.0.0.1:")
        first = _announce(tracker.url, info_hash, seeder, 51413, "started")
        assert isinstance(first, dict)
        assert first[b"peers"] == b""
        assert tracker.swarms.wait_for_peer(info_hash, 5)
        second = _announce(tracker.url, info_hash, leecher, 6881, "started")
        assert isinstance(second, dict)
        assert second[b"peers"] == bytes([127, 0, 0, 1]) + (51413).to_bytes(2, "big")
        _announce(tracker.url, info_hash, seeder, 51413, "stopped")
        third = _announce(tracker.url, info_hash, leecher, 6881, "")
        assert isinstance(third, dict)
        assert third[b"peers"] == b""
        refused = _announce(tracker.url, info_hash[:5], leecher, 6881, "")
        assert isinstance(refused, dict)
        assert b"failure reason" in refused


def test_a_forking_servers_cpu_counts_the_children_it_reaped() -> None:
    # The parent forks a child that burns 0.3 CPU s, reaps it, then idles: like rsync's daemon
    # after a connection. Only utime/stime plus cutime/cstime see the child's share.
    script = textwrap.dedent(
        """
        import os, sys, time
        child = os.fork()
        if child == 0:
            while time.process_time() < 0.3:
                pass
            os._exit(0)
        os.waitpid(child, 0)
        print("reaped", flush=True)
        sys.stdin.read()
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as server:
        assert server.stdout is not None
        assert server.stdout.readline() == "reaped\n"
        counted = settled_cpu_seconds(server.pid)
        assert server.stdin is not None
        server.stdin.close()
    assert counted >= 0.29


def test_a_missing_program_is_reported_and_not_installed_when_told_not_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no program on it
    assert tools.ensure(["aria2c", "rsync"], install=False) == ["aria2c", "rsync"]
    err = capsys.readouterr().err
    assert "aria2c (Debian package aria2)" in err
    assert "rsync" in err
    fake = tmp_path / "rsync"
    fake.write_text("#!/bin/sh\n")
    os.chmod(fake, 0o755)
    assert tools.ensure(["aria2c", "rsync"], install=False) == ["aria2c"]
