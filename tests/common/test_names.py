"""The rules for names on the wire: relative paths that can never leave their folder."""

import pytest
from napshare.common import reasons
from napshare.common.names import (
    MAX_DEPTH,
    MAX_NAME_BYTES,
    MAX_SEGMENT_BYTES,
    InvalidNameError,
    check_file_name,
    check_folder,
)


@pytest.mark.parametrize(
    "name",
    [
        "aula1.mp4",
        "semana1/aula1.mp4",
        "curso/semana 1/Aula 1 - Redes.mp4",
        ".hidden",
        "a/.hidden/b",
        "...",
        "a/.../b",
        "日本/語.txt",
        "x" * MAX_SEGMENT_BYTES,
        "/".join(["d"] * MAX_DEPTH),
        "/".join(["x" * 200] * 5)[:MAX_NAME_BYTES],
        "napshare/x",
        ".napshare2/x",
    ],
)
def test_relative_paths_are_valid(name: str) -> None:
    assert check_file_name(name) == name


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("", "empty"),
        ("../x", "'..' segment"),
        ("a/../../x", "'..' segment"),
        ("a/..", "'..' segment"),
        ("./a", "'.' segment"),
        (".", "'.' segment"),
        ("/etc/passwd", "absolute path"),
        ("/", "absolute path"),
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        ("a\\b", "'\\'"),
        ("..\\x", "'\\'"),
        ("a\x00b", "control character (U+0000)"),
        ("a\nb", "control character (U+000A)"),
        ("a\x7fb", "control character (U+007F)"),
        ("a\x9bb", "control character (U+009B)"),
        ("x" * (MAX_SEGMENT_BYTES + 1), f"longer than {MAX_SEGMENT_BYTES}"),
        ("é" * 128, f"longer than {MAX_SEGMENT_BYTES}"),
        ("/".join(["x" * 200] * 6), f"longer than {MAX_NAME_BYTES}"),
        ("/".join(["d"] * (MAX_DEPTH + 1)), f"more than {MAX_DEPTH} folders deep"),
        (".napshare/identity/key.pem", "napshare's own folder"),
        ("copy/.NAPSHARE/hashes.json", "napshare's own folder"),
        (".napshare", "napshare's own folder"),
        ("bad\udcffbytes", "not valid UTF-8"),
    ],
)
def test_names_that_could_leave_their_folder_are_invalid_and_say_why(name: str, says: str) -> None:
    with pytest.raises(InvalidNameError) as caught:
        check_file_name(name)
    assert caught.value.reason == reasons.NAME_INVALID
    assert says in str(caught.value)


@pytest.mark.parametrize(
    ("folder", "prefix"),
    [("", ""), ("semana1", "semana1/"), ("semana1/", "semana1/"), ("a/b/", "a/b/")],
)
def test_a_folder_is_the_prefix_of_its_names(folder: str, prefix: str) -> None:
    assert check_folder(folder) == prefix


@pytest.mark.parametrize("folder", ["/", "../", "a//", "a/../", "/etc"])
def test_a_folder_follows_the_name_rules(folder: str) -> None:
    with pytest.raises(InvalidNameError):
        check_folder(folder)
