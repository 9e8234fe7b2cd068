"""What `pip install napshare` puts on a machine: one top-level name, working console scripts."""

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.support.files import ROOT

LIST_TOP_LEVEL = "import pkgutil; print('\\n'.join(sorted(m.name for m in pkgutil.iter_modules())))"


def run(*args: str | Path, cwd: Path = ROOT) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # setuptools writes build/ and *.egg-info beside the sources: build from a copy.
    source = tmp_path_factory.mktemp("source") / "napshare"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info"))
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
        "--wheel-dir", out, source)  # fmt: skip
    (built,) = out.glob("napshare-*.whl")
    return built


def test_the_wheel_holds_only_the_napshare_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"napshare", wheel.name.split("-py")[0] + ".dist-info"}
    for module in (
        "napshare/__init__.py",
        "napshare/py.typed",
        "napshare/v1/tracker_pb2.py",
        "napshare/v1/tracker_pb2.pyi",
        "napshare/common/locale/pt_BR/LC_MESSAGES/napshare.mo",
        "napshare/tracker/cli.py",
        "napshare/peer/ui/cli.py",
        "napshare/relay/cli.py",
    ):
        assert module in names
    # Every source module of the repository's packages made it into the wheel.
    for folder in ("common", "tracker", "peer", "relay"):
        for source in (ROOT / folder).rglob("*.py"):
            assert f"napshare/{source.relative_to(ROOT)}" in names, source


def test_a_clean_venv_gains_only_napshare_and_its_commands_work(
    wheel: Path, tmp_path: Path
) -> None:
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    before = set(run(python, "-c", LIST_TOP_LEVEL, cwd=tmp_path).split())
    pip = (python, "-m", "pip")
    # The runtime dependencies at their locked versions, then napshare alone on top of them.
    run(*pip, "install", "--quiet", "--constraint", ROOT / "requirements-dev.lock", wheel)
    run(*pip, "uninstall", "--quiet", "--yes", "napshare")
    with_deps = set(run(python, "-c", LIST_TOP_LEVEL, cwd=tmp_path).split())
    run(*pip, "install", "--quiet", "--no-deps", wheel)
    after = set(run(python, "-c", LIST_TOP_LEVEL, cwd=tmp_path).split())
    assert after - with_deps == {"napshare"}
    assert not {"common", "peer", "tracker", "relay"} & (after - before)
    assert "napshare tracker" in run(env / "bin" / "napshare-tracker", "--help", cwd=tmp_path)
    assert "download" in run(env / "bin" / "napshare-peer", "--help", cwd=tmp_path)
    assert "napshare relay" in run(env / "bin" / "napshare-relay", "--help", cwd=tmp_path)
    run(python, "-c", "import napshare.peer.node, napshare.tracker.server", cwd=tmp_path)
