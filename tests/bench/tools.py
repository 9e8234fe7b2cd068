"""The outside programs the benchmarks race: found on PATH, else installed from Debian's
packages when the bench runs as root, else reported missing so their rows are left out.
"""

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence

# Each program and the Debian package that has it.
PACKAGES = {"curl": "curl", "openssl": "openssl", "aria2c": "aria2", "rsync": "rsync"}


def _install(packages: list[str]) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    command = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    print(f"installing {' '.join(packages)} with apt-get", file=sys.stderr, flush=True)
    # A fresh machine has no package lists yet: update once if the first try finds nothing.
    for attempt in ("install", "update"):
        if attempt == "update":
            subprocess.run(["apt-get", "update"], env=env, check=False, capture_output=True)
        if subprocess.run(command, env=env, check=False, capture_output=True).returncode == 0:
            return


def ensure(programs: Sequence[str], *, install: bool) -> list[str]:
    """Those of `programs` that are still missing after installing them (only when `install`
    and running as root); each missing one said on stderr.
    """
    missing = [p for p in programs if shutil.which(p) is None]
    if missing and install and shutil.which("apt-get") and os.geteuid() == 0:
        _install(sorted({PACKAGES[p] for p in missing}))
        missing = [p for p in missing if shutil.which(p) is None]
    for program in missing:
        how = "" if os.geteuid() == 0 else "; run as root to have the bench install it"
        print(
            f"skipping what needs {program} (Debian package {PACKAGES[program]}){how}",
            file=sys.stderr,
            flush=True,
        )
    return missing
