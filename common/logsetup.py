"""Logging for the command lines: call configure() in main() before anything loads gRPC.

Log lines come from requests a stranger sends, so they are bounded (common.linelimit): at
most LOG_LINES of one kind (logger, level and format string) in LOG_WINDOW_SECONDS, then
one line says how many were left out; every line is cut to MAX_LINE_CHARS.
"""

import argparse
import logging
import os
import sys
from typing import TextIO

from napshare.common.console import printable, tr
from napshare.common.linelimit import (
    LOG_LINES,
    LOG_WINDOW_SECONDS,
    MAX_LINE_CHARS,
    LineLimiter,
    cut,
)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_log_level_flag(parser: argparse.ArgumentParser) -> None:
    """--log-level of the servers (tracker, relay): their diagnostics on stderr, INFO and up."""
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="INFO",
        help=tr("diagnostics on stderr (default %(default)s)"),
    )


class EscapingFormatter(logging.Formatter):
    """Escapes control characters in the message: log lines embed names from the network."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        """The line without its traceback, escaped and cut (a traceback keeps its own lines)."""
        return cut(printable(super().formatMessage(record)), MAX_LINE_CHARS)


class LimitedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes at most `lines` lines of one kind in `seconds`.

    Unless given a stream (setStream), it writes to whatever `sys.stderr` is when it writes:
    while a progress bar is drawn, that is the bar's stand-in, which prints the line above
    the bar and draws the bar again.
    """

    def __init__(self, lines: int = LOG_LINES, seconds: float = LOG_WINDOW_SECONDS) -> None:
        self._stream: TextIO | None = None
        super().__init__()
        self._stream = None  # StreamHandler set it to sys.stderr as it was then
        self._limiter = LineLimiter(lines, seconds)

    @property
    def stream(self) -> TextIO:
        """The stream given, else standard error as it is now."""
        return sys.stderr if self._stream is None else self._stream

    @stream.setter
    def stream(self, stream: TextIO) -> None:
        self._stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        """Write `record` unless too many of its kind came in this window; first say how
        many lines of any kind were left out in windows now over.
        """
        self._report_left_out()
        if self._limiter.admit((record.name, record.levelno, str(record.msg)[:200])):
            super().emit(record)

    def close(self) -> None:
        """Say how many lines were left out in the last windows, then close."""
        self._report_left_out(everything=True)
        super().close()

    def _report_left_out(self, *, everything: bool = False) -> None:
        for (name, level, template), count in self._limiter.left_out(everything=everything):
            super().emit(
                logging.LogRecord(
                    name,
                    level,
                    __file__,
                    0,
                    "… %d similar lines left out: %s",
                    (count, template),
                    None,
                )
            )


def configure(level: str) -> None:
    """Log at `level` (any case) to stderr; below DEBUG, silence gRPC core's own error lines."""
    level = level.upper()
    if level != "DEBUG":
        # gRPC's core would print its own copy of errors that are reported in one line.
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    handler = LimitedHandler()
    handler.setFormatter(EscapingFormatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
