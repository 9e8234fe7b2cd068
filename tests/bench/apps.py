"""The command lines the benchmarks run: napshare's own, and the tools it is compared with."""

import re
from collections.abc import Sequence
from pathlib import Path

from tests.bench.procs import PYTHON, ROOT

BIN = Path(PYTHON).parent
PEER_SCRIPT = BIN / "napshare-peer"
TRACKER_SCRIPT = BIN / "napshare-tracker"
HTTP_PORT = re.compile(r"Serving HTTP on (127\.0\.0\.1) port (\d+)")
# The flags of a peer command that talks plain text, to a tracker started with state_dir None.
PLAINTEXT = ("--plaintext",)


def napshare_ready() -> str | None:
    """None when the tracker and peer command lines exist, else what is missing."""
    missing = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "tracker" / "__main__.py", ROOT / "peer" / "__main__.py")
        if not path.exists()
    ]
    return f"napshare is not runnable yet: {', '.join(missing)} missing" if missing else None


def tracker(
    heartbeat: float | None = None,
    state_dir: Path | None = None,
    extra: Sequence[str] = (),
    *,
    program: Sequence[str] = (PYTHON, "-m", "tracker"),
) -> list[str]:
    """A tracker on a free loopback port, with `extra` flags; it prints its address. Plain
    text, unless a `state_dir` is given: then TLS, with its certificate made in
    STATE_DIR/identity/. `program` is the command before the flags (another build's, say).
    """
    command = [
        *program,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--log-level",
        "WARNING",
    ]
    if heartbeat is not None:
        command += ["--heartbeat-interval", f"{heartbeat:g}"]
    command += ["--plaintext"] if state_dir is None else ["--state-dir", str(state_dir)]
    return [*command, *extra]


def pin(state_dir: Path) -> tuple[str, ...]:
    """The flags of a peer command that pins the certificate of the tracker of `state_dir`."""
    return ("--tracker-cert", str(state_dir / "identity" / "cert.pem"))


def _peer() -> list[str]:
    return [str(PEER_SCRIPT)] if PEER_SCRIPT.exists() else [PYTHON, "-m", "napshare.peer"]


def serve(
    folder: Path,
    tracker_address: str,
    extra: Sequence[str] = (),
    *,
    program: Sequence[str] | None = None,
) -> list[str]:
    """A peer sharing `folder` on a free loopback port; it prints its address. `program` is
    the peer command (default: this checkout's).
    """
    return [
        *(_peer() if program is None else program),
        "serve",
        "--dir",
        str(folder),
        "--tracker",
        tracker_address,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--no-menu",
        *extra,
    ]


def peer_help() -> list[str]:
    """The napshare peer command doing nothing: the cost of starting it."""
    return [*_peer(), "--help"]


def download(
    name: str,
    folder: Path,
    tracker_address: str,
    extra: Sequence[str] = (),
    *,
    program: Sequence[str] | None = None,
) -> list[str]:
    """The napshare client: find `name` through the tracker, fetch it, verify its sha256.
    `program` is the peer command (default: this checkout's).
    """
    return [
        *(_peer() if program is None else program),
        "download",
        name,
        "--dir",
        str(folder),
        "--tracker",
        tracker_address,
        *extra,
    ]


def raw_serve(path: Path) -> list[str]:
    """The raw TCP sender (socket.sendfile)."""
    return [PYTHON, "-m", "tests.bench.rawtcp", "serve", str(path)]


def raw_fetch(address: str, out: Path) -> list[str]:
    """The raw TCP receiver (recv_into, then write)."""
    return [PYTHON, "-m", "tests.bench.rawtcp", "fetch", address, str(out)]


def http_serve(folder: Path) -> list[str]:
    """Python's own HTTP file server."""
    return [PYTHON, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(folder), "0"]


def curl(url: str, out: Path) -> list[str]:
    """curl saving to a file."""
    return ["curl", "--silent", "--show-error", "--fail", "--output", str(out), url]


def echo(workers: int) -> list[str]:
    """The bare gRPC echo server, the ceiling for unary calls."""
    return [PYTHON, "-m", "tests.bench.echo", "--workers", str(workers)]
