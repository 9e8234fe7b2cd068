"""The original's interactive menu: JOIN, SEARCH, DOWNLOAD, plus LIST and QUIT.

Its lines follow the locale, the choice names too (under pt_BR: ENTRAR, BUSCAR, BAIXAR,
LISTAR, SAIR); a choice is taken by its number, its English name or its translated name.
"""

import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import TextIO

from napshare.common import console, logsetup
from napshare.common.address import InvalidAddressError, normal_address
from napshare.common.console import N_, tr
from napshare.common.names import InvalidNameError, check_file_name
from napshare.peer.errors import AlreadyExistsError, ClientError
from napshare.peer.folder.store import FolderError
from napshare.peer.node import BackgroundDownload, Node
from napshare.peer.ui.progress import downloaded_line, resumed_line
from napshare.peer.units import human

CHOICES = (N_("JOIN"), N_("SEARCH"), N_("DOWNLOAD"), N_("LIST"), N_("QUIT"))
CLEAR_LINE = "\r\x1b[K"  # back to the line's start, then erase it


class Menu:
    """Reads choices from `stdin` until QUIT, end of input or Ctrl-C; downloads run meanwhile."""

    def __init__(self, node: Node, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> None:
        self.node = node
        self._in = stdin
        self._out = stdout
        self._prompt = ""  # shown while waiting for input
        self._lock = threading.Lock()  # one line at a time, from any thread
        self._readline = _readline_for(stdin, stdout)
        self._actions: dict[str, Callable[[], bool]] = {
            "JOIN": self._join,
            "SEARCH": self._search,
            "DOWNLOAD": self._download,
            "LIST": self._list,
            "QUIT": lambda: False,
        }

    def run(self) -> None:
        """Show the menu and act on each choice; return when the user quits."""
        with self._logging_above_prompt():
            self._loop()

    def _loop(self) -> None:
        try:
            while True:
                names = [tr(c) for c in CHOICES]
                self.say("  ".join(f"{i}) {n}" for i, n in enumerate(names, start=1)))
                choice = self._choice(self._ask("> "))
                if choice is None:
                    self.say(
                        tr(
                            "choose 1-{count} or one of {choices}",
                            count=len(CHOICES),
                            choices=" ".join(names),
                        )
                    )
                elif not self._actions[choice]():
                    return
        except (EOFError, KeyboardInterrupt):
            self.say("")

    def _choice(self, text: str) -> str | None:
        text = text.strip().upper()
        if text.isdigit() and 1 <= int(text) <= len(CHOICES):
            return CHOICES[int(text) - 1]
        for choice in CHOICES:
            if text in (choice, tr(choice).upper()):
                return choice
        return None

    def _join(self) -> bool:
        try:
            self.node.link.join()
        except (ClientError, FolderError) as error:
            self.say(console.localized(error))
        return True

    def _search(self) -> bool:
        name = self._ask(tr("file name: ")).strip()
        try:
            sources = self.node.tracker.search(check_file_name(name), asker=self.node.link.peer_id)
        except (ClientError, InvalidNameError) as error:
            self.say(console.localized(error))
            return True
        self.say(console.render(console.PEERS_WITH_FILE, {"peers": [s.peer for s in sources]}))
        return True

    def _download(self) -> bool:
        name = self._ask(tr("file name: ")).strip()
        try:
            check_file_name(name)
        except InvalidNameError as error:
            self.say(console.localized(error))
            return True
        if any(job.running and job.name == name for job in self.node.downloads):
            self.say(tr("{name} is already being downloaded", name=name))
            return True
        peer = self._ask(tr("from peer ip:port (empty = any): ")).strip()
        try:
            preferred = normal_address(peer) if peer else None
        except InvalidAddressError as error:
            self.say(console.localized(error))
            return True
        force = self.node.config.folder.has(name)
        if force and not self._yes(
            tr("{name} is already in the folder; download it again and replace it?", name=name)
        ):
            return True
        self.node.download_in_background(name, preferred, self._finished, self.say, force=force)
        self.say(
            tr(
                "downloading {name} in the background; {list} shows how far it got",
                name=name,
                list=tr("LIST"),
            )
        )
        return True

    def _yes(self, question: str) -> bool:
        """Whether the user answers `question` yes (y, or the language's own letter)."""
        answer = self._ask(tr("{question} [y/N] ", question=question)).strip().lower()
        return answer in ("y", "yes", tr("y"), tr("yes"))

    def _finished(self, job: BackgroundDownload) -> None:
        """Called from the download's thread: its last lines, above the prompt."""
        if job.result is not None:
            self.say(downloaded_line(job.result, self.node.config.folder_label))
            resumed = resumed_line(job.result)
            if resumed is not None:
                self.say(resumed)
        elif isinstance(job.failure, AlreadyExistsError):
            self.say(
                tr(
                    "download of {name} failed: a file of that name appeared in the folder "
                    "meanwhile; kept it (choose {download} again to replace it)",
                    name=job.name,
                    download=tr("DOWNLOAD"),
                )
            )
        elif not job.cancel.is_set():
            self.say(tr("download of {name} failed: {error}", name=job.name, error=job.error))

    def _list(self) -> bool:
        try:
            files = self.node.config.folder.scan()
        except FolderError as error:
            self.say(console.localized(error))
            return True
        me = self.node.link.peer_id or tr("(not joined)")
        if len(files) == 1:
            self.say(tr("sharing 1 file as {peer}:", peer=me))
        else:
            self.say(tr("sharing {count} files as {peer}:", count=len(files), peer=me))
        for f in files:
            self.say(f"  {f.name}  {human(f.size)}")
        for job in self.node.downloads:
            if job.running:
                status = job.reporter.status()
                self.say("  " + tr("downloading {name}: {status}", name=job.name, status=status))
        return True

    def _ask(self, prompt: str) -> str:
        if self._readline is not None:
            with self._lock:
                self._prompt = prompt
            try:
                return input(prompt)  # readline draws the prompt and edits the line
            finally:
                with self._lock:
                    self._prompt = ""
        with self._lock:
            self._out.write(prompt)
            self._out.flush()
            self._prompt = prompt
        try:
            line = self._in.readline()
        finally:
            with self._lock:
                self._prompt = ""
        if not line:
            raise EOFError
        return line

    def say(self, line: str) -> None:
        """Print one line, escaped; while waiting for input, above the prompt, then redraw it."""
        with self._lock:
            text = console.printable(line)
            if self._prompt:
                typed = self._readline.get_line_buffer() if self._readline is not None else ""
                self._out.write(f"{CLEAR_LINE}{text}\n{self._prompt}{typed}")
            else:
                self._out.write(f"{text}\n")
            self._out.flush()

    @contextmanager
    def _logging_above_prompt(self) -> Iterator[None]:
        """While the menu runs, log lines to the terminal go through `say` instead."""
        root = logging.getLogger()
        terminal = [
            h
            for h in root.handlers
            if isinstance(h, logging.StreamHandler) and h.stream in (sys.stderr, sys.stdout)
        ]
        handler = _SayHandler(self.say)
        for old in terminal:
            root.removeHandler(old)
        root.addHandler(handler)
        try:
            yield
        finally:
            root.removeHandler(handler)
            for old in terminal:
                root.addHandler(old)


class _SayHandler(logging.Handler):
    """Hands each log record's lines to the menu (a traceback keeps its own lines)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        super().__init__()
        self.setFormatter(logsetup.EscapingFormatter(logsetup.LOG_FORMAT))
        self._say = say

    def emit(self, record: logging.LogRecord) -> None:
        """Format `record` and show it line by line."""
        try:
            for line in self.format(record).splitlines():
                self._say(line)
        except Exception:
            self.handleError(record)


def _readline_for(stdin: TextIO, stdout: TextIO) -> ModuleType | None:
    """The readline module when the menu talks to the terminal itself, else None."""
    if stdin is not sys.stdin or stdout is not sys.stdout or not stdin.isatty():
        return None
    try:
        import readline  # noqa: PLC0415 - line editing only on a terminal
    except ImportError:
        return None
    return readline
