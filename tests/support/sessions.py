"""The recorded console sessions of README.md and docs/, replayed as written.

A ```console block is one session: a line starting with `$ ` is a command; the lines after it,
up to the next command, are what it printed (stdout and stderr together, as a terminal shows
them; blank lines at the end of an output only separate it from the next command). Replayed,
each command runs in bash on a machine of its own (a host of tests/support/netns.py), where the
servers listen on the ports the sessions show, and its output must be the recorded one, line
for line, but for the values in VARYING, which differ on every run. Those match by pattern, and
a value the doc shows for one stands for the actual value in every later command and output of
the replay (a page token read from an answer, a port the kernel picked, the token `tee` saved).

A server (SERVER: `napshare-tracker`, `napshare-relay`, `napshare-peer serve`) runs until
Ctrl-C, so its session is its whole run, in a terminal of its own ("Terminal 1"): it starts
before the sessions that follow it in its replay, and once it printed the lines it prints
when ready (the first ones the doc shows, compared at once); after them it gets Ctrl-C, and
all it printed is compared then. Without a terminal, `^C` (how a terminal echoes Ctrl-C)
starts the first line it printed after the signal, as on a terminal.

The doc's home folder, HOME_IN_DOCS, is the replay's own; the commands run in HOME/napshare,
a folder that holds links to the repository's `.venv` and `.tools` and a copy of its
TypeScript client (in the docs, the clone of the repository).
"""

import difflib
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.netns import Host, Internet
from tests.support.terminal import TerminalProcess

ROOT = Path(__file__).resolve().parents[2]
HOME_IN_DOCS = "/home/you"
CLONE = "napshare"  # the repository's folder in the docs' home
LINKED = (".venv", ".tools")  # what a session may run from the clone
# Copied, for a session builds there (tsc writes dist/); their installed packages are linked.
COPIED = ("clients/typescript",)
INTERRUPT = "^C"  # how a terminal shows Ctrl-C
SERVER = re.compile(r"(?:^|/)(?:napshare-tracker|napshare-relay|napshare-peer serve)(?:\s|$)")
COMMAND_TIMEOUT = 120.0


@dataclass(frozen=True)
class Varying:
    """A kind of value that differs on every run: where the doc shows one (the `value` group
    of `doc`), and what it may be in real output (`actual`, a regular expression).
    """

    what: str
    doc: re.Pattern[str]
    actual: str


_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"

VARYING = (
    Varying("a Join token", re.compile(r'"token": "(?P<value>[0-9a-f]{32})"'), "[0-9a-f]{32}"),
    Varying(
        "a certificate fingerprint",
        re.compile(r"fingerprint (?P<value>[0-9a-f]{64})\b"),
        "[0-9a-f]{64}",
    ),
    Varying(
        "an identity, as the tracker's log names it (its fingerprint's start)",
        re.compile(r"\(identity (?P<value>[0-9a-f]{16})…"),
        "[0-9a-f]{16}",
    ),
    Varying(
        "a page token (opaque by contract)",
        re.compile(r'"(?:next_page_token|nextPageToken)": "(?P<value>[\w=-]+)"'),
        r"[\w=-]+",
    ),
    Varying(
        "a serving peer's estimate of a queued download's wait",
        re.compile(r"waiting in the upload queue of \S+: \d+ of \d+, about (?P<value>\d+) s"),
        r"\d+",
    ),
    Varying("a log line's time", re.compile(rf"^(?:\^C)?(?P<value>{_TIME}) "), _TIME),
    Varying(
        "a port the kernel picked (in its ephemeral range: a caller's, or --port 0's)",
        re.compile(r"(?<=:)(?P<value>3[2-9]\d{3}|[45]\d{4}|60\d{3})\b"),
        r"\d{1,5}",
    ),
    Varying(
        "an upload slot kept for a client's next call, for 3 s after its last one ended",
        re.compile(r"^napshare_peer_upload_slots_kept (?P<value>[01]\.0)$"),
        r"[01]\.0",
    ),
    Varying(
        "a duration summed by a metric",
        re.compile(r"_seconds_sum\{[^}]*\} (?P<value>[0-9.e+-]+)$"),
        r"[0-9.e+-]+",
    ),
)


@dataclass
class Command:
    """One `$ ` line and the output recorded under it."""

    text: str
    expected: list[str]
    line: int  # in the doc, 1-based


@dataclass
class Session:
    """One ```console block."""

    doc: Path
    line: int  # of the opening fence, 1-based
    commands: list[Command]
    end: int  # the closing fence's line, 1-based
    separated: bool  # a blank line between one command's output and the next command

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"

    @property
    def server_run(self) -> bool:
        """Whether this session is a server's whole run, ended by Ctrl-C."""
        return len(self.commands) == 1 and SERVER.search(self.commands[0].text) is not None


def sessions_in(doc: Path) -> list[Session]:
    """Every ```console block of `doc`, in order; ValueError for one that is not a session."""
    sessions = []
    lines = doc.read_text(encoding="utf-8").splitlines()
    fence: int | None = None
    for number, line in enumerate(lines, start=1):
        if fence is None and line.strip() == "```console":
            fence = number
        elif fence is not None and line.strip() == "```":
            sessions.append(_session(doc, fence, lines[fence : number - 1], number))
            fence = None
    return sessions


def _session(doc: Path, fence: int, body: list[str], end: int) -> Session:
    commands: list[Command] = []
    for offset, line in enumerate(body, start=fence + 1):
        if line.startswith("$ "):
            commands.append(Command(line[2:], [], offset))
        elif commands:
            commands[-1].expected.append(line)
        elif line.strip():
            raise ValueError(
                f"{doc.relative_to(ROOT)}:{offset}: a ```console block is a recorded session, "
                "and this line comes before its first `$ ` command (commands to type without "
                "their output go in a ```sh block)"
            )
    if not commands:
        raise ValueError(f"{doc.relative_to(ROOT)}:{fence}: a ```console block with no `$ ` line")
    if len(commands) > 1 and any(SERVER.search(c.text) for c in commands):
        raise ValueError(
            f"{doc.relative_to(ROOT)}:{fence}: a server runs until Ctrl-C, in a terminal of "
            "its own: give it a ```console block of its own"
        )
    separated = len(commands) > 1 and commands[0].expected[-1:] == [""]
    for command in commands:
        command.expected = _trimmed(command.expected)
    return Session(doc, fence, commands, end, separated)


def _trimmed(lines: list[str]) -> list[str]:
    lines = list(lines)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


class Values:
    """What each varying value the doc shows turned out to be in this replay (VARYING, and
    the `extra` kinds of one replay).
    """

    def __init__(self, literal: dict[str, str], extra: Sequence[Varying] = ()) -> None:
        self.actual: dict[str, str] = dict(literal)
        self._kinds = (*VARYING, *extra)

    def substitute(self, text: str) -> str:
        """`text` with every doc value seen so far replaced by its actual value."""
        for doc_value, actual in self.actual.items():
            text = re.sub(rf"(?<![\w=-]){re.escape(doc_value)}(?![\w=-])", actual, text)
        return text

    def matches(self, expected: str, actual: str) -> bool:
        """Whether `actual` is the doc's line `expected`; binds the values it shows first."""
        spans: list[tuple[int, int, Varying, str]] = []
        for kind in self._kinds:
            for found in kind.doc.finditer(expected):
                start, end = found.span("value")
                if all(end <= s or start >= e for s, e, _, _ in spans):
                    spans.append((start, end, kind, found.group("value")))
        spans.sort(key=lambda span: span[0])
        pattern, names, pos = [], {}, 0
        for start, end, kind, value in spans:
            pattern.append(re.escape(self.substitute(expected[pos:start])))
            if value in self.actual:
                pattern.append(re.escape(self.actual[value]))
            elif value in names:
                pattern.append(f"(?P={names[value]})")
            else:
                names[value] = f"v{len(names)}"
                pattern.append(f"(?P<{names[value]}>{kind.actual})")
            pos = end
        pattern.append(re.escape(self.substitute(expected[pos:])))
        found = re.fullmatch("".join(pattern), actual)
        if found is None:
            return False
        for value, name in names.items():
            self.actual[value] = found.group(name)
        return True

    def unsubstitute(self, text: str) -> str:
        """`text` with every actual value seen so far written as the doc wrote it."""
        for doc_value, actual in self.actual.items():
            text = re.sub(rf"(?<![\w=-]){re.escape(actual)}(?![\w=-])", doc_value, text)
        return text

    def same(self, expected: list[str], actual: list[str]) -> bool:
        """Whether `actual` is `expected`, line for line."""
        actual = _trimmed(actual)
        return len(actual) == len(expected) and all(
            self.matches(e, a) for e, a in zip(expected, actual, strict=True)
        )

    def recorded(self, expected: list[str], actual: list[str], *, fresh: bool) -> list[str]:
        """What to record for `actual`: the doc's lines if they still hold, else `actual` with
        the values the doc already shows written as it shows them (a small diff, one run);
        `fresh`: `actual` as it is (a whole new run, every value of its own).
        """
        if fresh:
            self.same(expected, actual)  # binds what the doc shows, for the commands after
            return _trimmed(actual)
        if self.same(expected, actual):
            return expected
        return [self.unsubstitute(line) for line in _trimmed(actual)]

    def check(self, what: str, expected: list[str], actual: list[str]) -> None:
        """AssertionError with a diff unless `actual` is `expected`, line for line."""
        __tracebackhide__ = True
        if self.same(expected, actual):
            return
        actual = _trimmed(actual)
        diff = "\n".join(
            difflib.unified_diff(
                [self.substitute(line) for line in expected],
                actual,
                "recorded in the doc",
                "replayed",
                lineterm="",
            )
        )
        raise AssertionError(f"{what} does not replay as recorded:\n{diff}")


class Shell:
    """One bash in the namespace, as in a terminal: variables and `cd` carry from a command to
    the next; each command's stdout and stderr go to one file, stdin is empty.
    """

    def __init__(self, host: Host, cwd: Path, env: dict[str, str], work: Path) -> None:
        self._work = work
        self._count = 0
        self._log = (work / "shell.stderr").open("w")
        self._bash = subprocess.Popen(
            host.exec(["bash", "--noprofile", "--norc"]),
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            text=True,
        )

    def run(self, command: str, timeout: float = COMMAND_TIMEOUT) -> list[str]:
        """The lines `command` printed."""
        self._count += 1
        out = self._work / f"command-{self._count}.out"
        status = self._work / f"command-{self._count}.status"
        assert self._bash.stdin is not None
        self._bash.stdin.write(
            f"{{ {command}\n}} > {shlex.quote(str(out))} 2>&1 < /dev/null; "
            f"echo $? > {shlex.quote(str(status))}.new; "
            f"mv {shlex.quote(str(status))}.new {shlex.quote(str(status))}\n"
        )
        self._bash.stdin.flush()
        deadline = time.monotonic() + timeout
        while not status.exists():
            if self._bash.poll() is not None:
                raise AssertionError(f"bash ended running {command!r}: {self._stderr()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{command!r} did not end within {timeout:g} s")
            time.sleep(0.02)
        return out.read_text(encoding="utf-8", errors="replace").splitlines()

    def _stderr(self) -> str:
        return (self._work / "shell.stderr").read_text(errors="replace")

    def close(self) -> None:
        if self._bash.stdin is not None:
            self._bash.stdin.close()
        try:
            self._bash.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._bash.kill()
            self._bash.wait()
        self._log.close()


class Server:
    """A server command running in the background in the namespace, on a terminal of its own
    (`terminal`: a pseudo-terminal, so a menu opens) or with its output going to a file.
    """

    def __init__(
        self,
        host: Host,
        command: str,
        *,
        cwd: Path,
        env: dict[str, str],
        out: Path,
        terminal: bool,
    ) -> None:
        self.command = command
        argv = host.exec(["bash", "-c", f"exec {command}"])
        self._terminal: TerminalProcess | None = None
        self._out = out
        self.interrupted_at: int | None = None  # how many lines it had printed by Ctrl-C
        if terminal:
            self._terminal = TerminalProcess(argv, cwd=cwd, env=env)
            self.process = self._terminal.process
        else:
            with out.open("w") as file:
                self.process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=file,
                    stderr=subprocess.STDOUT,
                    cwd=cwd,
                    env=env,
                    start_new_session=True,
                )

    def lines(self) -> list[str]:
        """What it printed so far (on a terminal: what its screen shows)."""
        if self._terminal is not None:
            return self._terminal.lines()
        return self._out.read_text(encoding="utf-8", errors="replace").splitlines()

    def wait_for_lines(self, count: int, timeout: float = 60.0) -> list[str]:
        """Its lines, once it printed `count` (or ended, or `timeout` passed)."""
        deadline = time.monotonic() + timeout
        while (
            len(_trimmed(self.lines())) < count
            and self.process.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        time.sleep(0.2)  # a line that follows at once belongs to the same moment
        return self.lines()

    def interrupt(self, timeout: float = 30.0) -> list[str]:
        """Ctrl-C, as a terminal sends it; every line it printed, once it ended."""
        self.interrupted_at = len(_trimmed(self.lines()))
        if self._terminal is not None:
            self._terminal.type("\x03")
        else:
            self.process.send_signal(signal.SIGINT)
        try:
            if self._terminal is not None:
                self._terminal.wait(timeout)
            else:
                self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.command!r} did not stop within {timeout:g} s of Ctrl-C"
            ) from None
        return self.lines()

    def stop(self) -> None:
        """Make sure it ended (SIGKILL if it still runs)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        if self._terminal is not None:
            self._terminal.close()


def server_run_output(server: Server, lines: list[str]) -> list[str]:
    """A server's lines as its terminal showed them: with plain output, `^C` (the terminal's
    echo of Ctrl-C) starts the first line printed after it, as it did in the doc.
    """
    if server._terminal is not None or server.interrupted_at is None:
        return lines
    lines = _trimmed(lines)
    at = server.interrupted_at
    if at < len(lines):
        return [*lines[:at], INTERRUPT + lines[at], *lines[at + 1 :]]
    return [*lines, INTERRUPT]


@dataclass
class Setup:
    """A server a session needs but does not show: its command (run from the clone), and how
    many lines it prints before it is ready (its output is not compared).
    """

    command: str
    ready_lines: int


@dataclass
class Replay:
    """Sessions of one doc replayed together in one namespace, in order.

    `sessions` are indexes among the doc's ```console blocks; `files` are made first (paths
    relative to the clone, `~/` for the home folder); `setup` servers start before the
    sessions; `terminal` names the server runs drawn on a pseudo-terminal (their indexes);
    `ready_lines` says, for each server run, how many lines it prints before the next session
    may start; `already_done` commands (which must print nothing in the doc) are not run.
    """

    doc: str
    sessions: list[int]
    files: dict[str, bytes] = field(default_factory=dict)
    setup: list[Setup] = field(default_factory=list)
    terminal: set[int] = field(default_factory=set)
    ready_lines: dict[int, int] = field(default_factory=dict)
    already_done: tuple[str, ...] = ()  # commands not run again: make test ran them

    @property
    def id(self) -> str:
        return f"{self.doc}#{'+'.join(str(s) for s in self.sessions)}"


@dataclass
class Replayed:
    """What a replay printed, per session and command (for recording the doc anew)."""

    outputs: dict[int, list[list[str]]] = field(default_factory=dict)
    commands: dict[int, list[str]] = field(default_factory=dict)


def environment(home: Path) -> dict[str, str]:
    """A user's environment in English: HOME, PATH and TERM, a UTF-8 locale, nothing else."""
    return {
        "HOME": str(home),
        "USER": "you",
        "LANG": "C.UTF-8",
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "TERM": "xterm-256color",
    }


def replay(spec: Replay, work: Path, *, record: bool = False, fresh: bool = False) -> Replayed:
    """Run `spec`'s sessions as written; AssertionError at the first output that differs from
    the doc's. With `record`, nothing fails: the output to record is returned, the doc's own
    where it still holds (with `fresh`, the run's own throughout).
    """
    doc = ROOT / spec.doc
    every = sessions_in(doc)
    sessions = {index: every[index] for index in spec.sessions}
    home = work / "home"
    clone = home / CLONE
    clone.mkdir(parents=True)
    for name in LINKED:
        (clone / name).symlink_to(ROOT / name)
    for name in COPIED:
        shutil.copytree(
            ROOT / name, clone / name, ignore=shutil.ignore_patterns("node_modules", "dist")
        )
        (clone / name / "node_modules").symlink_to(ROOT / name / "node_modules")
    for path, data in spec.files.items():
        target = home / path[2:] if path.startswith("~/") else clone / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    env = environment(home)
    values = Values({HOME_IN_DOCS: str(home)})
    replayed = Replayed()
    with ExitStack() as stack:
        # A machine of its own (a namespace; the sessions use only its loopback).
        host = stack.enter_context(Internet(work / "internet")).public_host("docs")
        servers: list[Server] = []
        stack.callback(lambda: [s.stop() for s in servers])

        def start(command: str, number: int, terminal: bool) -> Server:
            server = Server(
                host,
                command,
                cwd=clone,
                env=env,
                out=work / f"server-{number}.out",
                terminal=terminal,
            )
            servers.append(server)
            return server

        for number, setup in enumerate(spec.setup):
            server = start(setup.command, number, terminal=False)
            lines = server.wait_for_lines(setup.ready_lines)
            if len(_trimmed(lines)) < setup.ready_lines:
                raise AssertionError(f"{setup.command!r} did not get ready: {lines}")

        runs: dict[int, Server] = {}
        shell = Shell(host, clone, env, work)
        stack.callback(shell.close)
        for index, session in sessions.items():
            if session.server_run:
                command = values.substitute(session.commands[0].text)
                runs[index] = start(command, 100 + index, terminal=index in spec.terminal)
                ready = spec.ready_lines.get(index, 1)
                lines = runs[index].wait_for_lines(ready)
                if len(_trimmed(lines)) < ready:
                    raise AssertionError(
                        f"{session.where}: {command!r} printed {len(lines)} lines, not the "
                        f"{ready} it prints when it is ready: {lines}"
                    )
                if record:  # binds the values they show, for the sessions that follow
                    values.same(session.commands[0].expected[:ready], lines[:ready])
                else:
                    values.check(
                        f"{session.where}: the first {ready} lines of {command!r}",
                        session.commands[0].expected[:ready],
                        lines[:ready],
                    )
                replayed.commands[index] = [command if fresh else session.commands[0].text]
                continue
            outputs, commands = [], []
            for command in session.commands:
                text = values.substitute(command.text)
                lines = [] if text in spec.already_done else shell.run(text)
                if record:
                    outputs.append(values.recorded(command.expected, lines, fresh=fresh))
                    commands.append(text if fresh else values.unsubstitute(text))
                else:
                    values.check(
                        f"{session.doc.name}:{command.line}: `$ {text}`", command.expected, lines
                    )
            replayed.outputs[index] = outputs
            replayed.commands[index] = commands
        for index in reversed(list(runs)):
            lines = server_run_output(runs[index], runs[index].interrupt())
            session = sessions[index]
            if record:
                replayed.outputs[index] = [
                    values.recorded(session.commands[0].expected, lines, fresh=fresh)
                ]
            else:
                values.check(
                    f"{session.where}: the whole run of {session.commands[0].text!r}",
                    session.commands[0].expected,
                    lines,
                )
    return replayed


def rewrite(spec: Replay, replayed: Replayed) -> None:
    """Put what a replay printed into the doc, in place of the recorded sessions."""
    doc = ROOT / spec.doc
    lines = doc.read_text(encoding="utf-8").splitlines()
    every = sessions_in(doc)
    for index in sorted(spec.sessions, reverse=True):
        session = every[index]
        body: list[str] = []
        for number, (command, output) in enumerate(
            zip(replayed.commands[index], replayed.outputs[index], strict=True)
        ):
            if number and session.separated:
                body.append("")
            body.append(f"$ {command}")
            body.extend(_trimmed(output))
        lines[session.line : session.end - 1] = body
    doc.write_text("\n".join(lines) + "\n", encoding="utf-8")


def all_docs() -> Iterator[Path]:
    """README.md and every page of docs/."""
    yield ROOT / "README.md"
    yield from sorted((ROOT / "docs").glob("*.md"))
