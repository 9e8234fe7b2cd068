"""A shared folder tree of the folder tests (a course in weeks, and a file beside it), and the
files a folder holds, by their paths.
"""

import random
from pathlib import Path

from napshare.peer.folder.layout import STATE_DIR

from tests.support.files import MIB

TREE = {
    "curso/semana1/aula1.mp4": random.Random(1).randbytes(3 * MIB + 17),
    "curso/semana1/aula2.mp4": random.Random(2).randbytes(5 * MIB + 3),
    "curso/semana2/aula1.mp4": random.Random(3).randbytes(1000),
    "curso/vazio.txt": b"",
    "notas.txt": b"notas\n",
}
COURSE = sorted(name for name in TREE if name.startswith("curso/"))


def make_tree(root: Path) -> Path:
    """Write TREE under `root`; `root`."""
    for name, data in TREE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def files_under(root: Path) -> dict[str, bytes]:
    """Every file under `root` but napshare's own, by its path from `root`."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and STATE_DIR not in path.relative_to(root).parts
    }
