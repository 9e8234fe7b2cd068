"""The tracker's console lines: common.console's wording, without a flush after every line.

A busy tracker prints a line per search. Flushing each one costs a system call, during
which another thread takes the GIL; the lease reaper calls flush() ten times a second
instead. (On a terminal, stdout is line-buffered and every line still shows at once.)
"""

import logging
import sys
from collections.abc import Iterable

from common.console import render

logger = logging.getLogger(__name__)


def say(message: str, **fields: str | Iterable[str]) -> None:
    """Write one console line; a closed or broken stdout never fails the RPC."""
    try:
        sys.stdout.write(render(message, fields) + "\n")
    except (OSError, ValueError) as error:
        logger.debug("console line lost: %s", error)


def flush() -> None:
    """Push the lines written so far to stdout."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError) as error:
        logger.debug("console lines lost: %s", error)
