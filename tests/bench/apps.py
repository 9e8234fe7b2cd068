"""The command lines the benchmarks run: napshare's own, and the tools it is compared with."""

import os
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


def curl_verified(url: str, out: Path) -> list[str]:
    """The verified durable pipeline: curl into a file, `openssl dgst -sha256` of it (read
    back from the page cache), then `sync OUT` (coreutils fsyncs each file it is given); prints
    the digest. Faster and cheaper here than `curl | tee OUT | openssl dgst` (pipe copies).
    """
    script = 'curl -sS --fail -o "$2" "$1" && openssl dgst -sha256 "$2" && sync "$2"'
    return ["bash", "-c", script, "bash", url, str(out)]


# aria2c's flags for every run: no user configuration, no console output.
ARIA2 = ("aria2c", "--no-conf", "--quiet=true", "--summary-interval=0")
# A BitTorrent client that finds peers only through the torrent's tracker.
ARIA2_BT = (
    "--enable-dht=false",
    "--enable-dht6=false",
    "--bt-enable-lpd=false",
    "--enable-peer-exchange=false",
)


def aria2_http(url: str, out: Path) -> list[str]:
    """aria2c over HTTP, one connection, no checksum."""
    return [
        *ARIA2,
        "-x1",
        "-s1",
        "--file-allocation=none",
        "-d",
        str(out.parent),
        "-o",
        out.name,
        url,
    ]


def aria2_seed(torrent: Path, folder: Path, port: int | str) -> list[str]:
    """aria2c seeding the file of `torrent`, found complete in `folder` (not hashed again),
    until stopped, listening on `port` (a placeholder string for the report) and announcing
    127.0.0.1.
    """
    return [
        *ARIA2,
        *ARIA2_BT,
        "--seed-ratio=0.0",
        "--bt-seed-unverified=true",
        "--check-integrity=false",
        "--bt-external-ip=127.0.0.1",
        f"--listen-port={port}",
        "-d",
        str(folder),
        str(torrent),
    ]


def aria2_leech(torrent: Path, folder: Path, port: int | str) -> list[str]:
    """aria2c downloading `torrent` into `folder` (each piece checked against its SHA-1, as
    BitTorrent always does), exiting when done.
    """
    return [
        *ARIA2,
        *ARIA2_BT,
        "--seed-time=0",
        "--file-allocation=none",
        f"--listen-port={port}",
        "-d",
        str(folder),
        str(torrent),
    ]


def rsync_config(share: Path, log: Path) -> str:
    """rsyncd.conf with one read-only module, `share`, run as the bench's own user."""
    return (
        f"use chroot = no\nlog file = {log}\nuid = {os.getuid()}\ngid = {os.getgid()}\n"
        f"[share]\npath = {share}\nread only = yes\n"
    )


def rsync_daemon(config: Path, port: int | str) -> list[str]:
    """rsync's daemon on 127.0.0.1:`port` in the foreground."""
    return [
        "rsync",
        "--daemon",
        "--no-detach",
        f"--config={config}",
        f"--port={port}",
        "--address=127.0.0.1",
    ]


def rsync_fetch(address: str, name: str, out: Path) -> list[str]:
    """rsync copying module `share`'s `name` whole (-W, no delta), checked by its checksum."""
    return ["rsync", "-W", "--no-motd", f"rsync://{address}/share/{name}", str(out)]
