"""The console lines of the original assignment, in English or, under pt_BR, its Portuguese.

The language follows the standard gettext variables (LANGUAGE, LC_ALL, LC_MESSAGES, LANG).
"""

import functools
import gettext
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TextIO

LOCALE_DIR = Path(__file__).with_name("locale")
DOMAIN = "napshare"

PEER_JOINED = "Peer {peer} added with files {files}"
PEER_SEARCHED = "Peer {peer} requested file {name}"
PEER_DEAD = "Peer {peer} dead. Removing its files {files}"
I_AM_PEER = "I am peer {peer} with files {files}"
PEERS_WITH_FILE = "peers with requested file: {peers}"
DOWNLOADED = "File {name} downloaded successfully into folder {folder}"
REFUSED_TRYING_NEXT = "peer {peer} refused the download, now asking peer {next}"


def printable(text: str) -> str:
    """Escape control characters, so that text from the network cannot forge or break a line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def show(*columns: str, file: TextIO | None = None) -> None:
    """Print one line, its columns escaped and joined by tabs, at once (stdout by default)."""
    line = "\t".join(printable(column) for column in columns)
    print(line, file=file or sys.stdout, flush=True)


@functools.cache
def _translations(languages: tuple[str, ...] | None) -> gettext.NullTranslations:
    return gettext.translation(
        DOMAIN, LOCALE_DIR, languages=list(languages) if languages else None, fallback=True
    )


def render(
    message: str,
    fields: Mapping[str, str | Iterable[str]],
    languages: tuple[str, ...] | None = None,
) -> str:
    """One console line: `message` translated, with list fields joined by single spaces."""
    values = {
        key: printable(value if isinstance(value, str) else " ".join(value))
        for key, value in fields.items()
    }
    return _translations(languages).gettext(message).format(**values).rstrip()


def say(message: str, **fields: str | Iterable[str]) -> None:
    """Print one console line to stdout, at once."""
    show(render(message, fields))
