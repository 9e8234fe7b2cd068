"""replace_at: whole files, owner-only, never through a symlink, nothing left on failure."""

import os
from pathlib import Path

import pytest
from napshare.common.files import replace_at


def _dir_fd(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY)


def test_the_file_holds_exactly_the_data_owner_only(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_bytes(b"old and longer than the new data")
    fd = _dir_fd(tmp_path)
    try:
        replace_at(fd, "state.json", b"new")
    finally:
        os.close(fd)
    assert (tmp_path / "state.json").read_bytes() == b"new"
    assert (tmp_path / "state.json").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_symlink_under_the_name_is_replaced_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"the user's file")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "state.json").symlink_to(outside)
    fd = _dir_fd(folder)
    try:
        replace_at(fd, "state.json", b"new")
    finally:
        os.close(fd)
    assert outside.read_bytes() == b"the user's file"
    assert not (folder / "state.json").is_symlink()
    assert (folder / "state.json").read_bytes() == b"new"


def test_a_failed_replace_leaves_the_name_as_it_was_and_no_temporary_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "state.json").mkdir()  # a folder cannot be replaced by a file
    fd = _dir_fd(tmp_path)
    try:
        with pytest.raises(IsADirectoryError):
            replace_at(fd, "state.json", b"new", sync=False)
    finally:
        os.close(fd)
    assert (tmp_path / "state.json").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
