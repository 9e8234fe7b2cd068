"""Fake listings cannot block a file: a version whose sources all show another certificate
than the one they joined with is given up and the next one tried, and the version tried first
is the one shared from the most distinct address blocks the tracker reached, not the one with
the most listings.

Real parts only: a TLS tracker in this process, honest napshare peers, an attacker's listings
joined with its own identity, and napshare peer servers of other identities answering at the
addresses they claim; the downloads are `python -m napshare.peer` processes.
"""

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from napshare.common.exitcodes import ExitCode
from napshare.common.identity import PEER_NAME, make_identity
from napshare.peer.folder.store import SharedFile, SharedFolder

from tests.support.hostile import (
    BusyPeer,
    ServingPeer,
    TlsTracker,
    fake_listing,
    fake_version,
    honest_peer,
    serve,
    start_tls_tracker,
)
from tests.support.peers import run_peer

MIB = 1 << 20
NAME = "big.bin"


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[TlsTracker]:
    started = start_tls_tracker(tmp_path)
    yield started
    started.stop()


@pytest.fixture
def peers() -> Iterator[list[ServingPeer]]:
    """The peer servers a test started; stopped after it."""
    started: list[ServingPeer] = []
    yield started
    for peer in started:
        peer.server.stop(None)


def folder_with(tmp_path: Path, label: str, data: bytes) -> Path:
    folder = tmp_path / label
    folder.mkdir()
    (folder / NAME).write_bytes(data)
    return folder


def the_file(folder: Path) -> SharedFile:
    return SharedFolder(folder).get(NAME)


def download(
    tracker: TlsTracker, target: Path, *extra: str, timeout: float = 120
) -> CompletedProcess[str]:
    """`napshare-peer download big.bin` into `target` (give-up 20 s unless `extra` says)."""
    target.mkdir(exist_ok=True)
    return run_peer(
        "download", NAME, "--dir", str(target), "--tracker", tracker.address,
        "--tracker-cert", str(tracker.cert_file), "--give-up-after", "20", *extra,
        timeout=timeout, tls=True,
    )  # fmt: skip


def impostors(
    tmp_path: Path,
    peers: list[ServingPeer],
    count: int,
    hosts: list[str],
    listed: Callable[[int, str, int], object],
) -> list[ServingPeer]:
    """`count` napshare peer servers, each with an identity of its own, on `hosts` in turn:
    TLS servers that show another certificate than the attacker's listings name. Each
    address is listed first (`listed(index, host, port)`), while nothing answers there, and
    served after: the tracker refuses a Join whose address shows another certificate
    (ADDRESS_SERVED_BY_ANOTHER), so an attacker starts its servers once listed.
    """
    empty = tmp_path / "impostor"
    empty.mkdir(exist_ok=True)
    started = []
    for index in range(count):
        host = hosts[index % len(hosts)]
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        listed(index, host, port)
        started.append(serve(empty, host, port=port))
    peers.extend(started)
    return started


def test_two_fake_listings_showing_another_certificate_do_not_block_the_real_file(
    tmp_path, tracker, peers
):
    data = os.urandom(3 * MIB + 123)
    real = honest_peer(tracker, folder_with(tmp_path, "honest", data))
    peers.append(real)
    fake = fake_version(the_file(tmp_path / "honest"), "evil")
    attacker = make_identity(PEER_NAME)
    reached = []
    impostors(
        tmp_path,
        peers,
        2,
        ["127.0.0.1"],
        lambda _i, host, port: reached.append(fake_listing(tracker, attacker, host, port, [fake])),
    )
    assert reached == [False, False]

    done = download(tracker, tmp_path / "b")

    assert done.returncode == ExitCode.OK, done.stderr
    assert (tmp_path / "b" / NAME).read_bytes() == data


def test_a_fake_version_listed_from_more_blocks_is_still_given_up_for_the_real_one(
    tmp_path, tracker, peers
):
    # Not reached, but from three /24 blocks against the real file's one: whatever the order,
    # the fake version's sources all fail the pin, and the real one is tried next.
    data = os.urandom(2 * MIB + 5)
    real = honest_peer(tracker, folder_with(tmp_path, "honest", data))
    peers.append(real)
    fake = fake_version(the_file(tmp_path / "honest"), "evil")
    attacker = make_identity(PEER_NAME)
    impostors(
        tmp_path,
        peers,
        3,
        ["127.0.3.1", "127.0.4.1", "127.0.5.1"],
        lambda _i, host, port: fake_listing(tracker, attacker, host, port, [fake]),
    )

    done = download(tracker, tmp_path / "b")

    assert done.returncode == ExitCode.OK, done.stderr
    assert (tmp_path / "b" / NAME).read_bytes() == data


def test_exit_13_only_when_every_versions_sources_showed_another_certificate(
    tmp_path, tracker, peers
):
    data = os.urandom(2 * MIB)
    listed = the_file(folder_with(tmp_path, "model", data))
    attacker = make_identity(PEER_NAME)
    impostors(
        tmp_path,
        peers,
        3,
        ["127.0.0.1"],
        lambda index, host, port: fake_listing(
            tracker, attacker, host, port, [fake_version(listed, f"version {index % 2}")]
        ),
    )

    done = download(tracker, tmp_path / "b")

    assert done.returncode == ExitCode.PEER_IDENTITY, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"napshare-peer: refused to download {NAME}:"), last
    assert "another certificate" in last
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "b" / NAME).exists()


def honest_and_evil(
    tmp_path: Path, tracker: TlsTracker, peers: list[ServingPeer]
) -> tuple[bytes, bytes]:
    """The real big.bin shared from two /24 blocks (127.0.1.0, 127.0.2.0), and an attacker's
    big.bin with bytes of its own, really served (so it verifies), by three peers of the
    attacker's in one block (127.0.0.0/24): more listings, fewer blocks. The bytes of both.
    """
    real, evil = os.urandom(2 * MIB + 7), os.urandom(2 * MIB + 7)
    honest_folder = folder_with(tmp_path, "honest", real)
    evil_folder = folder_with(tmp_path, "evil", evil)
    for host in ("127.0.1.1", "127.0.2.1"):
        peers.append(honest_peer(tracker, honest_folder, host))
    for host in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
        peers.append(honest_peer(tracker, evil_folder, host))
    return real, evil


def test_the_version_shared_from_more_address_blocks_is_tried_first_not_the_most_listed(
    tmp_path, tracker, peers
):
    real, _ = honest_and_evil(tmp_path, tracker, peers)

    done = download(tracker, tmp_path / "b")

    assert done.returncode == ExitCode.OK, done.stderr
    assert (tmp_path / "b" / NAME).read_bytes() == real
    told = done.stdout + done.stderr
    assert f"2 versions of {NAME} are shared; trying first sha256 " in told
    assert "--sha256 picks one" in told


def test_sha256_and_root_pick_a_version_and_one_nobody_shares_is_not_found(
    tmp_path, tracker, peers
):
    real, evil = honest_and_evil(tmp_path, tracker, peers)
    evil_file = the_file(tmp_path / "evil")
    real_file = the_file(tmp_path / "honest")

    chosen = download(tracker, tmp_path / "b", "--sha256", evil_file.sha256.upper())
    by_root = download(tracker, tmp_path / "c", "--root", real_file.pieces_root)
    nobodys = download(tracker, tmp_path / "d", "--sha256", "ab" * 32)

    assert chosen.returncode == ExitCode.OK, chosen.stderr
    assert (tmp_path / "b" / NAME).read_bytes() == evil
    assert "versions of" not in chosen.stdout + chosen.stderr  # the user chose: nothing to tell
    assert by_root.returncode == ExitCode.OK, by_root.stderr
    assert (tmp_path / "c" / NAME).read_bytes() == real
    assert nobodys.returncode == ExitCode.NOT_FOUND, nobodys.stderr
    last = nobodys.stderr.strip().splitlines()[-1]
    assert last.startswith(f"napshare-peer: no peer shares {NAME} with sha256 {'ab' * 32};")
    assert real_file.sha256 in last
    assert evil_file.sha256 in last


def test_search_shows_the_versions_grouped_in_the_order_a_download_tries_them(
    tmp_path, tracker, peers
):
    # The real file from one block, reached; a made-up version listed from three blocks
    # (where another certificate answers once they are listed).
    real = honest_peer(tracker, folder_with(tmp_path, "honest", os.urandom(MIB + 1)))
    peers.append(real)
    real_file = the_file(tmp_path / "honest")
    fake = fake_version(real_file, "evil")
    attacker = make_identity(PEER_NAME)
    shown = impostors(
        tmp_path,
        peers,
        3,
        ["127.0.3.1", "127.0.4.1", "127.0.5.1"],
        lambda _i, host, port: fake_listing(tracker, attacker, host, port, [fake]),
    )

    done = run_peer(
        "search", NAME, "--tracker", tracker.address, "--tracker-cert", str(tracker.cert_file),
        tls=True,
    )  # fmt: skip

    assert done.returncode == ExitCode.OK, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("peers with requested file: ")
    assert lines[1] == (
        f"2 versions of {NAME} are shared; a download tries them in this order "
        "(download --sha256 HEX picks one):"
    )
    assert lines[2] == (
        f"  1. sha256 {real_file.sha256}, pieces root {real_file.pieces_root}, "
        f"{real_file.size:,} bytes: 1 address blocks (1 reached the tracker), 1 listings: "
        f"{real.address}"
    )
    assert lines[3].startswith(
        f"  2. sha256 {fake.sha256}, pieces root {fake.pieces_root}, {fake.size:,} bytes: "
        "3 address blocks (0 reached the tracker), 3 listings: "
    )
    assert sorted(lines[3].split(": ")[-1].split()) == sorted(i.address for i in shown)


def test_a_version_whose_sources_all_refuse_is_left_for_the_next_one(tmp_path, tracker, peers):
    # The attacker's servers are reached (its own identity answers there) from three blocks,
    # so its made-up version is tried first; they say "busy, come back in 60 s" for ever.
    data = os.urandom(2 * MIB + 3)
    real = honest_peer(tracker, folder_with(tmp_path, "honest", data))
    peers.append(real)
    fake = fake_version(the_file(tmp_path / "honest"), "evil")
    attacker = make_identity(PEER_NAME)
    busy = [BusyPeer(host, attacker) for host in ("127.0.3.1", "127.0.4.1", "127.0.5.1")]
    try:
        for server in busy:
            assert fake_listing(tracker, attacker, server.host, server.port, [fake])
        done = download(tracker, tmp_path / "b", "--give-up-after", "600", timeout=120)
    finally:
        for server in busy:
            server.server.stop(None)

    assert done.returncode == ExitCode.OK, done.stderr
    assert (tmp_path / "b" / NAME).read_bytes() == data
    assert all(server.calls >= 1 for server in busy)  # each was asked before it was left
