"""Relay throughput: a file's bytes through napshare-relay with its default caps, and direct.

Two pairs, each measured direct and through the relay, interleaved round by round on loopback:
raw TCP (one socket sends a buffer, the other counts what arrives), and a peer's TLS
Download stream (a `napshare-peer serve` process, read by a bare gRPC stream pinned to the
peer's certificate, as a downloader's). For the relayed Download, a local proxy in this
process stands for both peers' ends: each connection gRPC opens to it becomes one relay
session, whose serving side this process joins to the peer's port. The relay's CPU time
per GiB comes from its /proc entry.
"""

import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
from napshare.common.identity import TRACKER_NAME, Identity, make_identity
from napshare.common.relay_wire import TICKET_SECONDS, join_relay, sign_ticket
from napshare.common.splice import Splice
from napshare.common.tls import pinned_channel
from napshare.peer.folder.layout import IDENTITY_DIR, STATE_DIR
from napshare.v1 import peer_pb2, peer_pb2_grpc, relay_pb2

from tests.bench import swarm
from tests.bench.apps import BIN
from tests.bench.config import Config
from tests.bench.files import GIB, MIB, format_size, make_random_file
from tests.bench.procs import PYTHON, cpu_seconds, median, running
from tests.bench.report import Row, Section

FILE_NAME = "relayed-lecture.mp4"
BUFFER = 4 * MIB
_LISTENING = re.compile(r"napshare relay listening on (127\.0\.0\.1):(\d+)")


class _Relay:
    """A napshare-relay process with its default caps, and a tracker identity it trusts."""

    def __init__(self, address: tuple[str, int], tracker: Identity, pid: int) -> None:
        self.address = address
        self.tracker = tracker
        self.pid = pid

    def ticket(self, session: bytes, side: int) -> bytes:
        return sign_ticket(
            self.tracker,
            relay_pb2.RelayTicket(
                session=session,
                side=side,  # type: ignore[arg-type]
                expires_at=int(time.time()) + TICKET_SECONDS,
                serving_peer="127.0.0.1:1",
                downloader="127.0.0.1",
            ),
        )

    def pair(self) -> tuple[socket.socket, socket.socket]:
        """Both sides of a new session: (serving, downloading)."""
        session = os.urandom(16)
        serving: list[socket.socket] = []
        thread = threading.Thread(
            target=lambda: serving.append(
                join_relay(self.address, self.ticket(session, relay_pb2.RELAY_SIDE_SERVING), 10)[0]
            )
        )
        thread.start()
        downloading, _ = join_relay(
            self.address, self.ticket(session, relay_pb2.RELAY_SIDE_DOWNLOADING), 10
        )
        thread.join(10)
        return serving[0], downloading


@contextlib.contextmanager
def _relay(workdir: Path) -> Iterator[_Relay]:
    tracker = make_identity(TRACKER_NAME)
    cert = workdir / "relay-bench-tracker.pem"
    cert.write_bytes(tracker.certificate_pem)
    script = BIN / "napshare-relay"
    program = [str(script)] if script.exists() else [PYTHON, "-m", "napshare.relay"]
    command = [*program, "--host", "127.0.0.1", "--port", "0", "--tracker-cert", str(cert)]
    with running("relay", command, pattern=_LISTENING) as service:
        host, port = service.address.rsplit(":", 1)
        yield _Relay((host, int(port)), tracker, service.pid)


def _pump(sender: socket.socket, receiver: socket.socket, size: int) -> float:
    """Send `size` bytes from `sender` and count them at `receiver`; seconds taken."""
    block = os.urandom(BUFFER)

    def send() -> None:
        left = size
        while left:
            left -= sender.send(memoryview(block)[: min(left, BUFFER)])
        sender.shutdown(socket.SHUT_WR)

    buffer = bytearray(BUFFER)
    began = time.monotonic()
    thread = threading.Thread(target=send)
    thread.start()
    received = 0
    while chunk := receiver.recv_into(buffer):
        received += chunk
    elapsed = time.monotonic() - began
    thread.join()
    sender.close()
    receiver.close()
    if received != size:
        raise RuntimeError(f"{received} of {size} bytes arrived")
    return elapsed


def _direct_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
    return client, accepted


class _Proxy:
    """A local port whose every connection reaches `peer` through a new relay session."""

    def __init__(self, relay: _Relay, peer: tuple[str, int]) -> None:
        self._relay = relay
        self._peer = peer
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._splices: list[Splice] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                local, _ = self._listener.accept()
            except OSError:
                return
            serving, downloading = self._relay.pair()
            to_peer = socket.create_connection(self._peer)
            self._splices += [Splice(serving, to_peer).start(), Splice(local, downloading).start()]

    def close(self) -> None:
        self._listener.close()
        for splice in self._splices:
            splice.stop()


def _download(target: str, certificate_pem: bytes, size: int, resumed: list[int]) -> float:
    """A TLS Download stream of the whole file at `target`, resumed from where it was when a
    cap of the relay ends its session (as the engine does); seconds from call to last byte.
    Each resumption is counted in `resumed`.
    """
    received = 0
    with pinned_channel(target, certificate_pem) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = peer_pb2_grpc.PeerServiceStub(channel)
        began = time.monotonic()
        while received < size:
            request = peer_pb2.DownloadRequest(name=FILE_NAME, offset=received)
            try:
                for response in stub.Download(request, timeout=600):
                    received += len(response.data)
            except grpc.RpcError as error:
                if error.code() is not grpc.StatusCode.UNAVAILABLE or resumed[0] > 100:
                    raise
                resumed[0] += 1
        elapsed = time.monotonic() - began
    if received != size:
        raise RuntimeError(f"{received} of {size} bytes arrived")
    return elapsed


def _rounds(rounds: int, measures: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Each measure once a round, in turn, so that the machine's drift falls on all alike."""
    seconds: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(rounds):
        for name, measure in measures.items():
            seconds[name].append(measure())
    return seconds


def run(config: Config) -> Section:
    """Raw TCP and a TLS Download, direct and through the relay, `config.rounds` rounds each."""
    size = config.transfer_size
    rounds = config.rounds
    share = config.workdir / "relay-share"
    share.mkdir(parents=True, exist_ok=True)
    make_random_file(share / FILE_NAME, size)
    state = config.workdir / "relay-tracker-state"
    relay_cpu = [0.0]
    resumed = {"direct": [0], "relayed": [0]}

    def relayed(measure: Callable[[], float]) -> Callable[[], float]:
        def timed() -> float:
            before = cpu_seconds(relay.pid)
            seconds = measure()
            relay_cpu[0] += cpu_seconds(relay.pid) - before
            return seconds

        return timed

    with (
        _relay(config.workdir) as relay,
        swarm.tracker(state) as tracker,
        swarm.serving_peer(share, tracker.address, FILE_NAME, state_dir=state) as peer,
    ):
        certificate = (share / STATE_DIR / IDENTITY_DIR / "cert.pem").read_bytes()
        proxy = _Proxy(relay, ("127.0.0.1", peer.port))
        try:
            seconds = _rounds(
                rounds,
                {
                    "tcp direct": lambda: _pump(*_direct_pair(), size),
                    "tcp relayed": relayed(lambda: _pump(*relay.pair(), size)),
                    "download direct": lambda: _download(
                        peer.address, certificate, size, resumed["direct"]
                    ),
                    "download relayed": relayed(
                        lambda: _download(proxy.address, certificate, size, resumed["relayed"])
                    ),
                },
            )
        finally:
            proxy.close()
    (share / FILE_NAME).unlink(missing_ok=True)
    rate = {name: size / median(values) / MIB for name, values in seconds.items()}
    relayed_gib = 2 * rounds * size / GIB
    rows = [
        Row(f"raw TCP, {format_size(size)}, direct", rate["tcp direct"], "MiB/s"),
        Row(f"raw TCP, {format_size(size)}, through the relay", rate["tcp relayed"], "MiB/s"),
        Row("raw TCP: relayed / direct", rate["tcp relayed"] / rate["tcp direct"], "×"),
        Row(f"TLS Download, {format_size(size)}, direct", rate["download direct"], "MiB/s"),
        Row(
            f"TLS Download, {format_size(size)}, through the relay",
            rate["download relayed"],
            "MiB/s",
        ),
        Row(
            "TLS Download: relayed / direct",
            rate["download relayed"] / rate["download direct"],
            "×",
        ),
        Row(
            "TLS Download through the relay: calls cut (byte cap) and resumed, per download",
            resumed["relayed"][0] / rounds,
            "cuts",
        ),
        Row("relay CPU per GiB relayed", relay_cpu[0] / relayed_gib, "s"),
    ]
    if resumed["direct"][0]:
        raise RuntimeError("a direct download was cut")
    details = [
        f"Loopback, {rounds} rounds, medians; each round runs the four in turn. The relay is a "
        "`napshare-relay` process with its default caps (1 GiB each way per session, 30 min, "
        "no rate cap). A TLS Download carries a little more than the file (TLS records, gRPC "
        "frames), so a session that reaches the byte cap is ended by the relay and the stream "
        "resumes from the offset it reached, in a new session, as the download engine does "
        "from its pieces; its time counts. Raw TCP: a 4 MiB buffer sent until the size is "
        "reached, counted by recv_into on the other side, both in the bench process. TLS "
        "Download: `napshare-peer serve` over TLS, read by one bare gRPC Download stream "
        "pinned to its certificate; relayed, through a local proxy in the bench process whose "
        "every connection is one relay session (the serving side joined to the peer's port), "
        "as the downloader's and the serving peer's splices do, both here in one process. "
        "CPU: the relay process's user + system time over the relayed runs, per GiB carried."
    ]
    return Section(
        f"Relay throughput ({format_size(size)}, default caps, loopback)",
        config.reproduce("relay"),
        rows,
        details,
    )
