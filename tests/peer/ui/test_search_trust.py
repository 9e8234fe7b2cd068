"""`napshare-peer search` without a pin says, once, that it trusted whatever certificate the
tracker showed; with a pin it says nothing of the kind. A real TLS tracker in this process.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from napshare.common.exitcodes import ExitCode

from tests.support.hostile import TlsTracker, start_tls_tracker
from tests.support.peers import run_peer

TRUSTED = "no --tracker-cert or --tracker-fingerprint: trusted whatever certificate tracker"


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[TlsTracker]:
    started = start_tls_tracker(tmp_path)
    yield started
    started.stop()


def test_search_without_a_pin_says_once_that_it_trusted_any_certificate(tracker):
    done = run_peer("search", "aula1.mp4", "--tracker", tracker.address, tls=True)

    assert done.returncode == ExitCode.OK, done.stderr
    told = [line for line in done.stderr.splitlines() if TRUSTED in line]
    assert told == [
        f"napshare-peer: {TRUSTED} {tracker.address} showed (SHA-256 fingerprint "
        f"{tracker.identity.fingerprint}); pin it with --tracker-fingerprint "
        f"{tracker.identity.fingerprint}"
    ]
    assert done.stdout == "peers with requested file:\n"


@pytest.mark.parametrize("pin", ["--tracker-cert", "--tracker-fingerprint"])
def test_search_with_a_pin_says_nothing_of_trust(tracker, pin):
    value = str(tracker.cert_file) if pin == "--tracker-cert" else tracker.identity.fingerprint

    done = run_peer("search", "aula1.mp4", "--tracker", tracker.address, pin, value, tls=True)

    assert done.returncode == ExitCode.OK, done.stderr
    assert TRUSTED not in done.stderr
