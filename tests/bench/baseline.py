"""Another revision of napshare, built outside the repository, to run beside the current code:
both its tracker and its peers, with the same interpreter and dependencies.
"""

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.procs import PYTHON, ROOT, BenchError, child_env


@dataclass(frozen=True)
class Code:
    """A napshare to run: how to start its tracker and its peer command, and with what env."""

    label: str
    env: dict[str, str] = field(default_factory=dict)
    tracker: tuple[str, ...] = (PYTHON, "-m", "napshare.tracker")
    peer: tuple[str, ...] = (PYTHON, "-m", "napshare.peer")


# This checkout, started the way a build is (python -m), so that both start alike.
CURRENT = Code("current")
# Each revision built in this run, by full commit id: (its folder, its Code).
_BUILDS: dict[str, tuple[Path, Code]] = {}


def _git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, check=False)


def build(revision: str) -> Code:
    """napshare at `revision`, built once per run into a temporary folder (git archive, then
    pip install --target, without dependencies: the .venv's are used); BenchError if it fails.
    """
    found = _git("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    if found.returncode != 0:
        raise BenchError(f"{revision!r} is not a commit of {ROOT}")
    commit = found.stdout.decode().strip()
    if commit in _BUILDS:
        return _BUILDS[commit][1]
    folder = Path(tempfile.mkdtemp(prefix=f"napshare-build-{commit[:10]}-"))
    source, site = folder / "source", folder / "site"
    source.mkdir()
    try:
        archive = _git("archive", "--format=tar", commit)
        if archive.returncode != 0:
            raise BenchError(f"git archive {commit}: {archive.stderr.decode()[-500:]}")
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
        pip = [PYTHON, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
        pip += ["--no-index", "--no-compile", "--disable-pip-version-check"]
        installed = subprocess.run(
            [*pip, "--target", str(site), str(source)],
            capture_output=True,
            text=True,
            check=False,
        )
        if installed.returncode != 0:
            raise BenchError(f"cannot build {commit}: {installed.stderr[-1500:]}")
        code = Code(revision, {"PYTHONPATH": str(site)})
        _check_imports_from(code, site)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    _BUILDS[commit] = (folder, code)
    return code


def _check_imports_from(code: Code, site: Path) -> None:
    """BenchError unless `code`'s env makes napshare come from `site` (and not this checkout)."""
    probe = "import importlib.util as u; print(u.find_spec('napshare.peer').origin)"
    answer = subprocess.run(
        [PYTHON, "-c", probe],
        cwd=ROOT,
        env=child_env(code.env),
        capture_output=True,
        text=True,
        check=False,
    )
    if answer.returncode != 0 or not Path(answer.stdout.strip()).is_relative_to(site):
        output = (answer.stdout + answer.stderr)[-800:]
        raise BenchError(f"the build in {site} does not run: {output}")


def remove_builds() -> None:
    """Delete every build of this run."""
    for folder, _ in _BUILDS.values():
        shutil.rmtree(folder, ignore_errors=True)
    _BUILDS.clear()
