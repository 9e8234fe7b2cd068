"""Child processes for the benchmarks: start, find their address, time, measure, stop."""

import contextlib
import math
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.files import ROOT

PYTHON = sys.executable
TIME = "/usr/bin/time"

_ADDRESS = re.compile(r"(?<![\w.:\[])(127\.0\.0\.1|localhost|\[::1\]):(\d{1,5})\b")


class BenchError(RuntimeError):
    """A benchmark could not run: a process failed to start, or a command failed."""


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for children: unbuffered output, English console lines, and `extra`
    (a PYTHONPATH that runs another build of napshare, say).
    """
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["LANGUAGE"] = "en"
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    env.update(extra or {})
    return env


@dataclass
class Service:
    """A long-running child in its own process group, the address it printed, and its log."""

    name: str
    process: subprocess.Popen[bytes]
    address: str
    log: Path

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    @property
    def port(self) -> int:
        """The port of the printed address."""
        return int(self.address.rsplit(":", 1)[1])

    def tail(self, lines: int = 15) -> str:
        """The last lines the child wrote."""
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def start_service(
    name: str,
    command: Sequence[str],
    *,
    pattern: re.Pattern[str] = _ADDRESS,
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
) -> Service:
    """Start `command` (with `env` on top of child_env) and wait until it prints a loopback
    `host:port`, or, for a program given its `port`, until 127.0.0.1:`port` accepts a
    connection; raise BenchError if not.

    Its output goes to a file in the temp folder, not a pipe, so that a chatty child (the
    tracker prints a line per search) costs no reader thread in this process.
    """
    handle, log_name = tempfile.mkstemp(prefix="napshare-bench-log-", suffix=".txt")
    with os.fdopen(handle, "wb") as log:
        process = subprocess.Popen(
            list(command),
            cwd=ROOT,
            env=child_env(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = Service(name, process, "", Path(log_name))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port is not None:
            if _accepts(port):
                service.address = f"127.0.0.1:{port}"
                return service
        else:
            with service.log.open("rb") as log:
                head = log.read(64 * 1024).decode(errors="replace")
            match = pattern.search(head)
            if match:
                service.address = f"{match.group(1)}:{match.group(2)}"
                return service
        if process.poll() is not None:
            break
        time.sleep(0.05)
    tail = service.tail()
    stop(service)
    raise BenchError(f"{name} did not print its address: {shlex.join(command)}\n{tail}")


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def stop(service: Service, grace: float = 10.0) -> None:
    """Stop the service's whole process group (SIGTERM, SIGKILL after `grace` s); drop its log."""
    process = service.process
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    service.log.unlink(missing_ok=True)


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise BenchError(f"/proc/{pid}/status has no {key}")


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set size so far (VmHWM)."""
    return _status_kib(pid, "VmHWM") * 1024


def rss_bytes(pid: int) -> int:
    """The process's resident set size now (VmRSS)."""
    return _status_kib(pid, "VmRSS") * 1024


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[str]:
    tasks = Path(f"/proc/{pid}/task")
    return [c for task in tasks.iterdir() for c in (task / "children").read_text().split()]


def settled_cpu_seconds(pid: int, timeout: float = 30.0) -> float:
    """cpu_seconds of the process plus that of its children, once it has none left running
    (it waited for each, so their time is in its cutime and cstime): a server that forks a
    child per connection, like rsync's daemon, is counted whole.
    """
    deadline = time.monotonic() + timeout
    while _children(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    if _children(pid):
        raise BenchError(f"process {pid} still has children after {timeout:g} s")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Timed:
    """One finished command: wall time, and the peak RSS and CPU time /usr/bin/time saw."""

    seconds: float
    max_rss_bytes: int
    cpu_seconds: float


def timed_run(
    command: Sequence[str],
    *,
    cwd: Path | None = None,
    timeout: float = 900,
    env: Mapping[str, str] | None = None,
) -> Timed:
    """Run `command` under /usr/bin/time; its wall time, its peak RSS, or BenchError if it fails."""
    return timed_lines(command, cwd=cwd, timeout=timeout, env=env).timed


@dataclass(frozen=True)
class Lines:
    """One finished command as timed_run sees it, and each line it printed (stdout and stderr
    together) with the seconds since its start when this process read it.
    """

    timed: Timed
    lines: list[tuple[float, str]]

    def first(self, pattern: re.Pattern[str]) -> float | None:
        """When the first line matching `pattern` came, or None if none did."""
        return next((at for at, line in self.lines if pattern.search(line)), None)


def timed_lines(
    command: Sequence[str],
    *,
    cwd: Path | None = None,
    timeout: float = 900,
    env: Mapping[str, str] | None = None,
) -> Lines:
    """timed_run, with every output line timed as it arrives (read from a pipe, unbuffered)."""
    with tempfile.NamedTemporaryFile("r", prefix="napshare-bench-time-") as report:
        wrapped = [TIME, "-f", "%M %U %S", "-o", report.name, *command]
        lines: list[tuple[float, str]] = []
        start = time.perf_counter()
        with subprocess.Popen(
            wrapped,
            cwd=cwd or ROOT,
            env=child_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        ) as process:
            assert process.stdout is not None
            timer = threading.Timer(timeout, process.kill)
            timer.start()
            try:
                for line in process.stdout:
                    lines.append((time.perf_counter() - start, line.rstrip("\n")))
                returncode = process.wait()
            finally:
                timer.cancel()
        seconds = time.perf_counter() - start
        if returncode != 0:
            tail = "\n".join(line for _, line in lines)[-2000:]
            raise BenchError(f"exit {returncode}: {shlex.join(command)}\n{tail}")
        kib, user, system = report.read().split()[-3:]
    return Lines(Timed(seconds, int(kib) * 1024, float(user) + float(system)), lines)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of a non-empty sequence (fraction 0.99 for p99)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sequence."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


@contextlib.contextmanager
def running(
    name: str,
    command: Sequence[str],
    *,
    pattern: re.Pattern[str] = _ADDRESS,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
) -> Iterator[Service]:
    """start_service as a context: the process group is stopped however the block ends."""
    service = start_service(name, command, pattern=pattern, env=env, port=port)
    try:
        yield service
    finally:
        stop(service)
