"""Fake listings cannot block a file: a version whose sources all show another certificate
than the one they joined with is given up and the next one tried, and the version tried first
is the one shared from the most distinct address blocks the tracker reached, not the one with
the most listings.

Real parts only: a TLS tracker in this process, honest napshare peers, an attacker's listings
joined with its own identity, and napshare peer servers of other identities answering at the
addresses they claim; the downloads are `python -m napshare.peer` processes.
"""

import os
from collections.abc import Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from napshare.common.exitcodes import ExitCode
from napshare.common.identity import PEER_NAME, make_identity
from napshare.peer.folder.store import SharedFile, SharedFolder

from tests.support.hostile import (
    ServingPeer,
    TlsTracker,
    fake_listing,
    fake_version,
    honest_peer,
    run_peer,
    serve,
    start_tls_tracker,
)

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


def download(tracker: TlsTracker, target: Path, *extra: str) -> CompletedProcess[str]:
    target.mkdir(exist_ok=True)
    return run_peer(
        "download", NAME, "--dir", str(target), "--tracker", tracker.address,
        "--tracker-cert", str(tracker.cert_file), "--give-up-after", "20", *extra,
    )  # fmt: skip


def impostors(
    tmp_path: Path, peers: list[ServingPeer], count: int, hosts: list[str]
) -> list[ServingPeer]:
    """`count` napshare peer servers, each with an identity of its own, on `hosts` in turn:
    TLS servers that show another certificate than the attacker's listings name.
    """
    empty = tmp_path / "impostor"
    empty.mkdir(exist_ok=True)
    started = [serve(empty, hosts[i % len(hosts)]) for i in range(count)]
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
    for impostor in impostors(tmp_path, peers, 2, ["127.0.0.1"]):
        assert not fake_listing(tracker, attacker, impostor.host, impostor.port, [fake])

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
    for impostor in impostors(tmp_path, peers, 3, ["127.0.3.1", "127.0.4.1", "127.0.5.1"]):
        fake_listing(tracker, attacker, impostor.host, impostor.port, [fake])

    done = download(tracker, tmp_path / "b")

    assert done.returncode == ExitCode.OK, done.stderr
    assert (tmp_path / "b" / NAME).read_bytes() == data


def test_exit_13_only_when_every_versions_sources_showed_another_certificate(
    tmp_path, tracker, peers
):
    data = os.urandom(2 * MIB)
    listed = the_file(folder_with(tmp_path, "model", data))
    attacker = make_identity(PEER_NAME)
    shown = impostors(tmp_path, peers, 3, ["127.0.0.1"])
    for index, impostor in enumerate(shown):
        version = fake_version(listed, f"version {index % 2}")
        fake_listing(tracker, attacker, impostor.host, impostor.port, [version])

    done = download(tracker, tmp_path / "b")

    assert done.returncode == ExitCode.PEER_IDENTITY, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"napshare-peer: refused to download {NAME}:"), last
    assert "another certificate" in last
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "b" / NAME).exists()
