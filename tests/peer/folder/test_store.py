"""The shared folder: what is shared, the sha256 cache, and that nothing outside is touched."""

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from napshare.common import merkle
from napshare.common.names import MAX_DEPTH, InvalidNameError
from napshare.peer.folder.layout import HASHES_FILE, LAYERS_DIR, STATE_DIR
from napshare.peer.folder.store import (
    Digests,
    FolderError,
    NotSharedError,
    SharedFolder,
    digests_of,
)

OLD_NS = 1_600_000_000 * 10**9


def write_old(path: Path, data: bytes) -> Path:
    """Write a file with an mtime well in the past, as files that sit in a folder have."""
    path.write_bytes(data)
    os.utime(path, ns=(OLD_NS, OLD_NS))
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_shares_regular_files_at_every_depth_with_their_paths(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"secret")
    (tmp_path / "outside-dir").mkdir()
    write_old(tmp_path / "outside-dir" / "x.txt", b"secret too")
    root = tmp_path / "share"
    root.mkdir()
    write_old(root / "b.txt", b"bee")
    write_old(root / "a.txt", b"")
    write_old(root / ".hidden", b"h")
    write_old(root / "movie.mp4.part", b"half")
    (root / "sub" / "deeper").mkdir(parents=True)
    write_old(root / "sub" / "inner.txt", b"inner")
    write_old(root / "sub" / "deeper" / "aula1.mp4", b"deep")
    (root / "sub" / "empty").mkdir()
    (root / "out-link").symlink_to(outside)
    (root / "in-link").symlink_to(root / "b.txt")
    (root / "sub" / "dir-link").symlink_to(tmp_path / "outside-dir")
    (root / "sub" / "loop").symlink_to(root)
    os.mkfifo(root / "fifo")
    os.mkfifo(root / "sub" / "fifo")

    files = SharedFolder(root).scan()

    assert [(f.name, f.size, f.sha256) for f in files] == [
        (".hidden", 1, sha(b"h")),
        ("a.txt", 0, sha(b"")),
        ("b.txt", 3, sha(b"bee")),
        ("movie.mp4.part", 4, sha(b"half")),  # a user's file like any other
        ("sub/deeper/aula1.mp4", 4, sha(b"deep")),
        ("sub/inner.txt", 5, sha(b"inner")),
    ]


def test_two_files_of_one_name_in_two_folders_are_both_shared(tmp_path: Path) -> None:
    for week in (1, 2):
        (tmp_path / f"semana{week}").mkdir()
        write_old(tmp_path / f"semana{week}" / "aula1.mp4", bytes([week]) * 10)
    folder = SharedFolder(tmp_path)

    files = folder.scan()

    assert [(f.name, f.sha256) for f in files] == [
        ("semana1/aula1.mp4", sha(bytes([1]) * 10)),
        ("semana2/aula1.mp4", sha(bytes([2]) * 10)),
    ]
    assert folder.get("semana2/aula1.mp4") == files[1]


def test_napshare_folders_are_never_shared_at_any_depth_or_case(tmp_path: Path) -> None:
    write_old(tmp_path / "ok.txt", b"ok")
    (tmp_path / "copy" / STATE_DIR / "identity").mkdir(parents=True)
    write_old(tmp_path / "copy" / STATE_DIR / "identity" / "key.pem", b"private")
    (tmp_path / ".NapShare").mkdir()
    write_old(tmp_path / ".NapShare" / "x", b"x")
    folder = SharedFolder(tmp_path)

    assert [f.name for f in folder.scan()] == ["ok.txt"]
    for name in (f"copy/{STATE_DIR}/identity/key.pem", ".NapShare/x"):
        with pytest.raises(InvalidNameError):
            folder.get(name)


def test_names_the_protocol_does_not_allow_are_not_shared(tmp_path: Path) -> None:
    write_old(tmp_path / "ok.txt", b"ok")
    write_old(tmp_path / "tab\there", b"x")
    write_old(tmp_path / "new\nline", b"x")
    (tmp_path / "back\\slash").mkdir()
    write_old(tmp_path / "back\\slash" / "inside.txt", b"x")
    write_old(tmp_path / ("x" * 255), b"long")
    os.mkdir(os.path.join(os.fsencode(tmp_path), b"bad\xffbytes"))
    write_old(Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"bad\xffbytes", b"f"))), b"x")

    names = [f.name for f in SharedFolder(tmp_path).scan()]

    assert names == ["ok.txt", "x" * 255]


def test_folders_deeper_than_the_limit_are_not_entered(tmp_path: Path) -> None:
    path = tmp_path
    for depth in range(MAX_DEPTH):
        write_old(path / "f", str(depth).encode())
        path = path / "d"
        path.mkdir()
    write_old(path / "f", b"too deep")

    names = [f.name for f in SharedFolder(tmp_path).scan()]

    assert len(names) == MAX_DEPTH
    assert max(name.count("/") for name in names) == MAX_DEPTH - 1


def test_a_folder_that_cannot_be_read_leaves_the_rest_shared(tmp_path: Path) -> None:
    write_old(tmp_path / "ok.txt", b"ok")
    (tmp_path / "locked").mkdir()
    write_old(tmp_path / "locked" / "f", b"x")
    (tmp_path / "locked").chmod(0)
    try:
        names = [f.name for f in SharedFolder(tmp_path).scan()]
    finally:
        (tmp_path / "locked").chmod(0o755)
    if os.geteuid() == 0:
        assert names == ["locked/f", "ok.txt"]  # root reads it anyway
    else:
        assert names == ["ok.txt"]


@pytest.mark.parametrize(
    "name",
    ["out-link", "in-link", "sub", "fifo", "missing", "sub/missing", "link-dir/x.txt", "b.txt/x"],
)
def test_get_refuses_what_is_not_shared(tmp_path: Path, name: str) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"secret")
    root = tmp_path / "share"
    root.mkdir()
    write_old(root / "b.txt", b"bee")
    write_old(root / "movie.mp4.part", b"half")
    (root / "sub").mkdir()
    (root / "out-link").symlink_to(outside)
    (root / "in-link").symlink_to(root / "b.txt")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.txt").write_bytes(b"secret")
    (root / "link-dir").symlink_to(tmp_path / "elsewhere")
    os.mkfifo(root / "fifo")
    folder = SharedFolder(root)
    folder.scan()

    with pytest.raises(NotSharedError):
        folder.get(name)


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "a/../../x",
        "/etc/passwd",
        "a//b",
        "a/",
        "./a",
        "a\\b",
        "a\x00b",
        "a\nb",
        "",
        ".",
        "..",
        "x" * 256,
        f"{STATE_DIR}/hashes.json",
    ],
)
def test_hostile_names_are_invalid(tmp_path: Path, name: str) -> None:
    folder = SharedFolder(tmp_path)
    for call in (folder.get, folder.open):
        with pytest.raises(InvalidNameError):
            call(name)


def test_open_gives_a_descriptor_of_the_file(tmp_path: Path) -> None:
    write_old(tmp_path / "f.bin", b"0123456789")
    fd, info = SharedFolder(tmp_path).open("f.bin")
    try:
        assert os.pread(fd, 4, 3) == b"3456"
        assert (info.name, info.size, info.sha256) == ("f.bin", 10, sha(b"0123456789"))
    finally:
        os.close(fd)


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_folder_errors(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "x"
    if kind == "file":
        root.write_bytes(b"")
    with pytest.raises(FolderError, match=str(root)):
        SharedFolder(root)


def test_hashes_are_cached_across_restarts(tmp_path: Path) -> None:
    for index in range(3):
        write_old(tmp_path / f"f{index}", bytes([index]) * 1000)
    first = SharedFolder(tmp_path)
    before = first.scan()
    assert first.hash_count == 3

    second = SharedFolder(tmp_path)
    assert second.scan() == before
    assert second.get("f1") == before[1]
    assert second.hash_count == 0
    assert json.loads((tmp_path / STATE_DIR / HASHES_FILE).read_text())["files"].keys() == {
        "f0",
        "f1",
        "f2",
    }


def test_a_scan_that_finds_nothing_new_writes_nothing(tmp_path: Path) -> None:
    write_old(tmp_path / "f", b"data")
    SharedFolder(tmp_path).scan()
    cache = tmp_path / STATE_DIR / HASHES_FILE
    written = cache.stat()

    folder = SharedFolder(tmp_path)
    folder.scan()
    folder.get("f")

    assert (cache.stat().st_ino, cache.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)


@pytest.mark.parametrize("change", ["size", "mtime"])
def test_a_changed_file_is_hashed_again(tmp_path: Path, change: str) -> None:
    write_old(tmp_path / "same", b"same")
    path = write_old(tmp_path / "f", b"first")
    SharedFolder(tmp_path).scan()
    if change == "size":
        write_old(path, b"first and more")
    else:
        path.write_bytes(b"FIRST")
        os.utime(path, ns=(OLD_NS + 1, OLD_NS + 1))

    again = SharedFolder(tmp_path)
    files = {f.name: f.sha256 for f in again.scan()}

    assert again.hash_count == 1
    assert files == {"same": sha(b"same"), "f": sha(path.read_bytes())}


def test_a_file_stamped_after_hashing_began_is_not_cached(tmp_path: Path) -> None:
    future = time.time_ns() + 3600 * 10**9
    (tmp_path / "f").write_bytes(b"busy")
    os.utime(tmp_path / "f", ns=(future, future))
    SharedFolder(tmp_path).scan()

    again = SharedFolder(tmp_path)
    again.scan()

    assert again.hash_count == 1


def test_removed_files_leave_the_cache(tmp_path: Path) -> None:
    write_old(tmp_path / "keep", b"k")
    write_old(tmp_path / "gone", b"g")
    SharedFolder(tmp_path).scan()
    (tmp_path / "gone").unlink()

    SharedFolder(tmp_path).scan()

    assert json.loads((tmp_path / STATE_DIR / HASHES_FILE).read_text())["files"].keys() == {"keep"}


def test_remember_records_a_verified_download_without_hashing(tmp_path: Path) -> None:
    folder = SharedFolder(tmp_path)
    (tmp_path / "new.bin").write_bytes(b"downloaded")

    root = hashlib.sha256(b"downloaded").hexdigest()  # one block: the root is its hash
    info = folder.remember("new.bin", Digests(sha(b"downloaded"), root, b""))

    assert (info.name, info.size, info.sha256, info.pieces_root) == (
        "new.bin",
        10,
        sha(b"downloaded"),
        root,
    )
    later = SharedFolder(tmp_path)
    assert later.get("new.bin") == info
    assert folder.hash_count == later.hash_count == 0


def test_remember_checks_its_arguments(tmp_path: Path) -> None:
    folder = SharedFolder(tmp_path)
    (tmp_path / "d").mkdir()
    with pytest.raises(InvalidNameError):
        folder.remember("a/../b", Digests("0" * 64, "", b""))
    with pytest.raises(InvalidNameError):
        folder.remember("x", Digests("not a digest", "", b""))
    with pytest.raises(NotSharedError):
        folder.remember("missing", Digests("0" * 64, "", b""))
    with pytest.raises(NotSharedError):
        folder.remember("d", Digests("0" * 64, "", b""))


def test_corrupt_cache_is_ignored(tmp_path: Path) -> None:
    write_old(tmp_path / "f", b"data")
    (tmp_path / STATE_DIR).mkdir()
    (tmp_path / STATE_DIR / HASHES_FILE).write_text('{"version": 1, "files": {"f": 3}}')

    folder = SharedFolder(tmp_path)

    assert folder.get("f").sha256 == sha(b"data")
    assert folder.hash_count == 1


def test_a_forged_cache_digest_is_rejected(tmp_path: Path) -> None:
    write_old(tmp_path / "f", b"data")
    entry = {"size": 4, "mtime_ns": OLD_NS, "sha256": "not hex"}
    (tmp_path / STATE_DIR).mkdir()
    (tmp_path / STATE_DIR / HASHES_FILE).write_text(
        json.dumps({"version": 1, "files": {"f": entry}})
    )

    assert SharedFolder(tmp_path).get("f").sha256 == sha(b"data")


def test_cache_symlinks_never_lead_outside(tmp_path: Path) -> None:
    outside_dir = tmp_path / "outside-dir"
    outside_dir.mkdir()
    outside_file = tmp_path / "outside-file"
    outside_file.write_text('{"version": 1, "files": {}}')
    root = tmp_path / "share"
    root.mkdir()
    write_old(root / "f", b"data")
    (root / STATE_DIR).symlink_to(outside_dir)

    SharedFolder(root).scan()

    assert list(outside_dir.iterdir()) == []
    (root / STATE_DIR).unlink()
    (root / STATE_DIR).mkdir()
    (root / STATE_DIR / HASHES_FILE).symlink_to(outside_file)

    SharedFolder(root).scan()

    assert outside_file.read_text() == '{"version": 1, "files": {}}'
    assert not (root / STATE_DIR / HASHES_FILE).is_symlink()
    assert sorted(p.name for p in (root / STATE_DIR).iterdir()) == [HASHES_FILE]


def test_digests_of_hashes_exactly_the_size_it_was_given(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40000  # larger than the hash buffer
    (tmp_path / "f").write_bytes(data)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        assert digests_of(fd, len(data)).sha256 == sha(data)
        assert digests_of(fd, 1000).sha256 == sha(data[:1000])
        with pytest.raises(EOFError):
            digests_of(fd, len(data) + 1)
    finally:
        os.close(fd)


def test_one_read_gives_the_sha256_the_root_and_the_layer_which_are_cached(
    tmp_path: Path,
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    write_old(tmp_path / "f", data)
    write_old(tmp_path / "small", b"abc")
    tree = merkle.TreeBuilder(len(data))
    tree.update(data)
    root = tree.finish().hex()
    folder = SharedFolder(tmp_path)

    info = folder.get("f")
    assert (info.sha256, info.pieces_root) == (sha(data), root)
    assert folder.hash_count == 1
    assert folder.piece_layer("f") == (info, b"".join(tree.layer))
    assert folder.piece_layer("small")[1] == hashlib.sha256(b"abc").digest()
    assert folder.hash_count == 2  # the layer was kept, not computed again

    later = SharedFolder(tmp_path)
    assert later.get("f") == info
    assert later.piece_layer("f")[1] == b"".join(tree.layer)
    assert later.hash_count == 0
    cache = json.loads((tmp_path / STATE_DIR / HASHES_FILE).read_text())
    assert cache["version"] == 2
    assert cache["files"]["f"]["pieces_root"] == root


def test_a_damaged_layer_file_is_computed_again(tmp_path: Path) -> None:
    data = os.urandom(2 * 1024 * 1024 + 1)
    write_old(tmp_path / "f", data)
    folder = SharedFolder(tmp_path)
    info, layer = folder.piece_layer("f")
    stored = tmp_path / STATE_DIR / LAYERS_DIR / info.pieces_root
    stored.write_bytes(bytes(len(layer)))

    again = SharedFolder(tmp_path)
    assert again.piece_layer("f") == (info, layer)
    assert again.hash_count == 1
    assert stored.read_bytes() == layer


def test_nested_files_keep_their_hashes_and_layers_across_restarts(tmp_path: Path) -> None:
    data = os.urandom(2 * 1024 * 1024 + 7)
    (tmp_path / "curso" / "semana1").mkdir(parents=True)
    write_old(tmp_path / "curso" / "semana1" / "aula1.mp4", data)
    first = SharedFolder(tmp_path)
    [info] = first.scan()
    _, layer = first.piece_layer(info.name)

    later = SharedFolder(tmp_path)

    assert later.scan() == [info]
    assert later.piece_layer("curso/semana1/aula1.mp4") == (info, layer)
    assert later.hash_count == 0
    cache = json.loads((tmp_path / STATE_DIR / HASHES_FILE).read_text())
    assert list(cache["files"]) == ["curso/semana1/aula1.mp4"]


def test_remember_records_a_nested_download(tmp_path: Path) -> None:
    (tmp_path / "semana1").mkdir()
    (tmp_path / "semana1" / "new.bin").write_bytes(b"downloaded")
    root = hashlib.sha256(b"downloaded").hexdigest()

    info = SharedFolder(tmp_path).remember(
        "semana1/new.bin", Digests(sha(b"downloaded"), root, b"")
    )

    later = SharedFolder(tmp_path)
    assert later.get("semana1/new.bin") == info
    assert later.hash_count == 0


def test_has_tells_whether_a_name_is_taken_or_blocked(tmp_path: Path) -> None:
    (tmp_path / "semana1").mkdir()
    write_old(tmp_path / "semana1" / "aula1.mp4", b"x")
    write_old(tmp_path / "file", b"x")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    folder = SharedFolder(tmp_path)

    assert folder.has("semana1/aula1.mp4")
    assert folder.has("semana1")
    assert not folder.has("semana1/aula2.mp4")
    assert not folder.has("semana2/aula1.mp4")
    assert folder.has("file/x")  # a file where a folder should be
    assert folder.has("link/x")  # a symlink where a folder should be
    with pytest.raises(InvalidNameError):
        folder.has("../x")
