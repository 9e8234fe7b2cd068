"""`python -m napshare.relay` as an operator runs it: its lines, signals, errors, metrics."""

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from napshare.common.exitcodes import ExitCode

from tests.support.relays import TRACKER, read_all, send_and_close, tracker_cert_file
from tests.support.waiting import wait_until


def _run(*args: str, lang: str = "C.UTF-8") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "napshare.relay", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "LANG": lang},
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_relay_pairs_sessions_and_a_signal_stops_it_with_status_0(
    relay_process, sig: signal.Signals
) -> None:
    relay = relay_process()
    serving, downloading = relay.pair()
    writer = send_and_close(serving, b"through the relay process")
    assert read_all(downloading) == b"through the relay process"
    writer.join(10)

    assert relay.stop(sig) == 0
    assert read_all(serving) == b""  # the session ended with the relay
    stderr = relay.stop_and_stderr()
    assert f"accepting the tickets of the tracker {TRACKER.fingerprint}" in stderr
    assert "Traceback" not in stderr
    serving.close()
    downloading.close()


@pytest.mark.parametrize(
    ("lang", "banner"),
    [("C.UTF-8", "napshare relay listening on"), ("pt_BR.UTF-8", "relay napshare escutando em")],
)
def test_the_listening_line_follows_the_locale(relay_process, lang: str, banner: str) -> None:
    relay = relay_process(lang=lang)

    assert relay.banner == f"{banner} 127.0.0.1:{relay.address[1]}"
    assert relay.stop() == 0


def test_without_a_tracker_certificate_the_relay_will_not_start() -> None:
    done = _run("--port", "0")

    assert done.returncode == ExitCode.USAGE
    assert done.stderr.count("\n") == 1
    assert "--tracker-cert" in done.stderr


def test_an_unreadable_or_empty_certificate_file_is_one_line_and_exit_14(tmp_path: Path) -> None:
    missing = _run("--port", "0", "--tracker-cert", str(tmp_path / "nope.pem"))
    (tmp_path / "empty.pem").write_text("no certificate here\n")
    empty = _run("--port", "0", "--tracker-cert", str(tmp_path / "empty.pem"))

    for done in (missing, empty):
        assert done.returncode == ExitCode.IDENTITY_FILES
        assert done.stderr.count("\n") == 1
        assert done.stderr.startswith("napshare-relay: ")
    assert "cannot read" in missing.stderr
    assert "no PEM certificate" in empty.stderr


def test_a_taken_port_is_one_line_and_exit_9(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = _run(
            *("--host", "127.0.0.1", "--port", str(port)),
            *("--tracker-cert", str(tracker_cert_file(tmp_path))),
        )

    assert done.returncode == ExitCode.PORT_IN_USE
    assert done.stderr == (
        f"napshare-relay: cannot listen on 127.0.0.1:{port}: the port is in use or the "
        "address is not local\n"
    )


def test_a_bad_cap_is_a_usage_error(tmp_path: Path) -> None:
    done = _run("--tracker-cert", str(tracker_cert_file(tmp_path)), "--max-session-bytes", "lots")

    assert done.returncode == ExitCode.USAGE
    assert "is not a number of bytes" in done.stderr
    assert done.stderr.count("\n") == 1


def test_help_gives_every_cap_with_its_default_and_the_exit_codes() -> None:
    done = _run("--help")

    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for words in (
        "--max-session-bytes SIZE",
        "(default 1G; 0: no cap)",
        "(default 1800; 0: no cap)",
        "--max-sessions-per-peer N",
        "(default 8)",
        "(default 256)",
        "--pairing-timeout SECONDS",
        "(default 10)",
        "--hello-timeout SECONDS",
        "exit codes:",
    ):
        assert words in text


def test_metrics_count_sessions_and_bytes(relay_process) -> None:
    relay = relay_process(
        "--metrics-port",
        "0",
        "--max-session-bytes",
        "1K",
    )
    try:
        assert relay.process.stdout is not None
        announced = relay.process.stdout.readline().strip()
        assert announced.startswith("metrics on http://127.0.0.1:")
        url = announced.removeprefix("metrics on ")
        serving, downloading = relay.pair()
        writer = send_and_close(serving, b"x" * 4096)
        assert len(read_all(downloading)) == 1024
        writer.join(10)

        def scrape() -> str:
            with urllib.request.urlopen(url, timeout=10) as answer:
                return str(answer.read().decode())

        wait_until(lambda: 'napshare_relay_sessions_ended_total{end="max_bytes"} 1.0' in scrape())
        text = scrape()
        assert "napshare_relay_bytes_total 1024.0" in text
        assert "napshare_relay_sessions_paired 0.0" in text
        assert "napshare_relay_connections_waiting 0.0" in text
        serving.close()
        downloading.close()
    finally:
        assert relay.stop() == 0
