"""`make demo`: the assignment's flow a–e with a real tracker, two peers and a >1 GiB video.

Run from the repository: `python tests/demo.py [--size BYTES] [--keep]`.
tests/system/test_demo.py runs it with a few MiB so the demo cannot rot.
"""

import argparse
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

GIB = 1024**3
DEFAULT_SIZE = GIB + 64 * 1024**2
VIDEO = "aula1.mp4"
MISSING = "aula99.mp4"
LISTENING = re.compile(r"(?:listening on|escutando em) (\S+:\d+)")
FINGERPRINT = re.compile(r"SHA-256 (?:fingerprint|do certificado) ([0-9a-f]{64})")
# download --verify-sha256's line (English or Portuguese): the sha256 it checked.
CHECKED = re.compile(r"^sha256 ([0-9a-f]{64}): (?:checked|conferido)", re.M)
# The serve line that says how other peers reach this one (reachable directly, or not).
REACHED = re.compile(r"^(?:(?:not )?reachable directly|(?:não )?alcançável diretamente).*$", re.M)


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def show(command: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command the way a user would type it, and print it with its output."""
    shown = [Path(command[0]).name, *command[1:]]
    print("$ " + " ".join(shown), flush=True)
    result = subprocess.run(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    for line in result.stdout.splitlines():
        print("  " + line, flush=True)
    if result.returncode != 0:
        raise SystemExit(f"demo: {shown[0]} exited with {result.returncode}")
    return result


class Process:
    """A background napshare process whose stdout goes to a log file we can read."""

    def __init__(self, name: str, command: Sequence[str], log: Path) -> None:
        self.name = name
        self.log = log
        self._out = log.open("w")
        self._shown = 0
        self.popen = subprocess.Popen(
            command, stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = pattern.search(self.log.read_text())
            if match:
                return match
            if self.popen.poll() is not None:
                break
            time.sleep(0.1)
        raise SystemExit(
            f"demo: {self.name} did not print {pattern.pattern!r}:\n{self.log.read_text()}"
        )

    def show_new_lines(self, expect: int = 0) -> None:
        """Print the console lines (not log records) it wrote since the last call."""
        deadline = time.monotonic() + 5
        while True:
            written = self.log.read_text().splitlines()
            lines = [
                line
                for line in written[self._shown :]
                if not re.match(r"\d{4}-\d\d-\d\d ", line)
                and not LISTENING.search(line)
                and not FINGERPRINT.search(line)
            ]
            if len(lines) >= expect or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for line in lines:
            print(f"  [{self.name}] {line}", flush=True)
        self._shown = len(written)  # a line written since is shown next time, not skipped

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._out.close()


def make_video(path: Path, size: int) -> str:
    """A real video of at least `size` bytes when ffmpeg is here, else random bytes."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        with path.open("wb") as out:
            left = size
            while left:
                block = os.urandom(min(left, 4 * 1024**2))
                out.write(block)
                left -= len(block)
        return "random data (install ffmpeg for a real, playable video)"
    clip = path.with_name("clip.mp4")
    quiet = [ffmpeg, "-nostdin", "-v", "error", "-y"]
    subprocess.run(
        [
            *quiet,
            *("-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"),
            *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
            *("-t", "10", "-c:v", "mjpeg", "-q:v", "2", "-pix_fmt", "yuvj420p"),
            *("-c:a", "aac", "-shortest", str(clip)),
        ],
        check=True,
    )
    loops = max(0, -(-size // clip.stat().st_size) - 1)
    subprocess.run(
        [*quiet, "-stream_loop", str(loops), "-i", str(clip), "-c", "copy", str(path)], check=True
    )
    clip.unlink()
    return "a real video made with ffmpeg (720p test pattern with a 440 Hz tone)"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(4 * 1024**2):
            digest.update(block)
    return digest.hexdigest()


def listing(folder: Path) -> str:
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    if not files:
        return f"  {folder.name}/ is empty"
    return "\n".join(f"  {folder.name}/{p.name}  {p.stat().st_size:,} bytes" for p in files)


def run(size: int, work: Path) -> None:
    bin_dir = Path(sys.executable).parent
    tracker_cmd = str(bin_dir / "napshare-tracker")
    peer_cmd = str(bin_dir / "napshare-peer")
    folder_a, folder_b = work / "peer1", work / "peer2"
    folder_a.mkdir()
    folder_b.mkdir()
    processes: list[Process] = []
    try:
        step(f"Making the video {VIDEO} (over 1 GiB) in peer1's folder")
        kind = make_video(folder_a / VIDEO, size)
        print(f"  {kind}\n{listing(folder_a)}", flush=True)

        step("Starting a tracker and two peers on free ports, over TLS")
        state = work / "tracker-state"
        tracker = Process(
            "tracker",
            [
                *(tracker_cmd, "--host", "127.0.0.1", "--port", "0", "--heartbeat-interval", "5"),
                *("--state-dir", str(state)),
            ],
            work / "tracker.log",
        )
        processes.append(tracker)
        tracker_address = tracker.wait_for(LISTENING).group(1)
        fingerprint = tracker.wait_for(FINGERPRINT).group(1)
        print(f"  tracker: {tracker_address}, TLS certificate SHA-256 {fingerprint}", flush=True)
        # Every peer command pins the tracker's certificate, made on its first start.
        pin = ("--tracker", tracker_address, "--tracker-cert", str(state / "identity/cert.pem"))
        peers = []
        for name, folder in (("peer1", folder_a), ("peer2", folder_b)):
            peer = Process(
                name,
                [
                    *(peer_cmd, "serve", "--dir", str(folder), *pin),
                    *("--host", "127.0.0.1", "--no-menu", "--rescan-interval", "1"),
                ],
                work / f"{name}.log",
            )
            processes.append(peer)
            peers.append(peer)
            print(f"  {name}: {peer.wait_for(LISTENING).group(1)}", flush=True)

        step("a. The peers join and the tracker accepts them (JOIN -> JOIN_OK)")
        am_peer = re.compile(r"^(I am peer|Sou peer) (\S+) .*$", re.MULTILINE)
        for peer in peers:
            line = peer.wait_for(am_peer, timeout=120)
            print(f"  [{peer.name}]  {line.group(0)}", flush=True)
            reached = peer.wait_for(REACHED, timeout=30)
            print(f"  [{peer.name}]  {reached.group(0)}", flush=True)
            tracker.wait_for(re.compile(rf"^Peer {re.escape(line.group(2))} ", re.MULTILINE))
        tracker.show_new_lines()

        step(f"b. A search for a file that no peer has ({MISSING}): an empty answer")
        show([peer_cmd, "search", MISSING, *pin])
        tracker.show_new_lines(expect=1)

        step(f"c. A search for the video ({VIDEO}): the peers that have it")
        show([peer_cmd, "search", VIDEO, *pin])
        tracker.show_new_lines(expect=2)  # by name, then by its bytes (other names of them)

        step(f"d. Download of {VIDEO} into peer2's folder")
        print("  before:\n" + listing(folder_b), flush=True)
        started = time.monotonic()
        done = show(
            [peer_cmd, "download", VIDEO, "--dir", folder_b.name, "--verify-sha256", *pin],
            work,
        )
        seconds = time.monotonic() - started
        got = folder_b / VIDEO
        print("  after:\n" + listing(folder_b), flush=True)
        size_b = got.stat().st_size
        print(
            f"  {size_b:,} bytes ({size_b / GIB:.2f} GiB) in {seconds:.1f} s,"
            f" {size_b / 1024**2 / seconds:.0f} MiB/s"
            " including verification (every piece, and the sha256)",
            flush=True,
        )
        # The copy's sha256 is the one the download checked (computed once, by napshare).
        checked = CHECKED.search(done.stdout)
        if checked is None:
            raise SystemExit("demo: the download did not say which sha256 it checked")
        source_digest, copy_digest = sha256_of(folder_a / VIDEO), checked.group(1)
        print(f"  sha256 peer1: {source_digest}\n  sha256 peer2: {copy_digest}", flush=True)
        if source_digest != copy_digest:
            raise SystemExit("demo: the copy differs from the source")
        print("  sha256 match", flush=True)

        step("UPDATE: peer2 announced the file, so the tracker now lists it as a source too")
        deadline = time.monotonic() + 30
        while True:
            result = subprocess.run(
                [peer_cmd, "search", VIDEO, *pin],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.stdout.count(":") >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        show([peer_cmd, "search", VIDEO, *pin])

        step("e. The downloaded video plays")
        play(got, work)
    finally:
        step("Stopping everything (Leave on SIGTERM) and cleaning up")
        for process in reversed(processes):
            process.stop()
            print(f"  {process.name} exited with {process.popen.returncode}", flush=True)


def play(video: Path, work: Path) -> None:
    ffprobe, ffmpeg = shutil.which("ffprobe"), shutil.which("ffmpeg")
    if ffprobe is None or ffmpeg is None:
        print("  ffmpeg is not installed: the file is random data, so there is nothing to play.")
        print("  Install ffmpeg (e.g. apt-get install ffmpeg) and run make demo again.")
        return
    show(
        [
            *(ffprobe, "-v", "error", "-of", "default=nw=1", "-show_entries"),
            "format=duration,size:stream=codec_type,codec_name,width,height",
            str(video),
        ]
    )
    print("  decoding the first and the last 10 seconds, every frame, with ffmpeg:", flush=True)
    show([ffmpeg, "-nostdin", "-v", "error", "-t", "10", "-i", str(video), "-f", "null", "-"])
    show([ffmpeg, "-nostdin", "-v", "error", "-sseof", "-10", "-i", str(video), "-f", "null", "-"])
    frame = work / "frame.png"
    show(
        [
            ffmpeg,
            "-nostdin",
            "-v",
            "error",
            "-ss",
            "5",
            "-i",
            str(video),
            "-frames:v",
            "1",
            str(frame),
        ]
    )
    print(f"  decoded without errors; the frame at 0:05 is {frame.stat().st_size:,} bytes of PNG")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="video size in bytes")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="napshare-demo-"))
    started = time.monotonic()
    try:
        run(args.size, work)
    finally:
        if args.keep:
            print(f"  kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
            print(f"  removed {work}")
    print(f"\nDemo finished in {time.monotonic() - started:.0f} s.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
