"""Helpers for tests of the relay: signed tickets, a running relay's sides, reading and sending."""

import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from napshare.common.identity import TRACKER_NAME, Identity, make_identity
from napshare.common.relay_wire import TICKET_SECONDS, join_relay, sign_ticket
from napshare.relay.server import Relay
from napshare.v1 import relay_pb2

from tests.support.waiting import wait_until

TRACKER = make_identity(TRACKER_NAME)
SERVING = relay_pb2.RELAY_SIDE_SERVING
DOWNLOADING = relay_pb2.RELAY_SIDE_DOWNLOADING
MIB = 1024 * 1024


def ticket(
    session: bytes,
    side: int,
    *,
    serving_peer: str = "203.0.113.20:8776",
    expires_at: float | None = None,
    signer: Identity = TRACKER,
) -> bytes:
    """A signed ticket for one side of `session`, valid for TICKET_SECONDS from now."""
    expiry = time.time() + TICKET_SECONDS if expires_at is None else expires_at
    return sign_ticket(
        signer,
        relay_pb2.RelayTicket(
            session=session,
            side=side,  # type: ignore[arg-type]
            expires_at=int(expiry),
            serving_peer=serving_peer,
            downloader="127.0.0.1",
        ),
    )


def new_session() -> bytes:
    return os.urandom(16)


@dataclass
class RunningRelay:
    """An in-process relay and the address to dial it at."""

    relay: Relay
    address: tuple[str, int]

    def join(self, signed: bytes, timeout: float = 10) -> socket.socket:
        """Dial, show `signed` and return the paired connection (or raise the refusal)."""
        sock, _answer = join_relay(self.address, signed, timeout)
        return sock

    def pair(self, session: bytes | None = None, **fields: object) -> tuple[socket.socket, ...]:
        """Both sides of a new session joined: (serving, downloading)."""
        session = session or new_session()
        serving: list[socket.socket] = []
        errors: list[BaseException] = []

        def serve() -> None:
            try:
                serving.append(self.join(ticket(session, SERVING, **fields)))  # type: ignore[arg-type]
            except BaseException as error:
                errors.append(error)

        thread = threading.Thread(target=serve)
        thread.start()
        wait_until(lambda: self.relay.stats().waiting == 1 or bool(errors))
        downloading = self.join(ticket(session, DOWNLOADING, **fields))  # type: ignore[arg-type]
        thread.join(10)
        if errors:
            raise errors[0]
        return serving[0], downloading


def read_all(sock: socket.socket) -> bytes:
    """Everything until the other end closes (or resets)."""
    chunks = []
    try:
        while data := sock.recv(1 << 20):
            chunks.append(data)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def send_and_close(sock: socket.socket, data: bytes) -> threading.Thread:
    """Send `data` then half-close, on a thread (a cap may cut it: that is quiet)."""

    def run() -> None:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    thread = threading.Thread(target=run)
    thread.start()
    return thread


class RelayProcess:
    """`python -m napshare.relay` on a free loopback port, trusting TRACKER; its lines read."""

    def __init__(
        self,
        python: str,
        cert_file: Path,
        *args: str,
        lang: str = "C.UTF-8",
        open_files: tuple[int, int] | None = None,
    ) -> None:
        """Start it with `args`, in `lang`, and (soft, hard) limits of open files if given."""
        limit = [] if open_files is None else ["prlimit", "--nofile={}:{}".format(*open_files)]
        self.process = subprocess.Popen(
            [
                *limit,
                python,
                "-m",
                "napshare.relay",
                *("--host", "127.0.0.1", "--port", "0", "--tracker-cert", str(cert_file)),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**_without_locale(os.environ), "LANG": lang, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        self.banner = self.process.stdout.readline().rstrip("\n")
        match = re.fullmatch(
            r"(?:napshare relay listening on|relay napshare escutando em) 127\.0\.0\.1:(\d+)",
            self.banner,
        )
        assert match, f"unexpected first line {self.banner!r}: {self.stop_and_stderr()}"
        self.address = ("127.0.0.1", int(match.group(1)))

    def pair(self, session: bytes | None = None) -> tuple[socket.socket, socket.socket]:
        """Both sides of a new session joined through this relay: (serving, downloading)."""
        session = session or new_session()
        serving: list[socket.socket] = []
        thread = threading.Thread(
            target=lambda: serving.append(join_relay(self.address, ticket(session, SERVING), 10)[0])
        )
        thread.start()
        time.sleep(0.05)  # either order pairs; this one is the usual
        downloading, _answer = join_relay(self.address, ticket(session, DOWNLOADING), 10)
        thread.join(10)
        return serving[0], downloading

    def rss(self) -> int:
        """The process's resident memory, in bytes."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        (kib,) = re.findall(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        return int(kib) * 1024

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 20) -> int:
        """Send `sig` and return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def stop_and_stderr(self) -> str:
        """Stop it and return all it wrote on stderr."""
        if self.process.poll() is None:
            self.process.kill()
        _out, err = self.process.communicate(timeout=20)
        return err


def tracker_cert_file(folder: Path) -> Path:
    """TRACKER's certificate in a PEM file, as --tracker-cert takes it."""
    path = folder / "tracker-cert.pem"
    path.write_bytes(TRACKER.certificate_pem)
    return path


def _without_locale(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment without the variables that choose a language, but for LANG."""
    names = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")
    return {key: value for key, value in environ.items() if key not in names}
