"""napshare's programs run in the hosts of a namespace internet (tests/support/netns.py) as a user
runs them: `napshare-tracker` with its defaults (TLS, its own certificate, port 1099),
`napshare-peer serve` and `napshare-peer download` pinned to it. Each host is a machine of its
own, so the default ports are free in it.
"""

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.files import sha256_file
from tests.support.netns import Host, Process

BIN = Path(sys.executable).parent
TRACKER_PORT = 1099  # napshare-tracker's default
RELAY_PORT = TRACKER_PORT + 1  # the tracker's own relay, by default
PEER_PORT = 8776  # the port the README's users pick
# English console lines, unbuffered, whatever the machine's locale.
ENV = {"LANGUAGE": "en", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
MIB = 1 << 20
I_AM_PEER = r"^I am peer (\S+) "
# What `serve` says after its Join: the tracker reached it at its address, or not (then other
# peers reach it through the tracker); the older and the newer wording.
REACHABLE = r"^(?:the tracker reached this peer at its address|reachable directly)"
NOT_REACHABLE = r"could not reach this peer at its address|not reachable directly"
# What a download says of a source it reached through the tracker.
THROUGH_REVERSE = re.compile(r"reverse connection", re.IGNORECASE)
THROUGH_RELAY = re.compile(r"relay", re.IGNORECASE)


class Tracker:
    """`napshare-tracker --state-dir DIR [flags]` on a host, on the default port; it keeps its
    certificate in DIR, so a restart is the same tracker to the peers that pinned it.
    """

    def __init__(self, host: Host, state_dir: Path, *flags: str) -> None:
        self.host = host
        self.state_dir = state_dir
        self.flags = list(flags)
        self.process = self._start()

    def _start(self) -> Process:
        process = self.host.start(
            [str(BIN / "napshare-tracker"), "--state-dir", str(self.state_dir), *self.flags],
            name="tracker",
            env=ENV,
        )
        process.wait_for(rf"napshare tracker listening on \S+:{TRACKER_PORT}$")
        return process

    @property
    def address(self) -> str:
        """Where peers find it: `HOST:1099`."""
        return f"{self.host.address}:{TRACKER_PORT}"

    @property
    def cert(self) -> Path:
        """Its certificate, which peers pin with --tracker-cert."""
        return self.state_dir / "identity" / "cert.pem"

    def pin(self) -> list[str]:
        """The flags of a peer command that use this tracker, trusting only its certificate."""
        return ["--tracker", self.address, "--tracker-cert", str(self.cert)]

    def output(self) -> str:
        """What it printed since it (last) started."""
        return self.process.output()

    def restart(self) -> None:
        """Stop it (SIGTERM) and start it again: same address, same certificate, an empty
        index that fills as the peers join again.
        """
        self.process.stop()
        self.process = self._start()


class ServingPeer:
    """`napshare-peer serve --dir DIR --port 8776 --no-menu` on a host, pinned to a tracker,
    with no --host: the tracker registers the address it sees, as for a user at home.
    """

    def __init__(
        self, host: Host, folder: Path, tracker: Tracker, *flags: str, port: int = PEER_PORT
    ) -> None:
        self.host = host
        self.folder = folder
        self.tracker = tracker
        self.port = port
        folder.mkdir(parents=True, exist_ok=True)
        self.process = host.start(
            [
                *(str(BIN / "napshare-peer"), "serve", "--dir", str(folder), *tracker.pin()),
                *("--port", str(port), "--no-menu", *flags),
            ],
            name=f"peer-{port}",
            env=ENV,
        )
        self.peer_id = self.process.wait_for(I_AM_PEER, timeout=60).group(1)

    def output(self) -> str:
        """What it printed so far."""
        return self.process.output()

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """The first line it printed that matches `pattern`, waiting for it."""
        return self.process.wait_for(pattern, timeout)


@dataclass
class Download:
    """A finished `napshare-peer download`: its exit code, all it printed, the file it made."""

    returncode: int
    output: str
    path: Path

    def sha256(self) -> str:
        """The downloaded file's SHA-256."""
        return sha256_file(self.path)


def download_command(tracker: Tracker, name: str, folder: Path, *flags: str) -> list[str]:
    """`napshare-peer download NAME --dir FOLDER`, pinned to the tracker, with `flags`."""
    argv = [str(BIN / "napshare-peer"), "download", name, "--dir", str(folder), *tracker.pin()]
    return [*argv, *flags]


def download(
    host: Host, tracker: Tracker, name: str, folder: Path, *flags: str, timeout: float = 60.0
) -> Download:
    """`napshare-peer download NAME --dir FOLDER` on a host, pinned to the tracker, to its end.

    It gives up after 20 s in which no peer sent a byte (not 120 s), so a case that fails
    fails in seconds; `flags` come after, and may say otherwise.
    """
    folder.mkdir(parents=True, exist_ok=True)
    argv = download_command(tracker, name, folder, "--give-up-after", "20", *flags)
    try:
        done = host.run(argv, timeout=timeout, env=ENV)
    except subprocess.TimeoutExpired as expired:
        output = expired.output or ""
        text = output.decode(errors="replace") if isinstance(output, bytes) else output
        return Download(-1, text + f"\n(still running after {timeout:g} s: killed)", folder / name)
    return Download(done.returncode, done.stdout, folder / name)


def canary_file(path: Path, size: int, canary: bytes) -> Path:
    """A file of `size` bytes that is `canary` over and over: any of its bytes seen in clear
    on a link shows as a whole canary.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    block = canary * (MIB // len(canary) + 1)
    with path.open("wb") as out:
        left = size
        while left:
            piece = block[: min(left, MIB)]
            out.write(piece)
            left -= len(piece)
    return path
