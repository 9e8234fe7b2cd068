"""A pseudo-terminal for a child process, and what its screen shows: the lines a user reads.

Programs draw on a terminal with carriage returns and escape sequences (a progress bar moves
the cursor up and rewrites its line; the menu clears its prompt's line to print above it).
`Screen` applies the few sequences napshare's output and rich use, so a test compares the
lines a user would see rather than the bytes.
"""

import fcntl
import os
import re
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Sequence
from pathlib import Path

# CSI sequences (ESC [ params letter), OSC sequences (ESC ] ... BEL or ESC \), other escapes
# of two characters, and the control characters that move the cursor.
_TOKEN = re.compile(
    r"\x1b\[(?P<params>[0-9;?]*)(?P<final>[@-~])"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[()][0-9A-Za-z]|\x1b[=>78]"
    r"|(?P<control>[\r\n\b\x07])"
)


class Screen:
    """The text of a terminal with unlimited lines and width, after some output."""

    def __init__(self) -> None:
        self.lines: list[list[str]] = [[]]
        self.row = 0
        self.col = 0

    def feed(self, text: str) -> None:
        """Apply `text`: characters overwrite at the cursor; escapes move it or erase."""
        pos = 0
        for token in _TOKEN.finditer(text):
            self._write(text[pos : token.start()])
            pos = token.end()
            if token.group("control") is not None:
                self._control(token.group("control"))
            elif token.group("final") is not None:
                self._csi(token.group("params"), token.group("final"))
        self._write(text[pos:])

    def text(self) -> list[str]:
        """Every line on the screen, trailing spaces kept as drawn, empty last line dropped."""
        lines = ["".join(line) for line in self.lines]
        while len(lines) > 1 and lines[-1] == "":
            lines.pop()
        return lines

    def _write(self, text: str) -> None:
        line = self.lines[self.row]
        for char in text:
            if self.col < len(line):
                line[self.col] = char
            else:
                line.extend(" " * (self.col - len(line)))
                line.append(char)
            self.col += 1

    def _control(self, char: str) -> None:
        if char == "\n":
            self.row += 1
            self.col = 0  # the terminal's output processing turns \n into \r\n
            if self.row == len(self.lines):
                self.lines.append([])
        elif char == "\r":
            self.col = 0
        elif char == "\b":
            self.col = max(0, self.col - 1)

    def _csi(self, params: str, final: str) -> None:
        numbers = [int(p) if p.isdigit() else 0 for p in params.lstrip("?").split(";")]
        count = max(1, numbers[0])
        line = self.lines[self.row]
        if final == "A":
            self.row = max(0, self.row - count)
        elif final == "B":
            self.row += count
            while self.row >= len(self.lines):
                self.lines.append([])
        elif final == "C":
            self.col += count
        elif final == "D":
            self.col = max(0, self.col - count)
        elif final == "G":
            self.col = count - 1
        elif final == "K":
            if numbers[0] == 0:
                del line[self.col :]
            elif numbers[0] == 1:
                line[: self.col] = " " * min(self.col, len(line))
            else:
                line.clear()
        elif final == "J" and numbers[0] == 0:
            del line[self.col :]
            del self.lines[self.row + 1 :]
        # Colours (m), cursor visibility (?25l/h), bracketed paste (?2004h/l): nothing to show.


def screen_lines(raw: str) -> list[str]:
    """The lines a terminal shows after `raw` output."""
    screen = Screen()
    screen.feed(raw)
    return screen.text()


class TerminalProcess:
    """A child process whose stdin, stdout and stderr are one pseudo-terminal, its controlling
    terminal, as a program started from a shell on a terminal has; everything it draws is kept.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: dict[str, str],
        columns: int = 120,
        rows: int = 40,
    ) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self._master = master
        self._raw: list[bytes] = []
        self._lock = threading.Lock()
        # setsid --ctty: a session of its own whose controlling terminal is this one, so that
        # Ctrl-C typed here interrupts it (setsid execs the program: the pid is the program's).
        self.process = subprocess.Popen(
            ["setsid", "--ctty", *argv],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env={**env, "COLUMNS": str(columns), "LINES": str(rows)},
        )
        os.close(slave)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:  # EIO: every process holding the terminal has exited
                return
            if not data:
                return
            with self._lock:
                self._raw.append(data)

    def raw(self) -> str:
        """Everything drawn so far."""
        with self._lock:
            return b"".join(self._raw).decode("utf-8", "replace")

    def lines(self) -> list[str]:
        """What the screen shows now."""
        return screen_lines(self.raw())

    def type(self, text: str) -> None:
        """Type `text` at the keyboard (\\x03 is Ctrl-C: the terminal interrupts the program)."""
        os.write(self._master, text.encode())

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 60.0) -> re.Match[str]:
        """The first match of `pattern` on the screen; AssertionError after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            found = pattern.search("\n".join(self.lines()))
            if found is not None:
                return found
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(
                    f"{pattern.pattern!r} did not appear; the screen shows:\n"
                    + "\n".join(self.lines())
                )
            time.sleep(0.05)

    def wait(self, timeout: float = 60.0) -> int:
        """The exit status, once the program ended and everything it drew was read."""
        status = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return status

    def close(self) -> None:
        """Kill the program if it still runs, and close the terminal."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        os.close(self._master)
