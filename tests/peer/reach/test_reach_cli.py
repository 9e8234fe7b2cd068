"""The command lines, as a user runs them: `serve` behind a "NAT" (announced on 127.0.0.1,
listening on 127.0.0.2) says it is not reachable directly, in English and Portuguese, and a
`download` from it says how it reached it and verifies the file; progress lines say how the
sources are reached.
"""

import hashlib
import os
import re
import subprocess
import sys

import pytest
from napshare.peer.downloading.reporting import sources_text

from tests.support.reach import start_reach_tracker

DATA = os.urandom(3 * 1024 * 1024 + 11)
NOT_DIRECT = {
    "C.UTF-8": "not reachable directly (a NAT or firewall?): other peers reach this peer "
    "through the tracker (reverse connections, or its relay)",
    "pt_BR.UTF-8": "não alcançável diretamente (um NAT ou firewall?): outros peers alcançam "
    "este peer pelo tracker (conexões reversas, ou o seu relay)",
}
I_AM = re.compile(r"(?:I am peer|Sou peer) (\S+) ")


def env(lang: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
    return {**clean, "LANG": lang, "PYTHONUNBUFFERED": "1"}


def peer_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "napshare.peer", *args]


@pytest.fixture
def tracker():
    started = start_reach_tracker(tls=True)
    yield started
    started.server.stop(None)


def cert_file(tmp_path, tracker) -> str:
    path = tmp_path / "tracker.pem"
    path.write_bytes(tracker.identity.certificate_pem)
    return str(path)


@pytest.mark.parametrize("lang", ["C.UTF-8", "pt_BR.UTF-8"])
@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (["--no-local-addresses"], "is behind a NAT: reached through a reverse connection"),
        ([], "is on this network: reached at its local address 127.0.0.2:"),
    ],
)
def test_a_peer_behind_a_nat_says_so_and_a_download_says_how_it_reached_it(
    tmp_path, tracker, lang, flags, line
):
    shared = tmp_path / "natted"
    shared.mkdir()
    (shared / "data.bin").write_bytes(DATA)
    pin = cert_file(tmp_path, tracker)
    serve = subprocess.Popen(
        peer_command(
            "serve", "--dir", str(shared), "--tracker", tracker.address, "--tracker-cert", pin,
            "--host", "127.0.0.1", "--bind", "127.0.0.2", "--no-menu", *flags,
        ),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env(lang),
    )  # fmt: skip
    try:
        assert serve.stdout is not None
        assert serve.stdout.readline().startswith(("listening on 127.0.0.2:", "escutando"))
        joined = I_AM.match(serve.stdout.readline())
        assert joined is not None
        assert serve.stdout.readline().rstrip("\n") == NOT_DIRECT[lang]
        target = tmp_path / "downloaded"
        target.mkdir()
        done = subprocess.run(
            peer_command(
                "download", "data.bin", "--dir", str(target), "--tracker", tracker.address,
                "--tracker-cert", pin,
            ),
            capture_output=True, text=True, timeout=120, env=env("C.UTF-8"), check=False,
        )  # fmt: skip
    finally:
        serve.terminate()
        serve.wait(30)
    assert done.returncode == 0, done.stderr
    assert f"peer {joined.group(1)} {line}" in done.stdout
    assert hashlib.sha256((target / "data.bin").read_bytes()).digest() == (
        hashlib.sha256(DATA).digest()
    )


def test_progress_says_how_the_sources_are_reached_when_not_all_are_direct():
    assert sources_text(2, {"direct": 2}) == ", from 2 peers"
    assert sources_text(1, {}) == ", from 1 peer"
    assert sources_text(2, {"relay": 1, "direct": 1}) == ", from 2 peers: 1 direct, 1 relayed"
    assert sources_text(3, {"reverse": 2, "local": 1, "direct": 0}) == (
        ", from 3 peers: 1 on this network, 2 by reverse connection"
    )
    assert sources_text(0, {"relay": 1}) == ""
