"""make check-breaking (run by make lint) fails on a renumbered field, committed or not."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.files import ROOT

BUF_MODULES = ROOT / ".tools" / "node_modules"
PROTO = Path("protos/napshare/v1/file_info.proto")
DELETED = 'Previously present field "1" with name "name" on message "FileInfo" was deleted.'


def git(clone: Path, *args: str) -> str:
    """Run git in the clone with a fixed identity; return stdout."""
    done = subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", *args],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A clone of this repository's HEAD with the working tree's Makefile and buf."""
    if not (BUF_MODULES / ".bin" / "buf").exists():
        pytest.fail(f"{BUF_MODULES}/.bin/buf is missing: run make lint (it installs buf)")
    target = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(target)], check=True, timeout=120)
    # The clone's HEAD is its main, as on main itself, also when this tree is on another
    # branch (a clone has a local branch only for the one checked out here).
    git(target, "checkout", "-qB", "main")
    for name in ("Makefile", "buf.yaml"):
        shutil.copy(ROOT / name, target / name)
    if git(target, "status", "--porcelain"):
        git(target, "commit", "-qam", "this tree's Makefile")
    (target / ".tools").mkdir()
    (target / ".tools" / "node_modules").symlink_to(BUF_MODULES)
    return target


def renumber(clone: Path) -> None:
    """Give FileInfo.name the number 9 instead of 1: a break for every published client."""
    path = clone / PROTO
    text, count = re.subn(r"string name = 1;", "string name = 9;", path.read_text(), count=1)
    assert count == 1
    path.write_text(text)


def check_breaking(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run make check-breaking in the clone."""
    return subprocess.run(
        ["make", "--no-print-directory", "check-breaking", *args],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_unchanged_protos_pass(clone: Path) -> None:
    done = check_breaking(clone)

    assert done.returncode == 0, done.stdout + done.stderr


def test_an_uncommitted_renumbered_field_fails(clone: Path) -> None:
    renumber(clone)

    done = check_breaking(clone)

    assert done.returncode != 0
    assert DELETED in done.stdout + done.stderr


def test_a_committed_renumbered_field_fails(clone: Path) -> None:
    renumber(clone)
    git(clone, "commit", "-qam", "renumber FileInfo.name")

    done = check_breaking(clone)

    assert done.returncode != 0
    assert DELETED in done.stdout + done.stderr


def test_breaking_against_names_an_older_ref(clone: Path) -> None:
    git(clone, "tag", "v-test")
    renumber(clone)
    git(clone, "commit", "-qam", "renumber FileInfo.name")
    path = clone / PROTO
    path.write_text(path.read_text() + "// A later proto change that breaks nothing.\n")
    git(clone, "commit", "-qam", "a comment")

    latest_only = check_breaking(clone)
    done = check_breaking(clone, "BREAKING_AGAINST=v-test")

    assert latest_only.returncode == 0, "only the latest proto change is checked by default"
    assert done.returncode != 0
    assert DELETED in done.stdout + done.stderr


def test_a_branch_is_checked_against_where_it_left_main(clone: Path) -> None:
    git(clone, "checkout", "-qb", "feature")
    renumber(clone)
    git(clone, "commit", "-qam", "renumber FileInfo.name")
    path = clone / PROTO
    path.write_text(path.read_text() + "// A later proto change that breaks nothing.\n")
    git(clone, "commit", "-qam", "a comment")

    done = check_breaking(clone)

    assert done.returncode != 0
    assert DELETED in done.stdout + done.stderr


def test_a_shallow_clone_fails_and_says_why(clone: Path, tmp_path: Path) -> None:
    renumber(clone)
    git(clone, "commit", "-qam", "renumber FileInfo.name")
    shallow = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{clone}", str(shallow)],
        check=True,
        timeout=120,
    )
    (shallow / ".tools").mkdir()
    (shallow / ".tools" / "node_modules").symlink_to(BUF_MODULES)

    done = check_breaking(shallow)
    pinned = check_breaking(shallow, "BREAKING_AGAINST=HEAD")

    assert done.returncode != 0
    assert "this clone is shallow" in done.stdout
    assert "git fetch --unshallow" in done.stdout
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
