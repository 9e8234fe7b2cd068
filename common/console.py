"""The console lines of the original assignment, in English or, under pt_BR, its Portuguese.

The language follows the standard gettext variables (LANGUAGE, LC_ALL, LC_MESSAGES, LANG).
A line that lists a peer's files is the original's while the list is short (at most
MAX_LISTED names in at most MAX_LISTED_CHARS characters); past that it gives the count and
the first few names (at most SAMPLE_NAMES, within SAMPLE_CHARS, always at least one).
"""

import functools
import gettext
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TextIO

LOCALE_DIR = Path(__file__).with_name("locale")
DOMAIN = "napshare"


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "translate later"
    """Mark `message` for the catalog without translating it now (for constants)."""
    return message


PEER_JOINED = N_("Peer {peer} added with files {files}")
PEER_SEARCHED = N_("Peer {peer} requested file {name}")
PEER_DEAD = N_("Peer {peer} dead. Removing its files {files}")
I_AM_PEER = N_("I am peer {peer} with files {files}")
PEERS_WITH_FILE = N_("peers with requested file: {peers}")
DOWNLOADED = N_("File {name} downloaded successfully into folder {folder}")
REFUSED_TRYING_NEXT = N_("peer {peer} refused the download, now asking peer {next}")
LINES_LEFT_OUT = N_("… {count} similar lines left out")

PEER_JOINED_MANY = N_("Peer {peer} added with {count} files: {files} and {more} more")
PEER_DEAD_MANY = N_("Peer {peer} dead. Removing its {count} files: {files} and {more} more")
I_AM_PEER_MANY = N_("I am peer {peer} with {count} files: {files} and {more} more")

MAX_LISTED = 20
MAX_LISTED_CHARS = 400
SAMPLE_NAMES = 3
SAMPLE_CHARS = 120

# The lines whose `files` field is a list of names, and their form for long lists.
_COUNTED = {PEER_JOINED: PEER_JOINED_MANY, PEER_DEAD: PEER_DEAD_MANY, I_AM_PEER: I_AM_PEER_MANY}


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
    if message in _COUNTED:
        message, fields = _counted(message, fields)
    values = {
        key: printable(value if isinstance(value, str) else " ".join(value))
        for key, value in fields.items()
    }
    return _translations(languages).gettext(message).format(**values).rstrip()


def _counted(
    message: str, fields: Mapping[str, str | Iterable[str]]
) -> tuple[str, Mapping[str, str | Iterable[str]]]:
    """`message` and `fields` as they are for a short file list, else the counted form."""
    files = fields["files"]
    names = [files] if isinstance(files, str) else list(files)
    if len(names) <= MAX_LISTED and len(printable(" ".join(names))) <= MAX_LISTED_CHARS:
        return message, {**fields, "files": names}
    shown = names[:1]
    for name in names[1:SAMPLE_NAMES]:
        if len(printable(" ".join([*shown, name]))) > SAMPLE_CHARS:
            break
        shown.append(name)
    counts = {"count": str(len(names)), "more": str(len(names) - len(shown))}
    return _COUNTED[message], {**fields, "files": shown, **counts}


def say(message: str, **fields: str | Iterable[str]) -> None:
    """Print one console line to stdout, at once."""
    show(render(message, fields))


def tr(message: str, /, **fields: object) -> str:
    """`message` in the user's language, with `fields` put in (`str.format`)."""
    return _translations(None).gettext(message).format(**fields)


class LocalizedError(Exception):
    """An error whose `str()` is English (for logs, and for a server's answer to a remote
    caller) and whose `localized()` is the same message in the user's language."""

    def __init__(self, template: str, /, **fields: object) -> None:
        super().__init__(template.format(**fields))
        self.template = template
        self.fields = fields

    def localized(self) -> str:
        """The message in the user's language."""
        return tr(self.template, **self.fields)


def localized(error: BaseException) -> str:
    """What to show the user for `error`: its translation where it has one, else `str()`."""
    return error.localized() if isinstance(error, LocalizedError) else str(error)
