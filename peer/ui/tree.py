"""A peer's shared files as a tree, one line each, drawn as the pages of a Browse arrive.

Names come in name order, in which the files under a folder always come together, so each
folder is drawn once, on the line before its first file, and the lines can be printed at
once: `browse` shows the first page while the next is on its way.
"""

from collections.abc import Iterable, Iterator

from napshare.common.names import SEPARATOR
from napshare.peer.units import human

INDENT = "  "


class TreeLines:
    """Lines of the tree of the files fed to it (names in name order, with their sizes); it
    counts the files, bytes and folders drawn.
    """

    def __init__(self) -> None:
        self._open: list[str] = []  # the folders of the last file, outermost first
        self.files = 0
        self.size = 0
        self.folders = 0

    def feed(self, files: Iterable[tuple[str, int]]) -> Iterator[str]:
        """The lines of `files` (name, size), which come after those fed before."""
        for name, size in files:
            *folders, leaf = name.split(SEPARATOR)
            same = 0
            while same < min(len(folders), len(self._open)) and folders[same] == self._open[same]:
                same += 1
            for depth in range(same, len(folders)):
                yield f"{INDENT * depth}{folders[depth]}{SEPARATOR}"
                self.folders += 1
            self._open = folders
            self.files += 1
            self.size += size
            yield f"{INDENT * len(folders)}{leaf}  {human(size)}"
