"""Building napshare (what `make install` and `pip install .` run) warns of no folder that
setuptools would take for a package missing from the configuration: the locale data is
package data, and nothing else of the tree is.
"""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = "import setuptools.build_meta as backend, sys; backend.build_wheel(sys.argv[1])"


def test_building_the_wheel_warns_of_no_package_missing(tmp_path: Path) -> None:
    # setuptools writes build/ and *.egg-info beside the sources: build from a copy.
    source = tmp_path / "napshare"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info"))
    out = tmp_path / "wheel"
    out.mkdir()

    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", BUILD, str(out)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "is absent from the `packages` configuration" not in done.stdout + done.stderr
    (wheel,) = out.glob("napshare-*.whl")
    assert (
        "napshare/common/locale/pt_BR/LC_MESSAGES/napshare.mo" in zipfile.ZipFile(wheel).namelist()
    )
