"""A running napshare for the benchmarks: a tracker, serving peers, and swarms of them."""

import contextlib
import os
import re
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import grpc
from napshare.common.tls import pinned_channel
from napshare.peer.folder.layout import HASHES_FILE, LAYERS_DIR, STATE_DIR
from napshare.v1 import tracker_pb2, tracker_pb2_grpc

from tests.bench import apps
from tests.bench.procs import (
    BenchError,
    Service,
    Timed,
    running,
    start_service,
    stop,
    timed_lines,
)


def wait_listed(
    tracker_address: str,
    name: str,
    timeout: float = 120.0,
    state_dir: Path | None = None,
    *,
    peers: int = 1,
) -> None:
    """Block until the tracker lists `peers` peers (at least) with `name`; BenchError after
    `timeout` seconds.

    `state_dir` is a TLS tracker's (its certificate is pinned); None for plain text.
    """
    deadline = time.monotonic() + timeout
    if state_dir is None:
        channel = grpc.insecure_channel(tracker_address)
    else:
        certificate = (state_dir / "identity" / "cert.pem").read_bytes()
        channel = pinned_channel(tracker_address, certificate)
    with channel:
        stub = tracker_pb2_grpc.TrackerServiceStub(channel)
        while time.monotonic() < deadline:
            try:
                found = stub.Search(tracker_pb2.SearchRequest(name=name), timeout=5)
            except grpc.RpcError:
                found = None
            if found is not None and len({r.peer_id for r in found.results}) >= peers:
                return
            time.sleep(0.1)
    raise BenchError(f"the tracker at {tracker_address} never listed {name} at {peers} peer(s)")


@contextlib.contextmanager
def tracker(state_dir: Path | None = None) -> Iterator[Service]:
    """A tracker subprocess on a free loopback port: plain text, or TLS with `state_dir`."""
    with running("tracker", apps.tracker(state_dir=state_dir)) as service:
        yield service


@contextlib.contextmanager
def serving_peer(
    folder: Path,
    tracker_address: str,
    name: str,
    extra: Sequence[str] = (),
    state_dir: Path | None = None,
) -> Iterator[Service]:
    """A peer subprocess sharing `folder`, started and listed by the tracker under `name`;
    in plain text, or over TLS pinned to the tracker of `state_dir`.
    """
    security = apps.PLAINTEXT if state_dir is None else apps.pin(state_dir)
    command = apps.serve(folder, tracker_address, [*security, *extra])
    with running("serving peer", command) as peer:
        wait_listed(tracker_address, name, state_dir=state_dir)
        yield peer


# Its INFO line before it hashes a file (peer/folder/store.py): `hashing NAME (SIZE bytes)`.
_HASHING = re.compile(r"\bhashing .+ \(\d+ bytes\)")
# The time at the start of each of its log lines (common/logsetup.py LOG_FORMAT).
_LOGGED_AT = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def _hashing_seconds(log: str) -> float | None:
    """From a peer's first `hashing` line to the line after its last one (by the times the
    lines carry), or None if it logged no hashing or no times.
    """
    stamped = []
    for line in log.splitlines():
        found = _LOGGED_AT.match(line)
        if found:
            at = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f")
            stamped.append((at, bool(_HASHING.search(line))))
    hashing = [index for index, (_, is_hashing) in enumerate(stamped) if is_hashing]
    if not hashing or hashing[-1] + 1 >= len(stamped):
        return None
    return (stamped[hashing[-1] + 1][0] - stamped[hashing[0]][0]).total_seconds()


@dataclass(frozen=True)
class Member:
    """One serving peer of a Swarm: its process, its folder, and what its start cost."""

    service: Service
    folder: Path
    seconds: float  # from its start to being listed by the tracker
    hashed: bool  # it logged hashing the file (else it took the digests from its hash cache)
    hashing_seconds: float | None  # how long that took, by its log's times


class Swarm:
    """Serving peers sharing the files of one folder, each from a folder of its own holding hard
    links to them.

    The first peer hashes the files (sha256 and pieces root). The later ones start from a copy
    of its hash cache and piece layers: the cache keys on name, size and mtime, which a hard
    link shares, so they skip hashing (their log says whether they did). Peers log at INFO for
    that; they run in plain text, stopped (and their folders removed) when `stack` closes.
    Their folders are named after `share` and `label`.
    """

    def __init__(
        self,
        stack: contextlib.ExitStack,
        share: Path,
        tracker_address: str,
        extra: Sequence[str] = (),
        *,
        program: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        label: str = "peer",
    ) -> None:
        self._label = label
        self._share = share
        self._files = sorted(path for path in share.iterdir() if path.is_file())
        self._tracker = tracker_address
        self._extra = [*apps.PLAINTEXT, "--log-level", "info", *extra]
        self._program = program
        self._env = env
        self._services: list[Service] = []
        self._folders: list[Path] = []
        self.members: list[Member] = []
        stack.callback(self._close)

    def grow(self, count: int) -> None:
        """Start peers until `count` serve the file: the first alone (it hashes), the others
        together once it is listed (they copy its cache); return when the tracker lists
        `count`, BenchError if it never does.
        """
        if not self.members and count > 0:
            self._start(1)
        if len(self.members) < count:
            self._start(count - len(self.members))

    def _folder(self, number: int) -> Path:
        folder = self._share.with_name(f"{self._share.name}-{self._label}-{number}")
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self._folders.append(folder)
        for path in self._files:
            os.link(path, folder / path.name)
        if self.members:
            copy_hash_cache(self.members[0].folder, folder)
        return folder

    def _start(self, more: int) -> None:
        folders = [self._folder(len(self.members) + n) for n in range(1, more + 1)]
        commands = [
            apps.serve(folder, self._tracker, self._extra, program=self._program)
            for folder in folders
        ]
        began = time.monotonic()
        with ThreadPoolExecutor(more) as pool:
            starts = [
                pool.submit(start_service, "serving peer", command, env=self._env)
                for command in commands
            ]
        services = []
        for started in starts:
            with contextlib.suppress(BenchError):  # raised below; _close stops the others
                services.append(started.result())
                self._services.append(services[-1])
        for started in starts:
            started.result()
        for path in self._files:
            wait_listed(self._tracker, path.name, peers=len(self.members) + more)
        seconds = time.monotonic() - began
        for service, folder in zip(services, folders, strict=True):
            log = service.log.read_text(errors="replace")
            hashed = bool(_HASHING.search(log))
            self.members.append(Member(service, folder, seconds, hashed, _hashing_seconds(log)))

    def _close(self) -> None:
        """Stop every peer at once (each leaves the tracker first), then remove their folders."""
        if self._services:
            with ThreadPoolExecutor(len(self._services)) as pool:
                list(pool.map(stop, self._services))
        for folder in self._folders:
            shutil.rmtree(folder, ignore_errors=True)

    def setup_note(self) -> str:
        """What starting the peers cost: the first one's hashing, and whether the others
        really skipped it.
        """
        if not self.members:
            return "No serving peer was started."
        first, *others = self.members
        seconds = first.hashing_seconds
        hashing = "" if seconds is None else f" ({seconds:.1f} s of it hashing, by its log)"
        text = (
            f"Serving peers from start to listed at the tracker: the first, which hashes the "
            f"files{'' if first.hashed else ' (its log shows no hashing: it found a cache)'}, "
            f"{first.seconds:.1f} s{hashing}"
        )
        if not others:
            return text + "."
        skipped = sum(not member.hashed for member in others)
        times = sorted({f"{member.seconds:.1f}" for member in others}, key=float)
        return (
            f"{text}; the other {len(others)}, started from a copy of its hash cache (at once, "
            f"if started together), {' and '.join(times)} s; {skipped} of {len(others)} logged "
            "no hashing. Setup is not timed."
        )


def copy_hash_cache(source: Path, folder: Path) -> None:
    """Copy the hash cache and piece layers of shared folder `source` into `folder` (never its
    identity): valid when `folder` holds hard links to the same files under the same names.
    """
    state = source / STATE_DIR
    target = folder / STATE_DIR
    target.mkdir(mode=0o700, exist_ok=True)
    shutil.copy2(state / HASHES_FILE, target / HASHES_FILE)
    if (state / LAYERS_DIR).is_dir():
        shutil.copytree(state / LAYERS_DIR, target / LAYERS_DIR, dirs_exist_ok=True)


# Its INFO line at the end of a download: `fetched N bytes of NAME (M were already there) from
# PEER PEER ...`.
_FETCHED_FROM = re.compile(r"fetched \d+ bytes of .+ \(\d+ were already there\) from (.+)$")


@dataclass(frozen=True)
class Fetch:
    """One finished `napshare-peer download` of `size` bytes: timed from process start to
    exit, and what its own output says.
    """

    size: int
    timed: Timed
    # From its first line about the file (`downloading NAME: SIZE`, printed once it has
    # found its sources) to its `File NAME downloaded successfully` line (verified, in place);
    # None when either line is missing.
    own_seconds: float | None
    sources: int | None  # how many peers it says it fetched from; None if it does not say

    @property
    def rate(self) -> float:
        """Bytes per second from process start to exit."""
        return self.size / self.timed.seconds

    @property
    def own_rate(self) -> float | None:
        """Bytes per second by its own lines, or None."""
        return None if not self.own_seconds else self.size / self.own_seconds


def fetch(
    name: str,
    folder: Path,
    tracker_address: str,
    size: int,
    extra: Sequence[str] = (),
    *,
    program: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Fetch:
    """Download `name` of `size` bytes into `folder` (emptied first) in plain text, logging at
    INFO; BenchError if it fails or the file is not `size` bytes.
    """
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.sync()  # no write-back of an earlier download pending during this one
    flags = [*apps.PLAINTEXT, "--log-level", "info", *extra]
    command = apps.download(name, folder, tracker_address, flags, program=program)
    output = timed_lines(command, env=env)
    begin = output.first(re.compile(rf"^downloading {re.escape(name)}: "))
    done = output.first(re.compile(rf"^File {re.escape(name)} downloaded successfully"))
    own = None if begin is None or done is None or done <= begin else done - begin
    sources = next(
        (
            len(found.group(1).split())
            for _, line in output.lines
            if (found := _FETCHED_FROM.search(line))
        ),
        None,
    )
    got = folder / name
    if not got.exists() or got.stat().st_size != size:
        raise BenchError(f"the download of {name} did not produce the whole file")
    return Fetch(size, output.timed, own, sources)
