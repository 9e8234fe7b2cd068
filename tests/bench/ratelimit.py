"""Rate-limit accuracy: the MB/s a capped upload and a capped download reach against the cap.

The upload cap is a real `napshare-peer serve --max-upload-rate` read by a bare gRPC stream;
the download cap is the downloading engine with its bucket (what `download
--max-download-rate` builds) against an uncapped serving peer. Each is timed from its first
chunk to its last, so process start and the final sha256 do not dilute the rate.
"""

import threading
import time
from pathlib import Path

import grpc
from napshare.common.ratelimit import TokenBucket
from napshare.peer.downloading.engine import Downloader
from napshare.peer.downloading.reporting import SilentReporter
from napshare.peer.folder.store import SharedFolder
from napshare.peer.tracker_client import TrackerClient
from napshare.v1 import peer_pb2, peer_pb2_grpc

from tests.bench import swarm
from tests.bench.config import Config
from tests.bench.files import MIB, format_size, make_random_file
from tests.bench.report import Row, Section

FILE_NAME = "capped-lecture.mp4"
TOLERANCE = 0.10  # issue 10: within 10% of the cap over 10 s


class _Clocked(SilentReporter):
    """Notes when the first and the last bytes arrived, and how many came after the first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.first = 0.0
        self.last = 0.0
        self.after_first = 0

    def advance(self, count: int) -> None:
        with self._lock:
            now = time.monotonic()
            if not self.first:
                self.first = now
            else:
                self.after_first += count
            self.last = now

    def rate(self) -> float:
        return self.after_first / max(1e-9, self.last - self.first)


def _upload_rate(peer_address: str) -> float:
    clock = _Clocked()
    with grpc.insecure_channel(peer_address) as channel:
        stub = peer_pb2_grpc.PeerServiceStub(channel)
        for response in stub.Download(peer_pb2.DownloadRequest(name=FILE_NAME), timeout=600):
            clock.advance(len(response.data))
    return clock.rate()


def _download_rate(tracker_address: str, into: Path, cap: float) -> float:
    clock = _Clocked()
    tracker = TrackerClient(tracker_address)
    try:
        Downloader(SharedFolder(into), tracker, rate=TokenBucket(cap)).download(
            FILE_NAME, reporter=clock
        )
    finally:
        tracker.close()
    return clock.rate()


def _row(label: str, achieved: float, cap: float) -> Row:
    ratio = achieved / cap
    return Row(
        f"{label}: achieved / cap",
        ratio,
        "×",
        f"{1 - TOLERANCE:.2f}–{1 + TOLERANCE:.2f}×",
        abs(ratio - 1) <= TOLERANCE,
    )


def run(config: Config) -> Section:
    """One capped upload and one capped download of a file of cap × seconds bytes."""
    cap = config.rate_cap
    size = int(cap * config.rate_seconds)
    share = config.workdir / "ratelimit-share"
    share.mkdir(parents=True, exist_ok=True)
    make_random_file(share / FILE_NAME, size)
    into = config.workdir / "ratelimit-into"
    into.mkdir(parents=True, exist_ok=True)
    flag = f"--max-upload-rate={cap}"
    with swarm.tracker() as tracker:
        with swarm.serving_peer(share, tracker.address, FILE_NAME, [flag]) as capped:
            upload = _upload_rate(capped.address)
        with swarm.serving_peer(share, tracker.address, FILE_NAME):
            download = _download_rate(tracker.address, into, cap)
    (into / FILE_NAME).unlink(missing_ok=True)
    rows = [
        Row(f"upload capped at {format_size(cap)}/s", upload / MIB, "MiB/s"),
        _row("upload", upload, cap),
        Row(f"download capped at {format_size(cap)}/s", download / MIB, "MiB/s"),
        _row("download", download, cap),
    ]
    details = [
        f"A {format_size(size)} file ({config.rate_seconds:g} s at the cap) over loopback. "
        f"Upload: `napshare-peer serve {flag}` read by a bare gRPC Download stream. Download: "
        "the downloading engine with a bucket of the cap (as `download --max-download-rate` "
        "makes it) from an uncapped `serve`. Each rate counts the bytes after the first chunk "
        "over the time from the first chunk to the last; the bucket's burst (a quarter second "
        "of the cap) and the stream's window may come on top."
    ]
    return Section(
        f"Rate limits ({format_size(cap)}/s for {config.rate_seconds:g} s)",
        config.reproduce("ratelimit"),
        rows,
        details,
    )
