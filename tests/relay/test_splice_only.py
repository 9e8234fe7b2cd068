"""The relay only splices: once paired, none of its threads reads a byte into Python.

The peers' own TLS runs end to end through the relay (the downloading side trusting only the
serving side's certificate), and a profiler on every thread of the relay records each C call
it makes: after the pairing, its threads call os.splice and nothing that reads a socket.
"""

import os
import ssl
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from napshare.common.identity import PEER_NAME, make_identity

from tests.support.relays import MIB

READS = {
    "recv",
    "recv_into",
    "recvfrom",
    "recvfrom_into",
    "recvmsg",
    "recvmsg_into",
    "read",
    "readinto",
    "readv",
    "pread",
    "preadv",
}


class CallLog:
    """The C functions each relay thread calls, in order, while `recording` is set."""

    def __init__(self) -> None:
        self.recording = threading.Event()
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def profile(self, _frame: FrameType, event: str, arg: Any) -> None:
        if event != "c_call" or not self.recording.is_set():
            return
        thread = threading.current_thread().name
        if thread.startswith("relay-"):
            with self._lock:
                self.calls.append((thread, getattr(arg, "__name__", "?")))


def test_after_pairing_the_relay_reads_no_byte_and_the_peers_tls_runs_through_it(
    start_relay, tmp_path: Path
) -> None:
    peer = make_identity(PEER_NAME)
    (tmp_path / "key.pem").write_bytes(peer.key_pem)
    (tmp_path / "cert.pem").write_bytes(peer.certificate_pem)
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client_side = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_side.load_verify_locations(cadata=peer.certificate_pem.decode())
    log = CallLog()
    threading.setprofile(log.profile)  # every thread started from now on, the relay's too
    try:
        running = start_relay()
        serving, downloading = running.pair()
        _relay_tls(serving, downloading, server_side, client_side, log)
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    running.relay.stop()

    names = [name for _thread, name in log.calls]
    assert "splice" in names
    assert not READS & set(names), sorted(set(names))


def _relay_tls(serving, downloading, server_side, client_side, log: CallLog) -> None:
    """The serving side sends a file's bytes over its TLS to the downloading side."""
    plaintext = b"the file's bytes in clear " * (MIB // 26) + os.urandom(MIB)
    log.recording.set()
    got: list[bytes] = []

    def serve() -> None:
        with server_side.wrap_socket(serving, server_side=True) as tls:
            tls.sendall(plaintext)

    thread = threading.Thread(target=serve)
    thread.start()
    with client_side.wrap_socket(downloading, server_hostname=PEER_NAME) as tls:
        chunks = []
        while data := tls.recv(1 << 20):
            chunks.append(data)
        got.append(b"".join(chunks))
    thread.join(10)
    log.recording.clear()
    serving.close()
    assert got == [plaintext]
