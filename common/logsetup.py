"""Logging for the command lines: call configure() in main() before anything loads gRPC."""

import logging
import os
import sys

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def configure(level: str) -> None:
    """Log at `level` (any case) to stderr; below DEBUG, silence gRPC core's own error lines."""
    level = level.upper()
    if level != "DEBUG":
        # gRPC's core would print its own copy of errors that are reported in one line.
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
