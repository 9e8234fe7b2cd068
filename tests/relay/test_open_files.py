"""The relay's caps fit its limit of open files: it raises the limit, says when it cannot, and
waits rather than spins when the files run out anyway.
"""

import re
import socket
import time
from pathlib import Path

from tests.bench.procs import cpu_seconds
from tests.support.relays import read_all, send_and_close

NEEDED = 1024 + 256 * 6 + 64  # waiting + sessions × (2 sockets, 4 pipe ends) + spare


def _open_files(pid: int) -> int:
    limits = Path(f"/proc/{pid}/limits").read_text()
    (soft,) = re.findall(r"^Max open files\s+(\d+)", limits, re.MULTILINE)
    return int(soft)


def test_the_relay_raises_its_open_file_limit_to_what_its_caps_need(relay_process) -> None:
    relay = relay_process(open_files=(256, 8192))

    assert _open_files(relay.process.pid) == NEEDED
    assert relay.stop() == 0
    assert "open files" not in relay.stop_and_stderr()


def test_a_limit_too_low_for_the_caps_is_said_at_start(relay_process) -> None:
    relay = relay_process(open_files=(256, 512))

    assert _open_files(relay.process.pid) == 512
    assert relay.stop() == 0
    assert f"may need {NEEDED} open files at its caps but may open only 512" in (
        relay.stop_and_stderr()
    )


def test_out_of_open_files_the_relay_waits_and_then_goes_on(relay_process) -> None:
    relay = relay_process(
        *("--max-waiting", "1000", "--max-waiting-per-address", "1000"),
        open_files=(40, 40),
    )
    flood: list[socket.socket] = []
    try:
        for _ in range(60):  # more than it can hold: the rest wait in the kernel's queue
            flood.append(socket.create_connection(relay.address))
        before = cpu_seconds(relay.process.pid)
        time.sleep(1)
        spent = cpu_seconds(relay.process.pid) - before
    finally:
        for sock in flood:
            sock.close()

    assert spent < 0.25, f"{spent} s of CPU in 1 s: the loop spins on accept"
    serving, downloading = relay.pair()
    writer = send_and_close(serving, b"after the flood")
    assert read_all(downloading) == b"after the flood"
    writer.join(10)
    serving.close()
    downloading.close()
    assert relay.stop() == 0
