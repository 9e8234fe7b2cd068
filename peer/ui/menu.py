"""The original's interactive menu: JOIN, SEARCH, DOWNLOAD, plus BROWSE, LIST and QUIT.

Its lines follow the locale, the choice names too (under pt_BR: ENTRAR, BUSCAR, BAIXAR,
EXPLORAR, LISTAR, SAIR); a choice is taken by its number, its English name or its translated
name.
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
from napshare.common.names import SEPARATOR, InvalidNameError, check_file_name, check_folder
from napshare.peer.errors import AlreadyExistsError, ClientError
from napshare.peer.folder.store import FolderError
from napshare.peer.node import BackgroundDownload, Node
from napshare.peer.ui.cli import peer_and_folder
from napshare.peer.ui.folders import (
    folder_done_line,
    folder_stopped_line,
    shares_line,
    shown_folder,
)
from napshare.peer.ui.progress import downloaded_line, resumed_line
from napshare.peer.ui.tree import TreeLines
from napshare.peer.units import human

CHOICES = (N_("JOIN"), N_("SEARCH"), N_("DOWNLOAD"), N_("BROWSE"), N_("LIST"), N_("QUIT"))
BROWSE_SHOWN = 200  # files BROWSE lists; `napshare-peer browse` lists them all
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
            "BROWSE": self._browse,
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
        name = self._ask(tr("file name (a folder: end it with /): ")).strip()
        if name.endswith(SEPARATOR):
            return self._download_folder(name)
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

    def _download_folder(self, folder: str) -> bool:
        """DOWNLOAD of a name ending in `/`: every file under that folder of one peer."""
        try:
            check_folder(folder)
        except InvalidNameError as error:
            self.say(console.localized(error))
            return True
        peer = self._ask(tr("from peer ip:port: ")).strip()
        try:
            peer = normal_address(peer)
        except InvalidAddressError as error:
            self.say(console.localized(error))
            return True
        self._start_folder(peer, folder)
        return True

    def _start_folder(self, peer: str, folder: str) -> None:
        shown = shown_folder(folder)
        if any(job.running and job.folder and job.name == shown for job in self.node.downloads):
            self.say(tr("{name} is already being downloaded", name=shown))
            return
        self.node.download_folder_in_background(
            peer,
            folder,
            self._finished,
            self.say,
            on_file=lambda result: self.say(downloaded_line(result, self.node.config.folder_label)),
        )
        self.say(
            tr(
                "downloading folder {folder} of {peer} in the background; {list} shows how far "
                "it got",
                folder=shown,
                peer=peer,
                list=tr("LIST"),
            )
        )

    def _browse(self) -> bool:
        try:
            peer, folder = peer_and_folder(self._ask(tr("peer ip:port[:folder]: ")).strip())
        except (InvalidAddressError, InvalidNameError) as error:
            self.say(console.localized(error))
            return True
        tree = TreeLines()
        try:
            for page in self.node.tracker.browse(peer, folder):
                shown = page[: BROWSE_SHOWN - tree.files]
                for line in tree.feed((f.name, f.size) for f in shown):
                    self.say("  " + line)
                if len(shown) < len(page):
                    self.say(
                        "  "
                        + tr(
                            "… and more: napshare-peer browse {peer}:{folder} lists them all",
                            peer=peer,
                            folder=folder,
                        )
                    )
                    break
        except ClientError as error:
            self.say(console.localized(error))
            return True
        if tree.files < BROWSE_SHOWN:
            self.say(shares_line(peer, folder, tree.files, tree.size))
        if tree.files and self._yes(
            tr(
                "download {folder} of {peer} into {destination}?",
                folder=shown_folder(folder),
                peer=peer,
                destination=self.node.config.folder_label,
            )
        ):
            self._start_folder(peer, folder)
        return True

    def _yes(self, question: str) -> bool:
        """Whether the user answers `question` yes (y, or the language's own letter)."""
        answer = self._ask(tr("{question} [y/N] ", question=question)).strip().lower()
        return answer in ("y", "yes", tr("y"), tr("yes"))

    def _finished(self, job: BackgroundDownload) -> None:
        """Called from the download's thread: its last lines, above the prompt."""
        if job.folder:
            self._folder_finished(job)
        elif job.result is not None:
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

    def _folder_finished(self, job: BackgroundDownload) -> None:
        if job.plan is not None and job.error is None:
            self.say(folder_done_line(job.plan, self.node.config.folder_label))
        elif job.cancel.is_set():
            return
        elif job.plan is None:
            self.say(
                tr("download of folder {folder} failed: {error}", folder=job.name, error=job.error)
            )
        else:
            failure = job.failure if isinstance(job.failure, ClientError) else None
            self.say(folder_stopped_line(job.plan, job.name, len(job.fetched), failure))

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
            if job.running and job.folder:
                self.say("  " + self._folder_status(job))
            elif job.running:
                status = job.reporter.status()
                self.say("  " + tr("downloading {name}: {status}", name=job.name, status=status))
        return True

    @staticmethod
    def _folder_status(job: BackgroundDownload) -> str:
        if job.plan is None:
            return tr("downloading folder {folder}: (listing its files)", folder=job.name)
        return tr(
            "downloading folder {folder}, {done} of {count} files done: {name}: {status}",
            folder=job.name,
            done=len(job.plan.present) + len(job.fetched),
            count=len(job.plan.files),
            name=job.reporter.name,
            status=job.reporter.status(),
        )

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
