"""Every recorded console session of README.md and docs/ replays as written.

Each replay runs in a network namespace of its own (so the servers listen on 1099 and 8776, as
the sessions show, and no port of this machine is touched), against servers started as a user
starts them: TLS, default flags. tests/support/sessions.py says how output is compared and
which values may differ. A session the replay does not reproduce is a bug in the doc or in
the code: fix whichever is wrong. To record the docs anew from a real run:

    NAPSHARE_RECORD_SESSIONS=1 .venv/bin/pytest tests/system/test_documented_sessions.py

(`=fresh` instead of `=1` writes every value of the new run, where the doc's still hold too.)

Two sessions of docs/clients.md replay more loosely, for they build or break the repository
itself rather than talk to servers. The TypeScript one replays as written but for its `make
ts-client`, which `make test` ran already (the client is built with tsc, in a copy, and run
against a tracker and a peer as the doc says). The `make lint` one is checked by
test_breaking_change_session_is_what_buf_says.

Recording keeps the doc's lines where they still hold; when the output changed, the command's
whole output is written from the run, with the values the doc shows elsewhere written as it
shows them.
"""

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import netns
from tests.support.sessions import (
    ROOT,
    Replay,
    Setup,
    all_docs,
    replay,
    rewrite,
    sessions_in,
)

RECORD = os.environ.get("NAPSHARE_RECORD_SESSIONS", "") in ("1", "fresh")
FRESH = os.environ.get("NAPSHARE_RECORD_SESSIONS") == "fresh"

TRACKER = Setup(".venv/bin/napshare-tracker", ready_lines=3)
PEER = Setup(
    ".venv/bin/napshare-peer serve --dir shared --port 8776 --host 127.0.0.1 --no-menu",
    ready_lines=4,
)
VIDEO = random.Random(1099).randbytes(5_000_000)  # the 5 MB aula1.mp4 of the sessions
LAYERED = random.Random(8776).randbytes(5 * 1024 * 1024 // 2)  # aula2.mp4: three pieces
BUSY = random.Random(4).randbytes(8 * 1024 * 1024)  # aula2.mp4 of the README's queue session
COURSE = {  # the course in folders that the README's peer shares beside aula1.mp4
    "~/Videos/curso/semana1/aula1.mp4": random.Random(1).randbytes(2_500_000),
    "~/Videos/curso/semana1/aula2.mp4": random.Random(2).randbytes(1_500_000),
    "~/Videos/curso/semana2/aula1.mp4": random.Random(3).randbytes(3_000_000),
}

REPLAYS = [
    Replay(
        "README.md",
        [0, 1, 2, 3],
        files={"~/Videos/aula1.mp4": VIDEO, **COURSE},
        terminal={1},
        ready_lines={0: 3, 1: 6},
    ),
    Replay(
        "README.md",
        [4],
        files={"~/Videos/aula2.mp4": BUSY},
        setup=[
            TRACKER,
            Setup(
                ".venv/bin/napshare-peer serve --dir ~/Videos --max-uploads 1 --port 8776 "
                "--host 127.0.0.1 --no-menu",
                ready_lines=4,
            ),
        ],
    ),
    Replay("docs/clients.md", [0, 1], ready_lines={0: 3}),
    Replay(
        "docs/clients.md",
        [2],
        files={"shared/hello.txt": b"hello, napshare\n", "shared/aula2.mp4": LAYERED},
        setup=[TRACKER, PEER],
    ),
    Replay("docs/clients.md", [3], setup=[TRACKER]),
    Replay(
        "docs/clients.md",
        [4],
        files={"shared/aula1.mp4": VIDEO, "shared/semana1/notas.txt": b"notas\n"},
        setup=[TRACKER, PEER],
        already_done=("make ts-client",),
    ),
    Replay("docs/clients.md", [5], setup=[TRACKER]),
    Replay("docs/operations.md", [0, 1, 2], ready_lines={0: 3, 1: 3}),
    Replay(
        "docs/operations.md",
        [3, 4, 5],
        files={"shared/aula1.mp4": VIDEO},
        ready_lines={3: 4, 4: 5},
    ),
]
LOOSE = {("docs/clients.md", 6)}


def test_every_session_in_the_docs_is_replayed() -> None:
    replayed = {(r.doc, index) for r in REPLAYS for index in r.sessions} | LOOSE
    found = {
        (str(doc.relative_to(ROOT)), index)
        for doc in all_docs()
        for index, _ in enumerate(sessions_in(doc))
    }
    assert found == replayed


@pytest.mark.parametrize("spec", REPLAYS, ids=lambda spec: spec.id)
def test_session_replays_as_written(spec: Replay, tmp_path: Path) -> None:
    why_not = netns.missing()
    if why_not is not None:
        pytest.skip(f"replaying the documented sessions: {why_not}")
    replayed = replay(spec, tmp_path, record=RECORD, fresh=FRESH)
    if RECORD:
        rewrite(spec, replayed)


def test_breaking_change_session_is_what_buf_says(tmp_path: Path) -> None:
    """The `make lint` session of docs/clients.md, replayed loosely: `make lint` would lint
    and type-check a whole clone first, so the clone runs its last step, `make
    check-breaking`, on the renumbered field the session describes. The lines the doc shows
    after its `...` must be that output, exactly: the buf command, its verdict and make's line
    (run one make deep, as `lint` runs it); and the line of `lint` that fails must be the line
    of the Makefile's lint recipe that runs check-breaking.
    """
    [session] = [s for n, s in enumerate(sessions_in(ROOT / "docs/clients.md")) if n == 6]
    [command] = session.commands
    assert command.text == "make lint"
    assert command.expected[0] == "..."
    *shown, sub_make, make = command.expected[1:]
    buf = ROOT / ".tools" / "node_modules"
    if not (buf / ".bin" / "buf").exists():
        pytest.fail(f"{buf}/.bin/buf is missing: run make install (it installs buf)")
    clone = tmp_path / "napshare"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    for name in ("Makefile", "buf.yaml", "protos"):  # as in this tree, committed
        if (ROOT / name).is_dir():
            shutil.rmtree(clone / name)
            shutil.copytree(ROOT / name, clone / name)
        else:
            shutil.copy(ROOT / name, clone / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run([*git, "add", "-A"], cwd=clone, check=True)
    subprocess.run([*git, "commit", "-qm", "this tree", "--allow-empty"], cwd=clone, check=True)
    (clone / ".tools").mkdir()
    (clone / ".tools" / "node_modules").symlink_to(buf)
    proto = clone / "protos/napshare/v1/file_info.proto"
    text = proto.read_text()
    assert text.count("string name = 1;") == 1
    proto.write_text(text.replace("string name = 1;", "string name = 9;"))

    # As `make lint` runs it: one make deep (make[1]), and not inside this run's own make.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    done = subprocess.run(
        ["make", "--no-print-directory", "check-breaking"],
        cwd=clone,
        env={**env, "MAKELEVEL": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    output = (done.stdout + done.stderr).splitlines()
    assert done.returncode != 0
    for line in [*shown, sub_make]:
        assert line in output, f"{line!r} is not in what make printed:\n{done.stdout}{done.stderr}"
    assert make == f"make: *** [Makefile:{recipe_line('lint', 'check-breaking')}: lint] Error 2"


def recipe_line(target: str, text: str) -> int:
    r"""The line GNU make names for the command of `target`'s recipe that holds `text`: its
    first command's line, plus one for each command before it (a command continued with `\`
    counts once).
    """
    lines = (ROOT / "Makefile").read_text().splitlines()
    first = lines.index(next(line for line in lines if line.startswith(f"{target}:"))) + 1
    commands = 0
    continued = False
    for line in lines[first:]:
        if not line.startswith("\t"):
            break
        if text in line and not continued:
            return first + 1 + commands
        continued = line.endswith("\\")
        commands += not continued
    raise AssertionError(f"no command of {target} holds {text!r}")
