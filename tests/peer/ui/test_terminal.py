"""Names from the network reach the terminal escaped: no raw control character, no forged line."""

import os
import re

from tests.support.downloads import Swarm
from tests.support.peers import run_peer

FORGED = "Peer 6.6.6.6:1 added with files x"
# Names with control characters are not valid names (common/names.py): never shared, never
# sent. What a name may still hold that would move a terminal's cursor: line separators.
REFUSED = (
    f"evil\n{FORGED}",
    "evil\x1b[2J\x1b[H.txt",
    "evil\rwiped.txt",
    "evil\x07\x08\x7f\x9b.txt",  # BEL, BS, DEL, the C1 CSI
)
HOSTILE = (
    f"evil\u2028{FORGED}",  # a line separator
    "evil\u2029wiped.txt",  # a paragraph separator
)
# Every character that moves the cursor, starts an escape sequence or ends a line.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _check(text: str, *, tabs: bool = False) -> None:
    """No raw control character (but newlines, and tabs where asked) and no forged line."""
    assert not RAW.search(text), text
    if not tabs:
        assert "\t" not in text, text
    assert not any(line.startswith(FORGED) for line in text.splitlines()), text


def test_names_from_the_network_reach_no_terminal_raw(swarm: Swarm) -> None:
    folder = swarm.folder("hostile")
    for name in (*HOSTILE, *REFUSED):
        (folder / name).write_bytes(os.urandom(1000))
    plain = swarm.plain(folder)
    shared, port = plain.folder, plain.port
    files = shared.scan()
    assert sorted(f.name for f in files) == sorted(HOSTILE)  # the refused stay unshared
    swarm.tracker.client.join("127.0.0.1", port, files)

    listing = run_peer("search", "--tracker", swarm.tracker.address, "--query", "evil")
    assert listing.returncode == 0, listing.stderr
    _check(listing.stdout, tabs=True)
    _check(listing.stderr)
    assert "evil\\u2029wiped.txt" in listing.stdout
    assert len(listing.stdout.splitlines()) == len(HOSTILE)  # one line each

    for name in HOSTILE:
        exact = run_peer("search", "--tracker", swarm.tracker.address, name)
        assert exact.returncode == 0, exact.stderr
        _check(exact.stdout)
        _check(exact.stderr)

    target = swarm.folder("downloads")
    for name in HOSTILE[:2]:
        fetched = run_peer(
            "download", "--tracker", swarm.tracker.address, "--dir", str(target), "--log-level",
            "info", name,
        )  # fmt: skip
        assert fetched.returncode == 0, fetched.stderr
        _check(fetched.stdout)
        _check(fetched.stderr)
        assert "downloaded successfully" in fetched.stdout
        assert (target / name).read_bytes() == (folder / name).read_bytes()
        # The second time it is already there: the one-line error names it, escaped.
        again = run_peer("download", "--tracker", swarm.tracker.address, "--dir", str(target), name)
        assert again.returncode == 8, again.stderr
        _check(again.stdout)
        _check(again.stderr)
        assert again.stderr.count("\n") == 1


def test_a_one_line_error_that_names_a_file_is_escaped(swarm: Swarm) -> None:
    missing = run_peer(
        "download",
        "--tracker",
        swarm.tracker.address,
        "--dir",
        str(swarm.tmp),
        "--wait-for-peers",
        "0",  # the tracker just started: do not wait for peers to join
        f"a\u2028{FORGED}",
    )
    assert missing.returncode == 3, missing.stderr
    _check(missing.stdout)
    _check(missing.stderr)
    assert missing.stderr == f"napshare-peer: no peer shares a\\u2028{FORGED}\n"

    refused = run_peer(
        "download", "--tracker", swarm.tracker.address, "--dir", str(swarm.tmp), f"a\x1b\n{FORGED}"
    )
    assert refused.returncode == 2, refused.stderr
    _check(refused.stderr)
    assert "has a control character (U+001B)" in refused.stderr
    assert refused.stderr.count("\n") == 1
