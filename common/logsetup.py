"""Logging for the command lines: call configure() in main() before anything loads gRPC."""

import logging
import os
import sys

from napshare.common.console import printable

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class EscapingFormatter(logging.Formatter):
    """Escapes control characters in the message: log lines embed names from the network."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        """The line without its traceback, escaped (a traceback keeps its own lines)."""
        return printable(super().formatMessage(record))


def configure(level: str) -> None:
    """Log at `level` (any case) to stderr; below DEBUG, silence gRPC core's own error lines."""
    level = level.upper()
    if level != "DEBUG":
        # gRPC's core would print its own copy of errors that are reported in one line.
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EscapingFormatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
