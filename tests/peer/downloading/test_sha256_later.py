"""The pieces root is a file's identity: a download completes once every piece matched it, its
whole sha256 is computed afterwards and announced only then, and a source whose listed sha256
the bytes disprove is reported and not used again for that version.
"""

import json
import logging
import threading
from pathlib import Path

import pytest
from napshare.peer.downloading.engine import Downloader, DownloadOptions
from napshare.peer.errors import NotFoundError, VerificationFailedError
from napshare.peer.folder.layout import HASHES_FILE, STATE_DIR
from napshare.peer.folder.store import SharedFile, SharedFolder

from tests.support.downloads import DATA_SIZE, NAME, Swarm
from tests.support.files import sha256_file
from tests.support.peers import run_peer
from tests.support.waiting import wait_until

FORGED = "f" * 64


def forge_sha256(folder: Path) -> None:
    """Make `folder`'s hash cache list a wrong sha256 for NAME beside its true pieces root:
    a peer started on it lists and serves the true bytes under that sha256.
    """
    SharedFolder(folder).scan()
    cache = folder / STATE_DIR / HASHES_FILE
    document = json.loads(cache.read_text())
    document["files"][NAME]["sha256"] = FORGED
    cache.write_text(json.dumps(document))


def cached_entry(folder: Path) -> dict[str, object]:
    entry: dict[str, object] = json.loads((folder / STATE_DIR / HASHES_FILE).read_text())["files"][
        NAME
    ]
    return entry


def test_a_download_completes_on_its_root_and_leaves_the_sha256_for_later(swarm: Swarm) -> None:
    source = swarm.node(swarm.share("source"), swarm.tracker.address)
    target = swarm.folder("target")

    result = Downloader(SharedFolder(target), swarm.tracker.client).download(NAME)

    assert not result.sha256_checked
    assert result.pieces_root == source.config.folder.get(NAME).pieces_root
    assert sha256_file(target / NAME) == swarm.sha256
    # Nothing on the receiving path hashed the whole file: the folder knows its root alone...
    entry = cached_entry(target)
    assert (entry["sha256"], entry["pieces_root"]) == ("", result.pieces_root)
    # ...until it is first described, which computes the sha256 once.
    folder = SharedFolder(target)
    assert folder.get(NAME).sha256 == swarm.sha256
    assert folder.get(NAME).sha256 == swarm.sha256
    assert folder.hash_count == 1
    assert cached_entry(target)["sha256"] == swarm.sha256


def test_asked_for_the_sha256_the_download_checks_it_once_before_keeping_the_file(
    swarm: Swarm,
) -> None:
    swarm.node(swarm.share("source"), swarm.tracker.address)
    target = swarm.folder("target")

    result = Downloader(SharedFolder(target), swarm.tracker.client).download(
        NAME, DownloadOptions(verify_sha256=True)
    )

    assert result.sha256_checked
    assert cached_entry(target)["sha256"] == swarm.sha256  # kept: nobody computes it again
    folder = SharedFolder(target)
    assert folder.get(NAME).sha256 == swarm.sha256
    assert folder.hash_count == 0


def test_the_cli_completes_on_the_root_and_checks_the_sha256_only_when_asked(
    swarm: Swarm,
) -> None:
    shared = swarm.share("liar")
    forge_sha256(shared)
    swarm.node(shared, swarm.tracker.address)
    plain, checked = swarm.folder("plain"), swarm.folder("checked")
    tracker = ("--tracker", swarm.tracker.address)

    done = run_peer("download", NAME, "--dir", str(plain), *tracker)
    refused = run_peer("download", NAME, "--dir", str(checked), "--verify-sha256", *tracker)

    # The listed sha256 is wrong, but every piece matches the root: without --verify-sha256
    # the download never hashed the whole file, so it kept the (true) bytes...
    assert done.returncode == 0, done.stderr
    assert sha256_file(plain / NAME) == swarm.sha256
    assert "sha256" not in done.stdout
    # ...and with it, it did, and kept nothing.
    assert refused.returncode == 5, refused.stderr
    assert "list a sha256 and a pieces root that disagree" in refused.stderr
    assert not (checked / NAME).exists()


def test_the_cli_says_the_sha256_it_checked(swarm: Swarm) -> None:
    swarm.node(swarm.share("source"), swarm.tracker.address)
    target = swarm.folder("target")

    done = run_peer(
        "download", NAME, "--dir", str(target), "--verify-sha256",
        "--tracker", swarm.tracker.address,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert f"sha256 {swarm.sha256}: checked, the whole file has it" in done.stdout


def test_a_source_whose_sha256_the_bytes_disprove_is_reported_and_not_used_again(
    swarm: Swarm, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    shared = swarm.share("liar")
    forge_sha256(shared)
    liar = swarm.node(shared, swarm.tracker.address)
    announced: list[SharedFile] = []
    done = threading.Event()

    def on_saved(file: SharedFile) -> None:
        announced.append(file)
        done.set()

    target = swarm.folder("target")
    downloader = Downloader(SharedFolder(target), swarm.tracker.client, on_saved=on_saved)

    result = downloader.download(NAME)
    assert result.sources == (liar.link.peer_id,)
    assert done.wait(60)

    # Announced once its sha256 was computed, with that sha256, not the listed one.
    [file] = announced
    assert (file.name, file.size, file.sha256) == (NAME, DATA_SIZE, swarm.sha256)
    assert file.pieces_root == result.pieces_root
    reports = [r.getMessage() for r in caplog.records if "not using them again" in r.getMessage()]
    assert reports == [
        f"{liar.link.peer_id} list {NAME} ({DATA_SIZE} bytes, pieces root {result.pieces_root}) "
        f"with sha256 {FORGED}, but the bytes that root verified have sha256 {swarm.sha256}; "
        "not using them again for that version"
    ]
    # Its only source is not asked again for that version.
    (target / NAME).unlink()
    with pytest.raises(NotFoundError):
        downloader.download(NAME, DownloadOptions(give_up_after=5))
    assert not (target / NAME).exists()


def test_a_node_announces_a_download_only_with_the_sha256_it_computed(swarm: Swarm) -> None:
    shared = swarm.share("liar")
    forge_sha256(shared)
    liar = swarm.node(shared, swarm.tracker.address)
    node = swarm.node(swarm.folder("node"), swarm.tracker.address)

    node.downloader.download(NAME)

    def listed() -> dict[str, str]:
        return {s.peer: s.sha256 for s in swarm.tracker.search(NAME)}

    wait_until(lambda: node.link.peer_id in listed())
    assert listed() == {liar.link.peer_id: FORGED, node.link.peer_id: swarm.sha256}


def test_a_version_picked_by_its_sha256_is_checked_against_it_before_it_is_kept(
    swarm: Swarm,
) -> None:
    shared = swarm.share("liar")
    forge_sha256(shared)
    liar = swarm.node(shared, swarm.tracker.address)
    target = swarm.folder("target")
    downloader = Downloader(SharedFolder(target), swarm.tracker.client)

    with pytest.raises(VerificationFailedError, match="disagree"):
        downloader.download(NAME, DownloadOptions(sha256=FORGED))

    assert not (target / NAME).exists()
    assert downloader.disagreements.of(
        (DATA_SIZE, FORGED, liar.config.folder.get(NAME).pieces_root)
    )
