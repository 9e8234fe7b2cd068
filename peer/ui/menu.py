"""The original's interactive menu: JOIN, SEARCH, DOWNLOAD, plus LIST and QUIT."""

import sys
from collections.abc import Callable
from typing import TextIO

from napshare.common import console
from napshare.common.address import InvalidAddressError, format_address, parse_address
from napshare.common.names import InvalidNameError, check_file_name
from napshare.peer.errors import ClientError
from napshare.peer.node import BackgroundDownload, Node, downloaded_line
from napshare.peer.units import human

CHOICES = ("JOIN", "SEARCH", "DOWNLOAD", "LIST", "QUIT")


class Menu:
    """Reads choices from `stdin` until QUIT, end of input or Ctrl-C; downloads run meanwhile."""

    def __init__(self, node: Node, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> None:
        self.node = node
        self._in = stdin
        self._out = stdout
        self._prompt = ""  # shown while waiting for input
        self._actions: dict[str, Callable[[], bool]] = {
            "JOIN": self._join,
            "SEARCH": self._search,
            "DOWNLOAD": self._download,
            "LIST": self._list,
            "QUIT": lambda: False,
        }

    def run(self) -> None:
        """Show the menu and act on each choice; return when the user quits."""
        try:
            while True:
                self._say("  ".join(f"{i}) {c}" for i, c in enumerate(CHOICES, start=1)))
                choice = self._choice(self._ask("> "))
                if choice is None:
                    self._say(f"choose 1-{len(CHOICES)} or one of {' '.join(CHOICES)}")
                elif not self._actions[choice]():
                    return
        except (EOFError, KeyboardInterrupt):
            self._say("")

    def _choice(self, text: str) -> str | None:
        text = text.strip().upper()
        if text.isdigit() and 1 <= int(text) <= len(CHOICES):
            return CHOICES[int(text) - 1]
        return text if text in CHOICES else None

    def _join(self) -> bool:
        try:
            self.node.link.join()
        except ClientError as error:
            self._say(str(error))
        return True

    def _search(self) -> bool:
        name = self._ask("file name: ").strip()
        try:
            sources = self.node.tracker.search(check_file_name(name), asker=self.node.link.peer_id)
        except (ClientError, InvalidNameError) as error:
            self._say(str(error))
            return True
        self._say(console.render(console.PEERS_WITH_FILE, {"peers": [s.peer for s in sources]}))
        return True

    def _download(self) -> bool:
        name = self._ask("file name: ").strip()
        peer = self._ask("from peer ip:port (empty = any): ").strip()
        try:
            check_file_name(name)
            preferred = format_address(*parse_address(peer)) if peer else None
        except (InvalidNameError, InvalidAddressError) as error:
            self._say(str(error))
            return True
        if any(job.running and job.name == name for job in self.node.downloads):
            self._say(f"{name} is already being downloaded")
            return True
        self.node.download_in_background(name, preferred, self._finished)
        self._say(f"downloading {name} in the background; LIST shows how far it got")
        return True

    def _finished(self, job: BackgroundDownload) -> None:
        """Called from the download's thread: the line, then the prompt the user was at."""
        if job.result is not None:
            line = downloaded_line(job.result, self.node.config.folder_label)
        elif not job.cancel.is_set():
            line = f"download of {job.name} failed: {job.error}"
        else:
            return
        prompt = self._prompt
        self._out.write(f"\n{line}\n{prompt}" if prompt else f"{line}\n")
        self._out.flush()

    def _list(self) -> bool:
        files = self.node.config.folder.scan()
        me = self.node.link.peer_id or "(not joined)"
        self._say(f"sharing {len(files)} file{'' if len(files) == 1 else 's'} as {me}:")
        for f in files:
            self._say(f"  {f.name}  {human(f.size)}")
        for job in self.node.downloads:
            if job.running:
                self._say(f"  downloading {job.name}: {job.reporter.status()}")
        return True

    def _ask(self, prompt: str) -> str:
        self._out.write(prompt)
        self._out.flush()
        self._prompt = prompt
        try:
            line = self._in.readline()
        finally:
            self._prompt = ""
        if not line:
            raise EOFError
        return line

    def _say(self, line: str) -> None:
        print(line, file=self._out, flush=True)
