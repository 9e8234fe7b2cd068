"""The relay's memory is bounded by its caps, not by the bytes it carries or the clients it meets.

A napshare-relay process: its resident memory after a warm-up session, then after a session
of 512 MiB, and after a flood of connections that each hold a hello's worth of bytes at the
waiting cap alongside as many sessions as one peer may have.
"""

import os
import socket

from napshare.common.relay_wire import LENGTH, MAGIC

from tests.support.relays import MIB, RelayProcess, read_all, send_and_close

WAITING = 500
SESSIONS = 8


def _relay_bytes(relay: RelayProcess, size: int) -> None:
    serving, downloading = relay.pair()
    block = os.urandom(MIB)
    writer = send_and_close(serving, block * (size // MIB))
    received = 0
    while data := downloading.recv(1 << 20):
        received += len(data)
    writer.join(60)
    assert received == size
    serving.close()
    downloading.close()


def test_the_relays_memory_grows_with_neither_bytes_relayed_nor_a_flood(relay_process) -> None:
    relay = relay_process(
        *("--max-waiting", str(WAITING), "--max-waiting-per-address", str(WAITING)),
        *("--hello-timeout", "60"),
    )
    flood: list[socket.socket] = []
    try:
        _relay_bytes(relay, 8 * MIB)  # warm-up: every code path has run once
        before = relay.rss()

        _relay_bytes(relay, 512 * MIB)
        after_bytes = relay.rss()

        pairs = [relay.pair() for _ in range(SESSIONS)]
        for _ in range(WAITING + 100):  # 100 past the cap are answered FULL and closed
            sock = socket.create_connection(relay.address)
            sock.sendall(MAGIC + LENGTH.pack(1024) + b"\0" * 1023)  # one byte short
            flood.append(sock)
        full = read_all(flood[-1])
        after_flood = relay.rss()
        for pair in pairs:
            for sock in pair:
                sock.close()
    finally:
        for sock in flood:
            sock.close()
        status = relay.stop()

    assert status == 0
    assert full.startswith(LENGTH.pack(len(full) - LENGTH.size))  # an answer (FULL), then the end
    assert after_bytes - before < 4 * MIB, (before, after_bytes)
    # 500 hellos of 1 KiB held and 8 sessions of 3 threads: measured at about 1.5 MiB.
    assert after_flood - before < 16 * MIB, (before, after_flood)
