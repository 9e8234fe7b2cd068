"""The note of a download in progress (peer/downloading/notes.py), on real files: written and
read back, its bitmap, and what is no note (a symlink, bad JSON, a document of another shape).
"""

import os
from pathlib import Path

import pytest
from napshare.peer.downloading.notes import (
    PARTIAL_PATH,
    Note,
    bitmap,
    load_note,
    noted_version,
    pieces_of,
    remove_note,
    save_note,
)
from napshare.peer.folder.layout import NOTE_SUFFIX, partial_key


@pytest.fixture
def partial(tmp_path: Path) -> Path:
    folder = tmp_path.joinpath(*PARTIAL_PATH)
    folder.mkdir(parents=True)
    return folder


def test_a_saved_note_reads_back_and_tells_the_version_without_the_part(
    tmp_path: Path, partial: Path
) -> None:
    note = Note("semana1/aula1.mp4", 10, "ab" * 32, ["127.0.0.1:8776"], "cd" * 32, 0, "gA==")
    fd = os.open(partial, os.O_RDONLY | os.O_DIRECTORY)
    try:
        name = partial_key(note.name) + NOTE_SUFFIX
        save_note(fd, name, note)
        assert load_note(fd, name, "the part") == note
        assert noted_version(tmp_path, note.name) == (10, "ab" * 32, "cd" * 32)
        remove_note(fd, name)
        remove_note(fd, name)  # gone already: nothing to do
        assert load_note(fd, name, "the part") is None
        assert noted_version(tmp_path, note.name) is None
    finally:
        os.close(fd)


@pytest.mark.parametrize("content", [b"{not json", b'{"name": "a"}', b"[1, 2]", b'"text"'])
def test_what_is_not_a_note_is_no_note(
    partial: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    (partial / "x.json").write_bytes(content)
    fd = os.open(partial, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert load_note(fd, "x.json", "x.part") is None
    finally:
        os.close(fd)
    assert "ignoring the note of x.part" in caplog.text


def test_a_note_that_is_a_symlink_is_not_followed(tmp_path: Path, partial: Path) -> None:
    elsewhere = tmp_path / "planted.json"
    elsewhere.write_text('{"name": "a", "size": 1, "sha256": "", "sources": []}')
    name = partial_key("a") + NOTE_SUFFIX
    (partial / name).symlink_to(elsewhere)
    fd = os.open(partial, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert load_note(fd, name, "a.part") is None
    finally:
        os.close(fd)
    assert noted_version(tmp_path, "a") is None


def test_the_bitmap_keeps_each_piece_flag() -> None:
    done = bytes([1, 0, 0, 1, 1, 0, 1, 0, 1, 1])
    flags = pieces_of(bitmap(done))
    assert flags[: len(done)] == bytearray(done)
    assert not any(flags[len(done) :])  # padding bits are not pieces
    assert pieces_of("not base64!") == bytearray()
