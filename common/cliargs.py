"""Argument parsing that both command lines share: one-line errors and checked numbers."""

import argparse
import importlib.metadata
import math
import re
import sys
from collections.abc import Callable
from typing import NoReturn

from napshare.common.address import InvalidAddressError, check_host
from napshare.common.console import localized, tr
from napshare.common.exitcodes import ExitCode
from napshare.common.ratelimit import parse_rate

METRICS_HOST = "127.0.0.1"
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"(\d+)([KMGT]?)(?:I?B)?")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, not usage plus a line."""

    def error(self, message: str) -> NoReturn:
        usage_error(self.prog, message)


def usage_error(prog: str, message: str) -> NoReturn:
    """Exit with ExitCode.USAGE after one line on stderr: `prog: message (see --help)`."""
    sys.stderr.write(tr("{prog}: {message} (see --help)", prog=prog, message=message) + "\n")
    sys.exit(ExitCode.USAGE)


def add_version(parser: argparse.ArgumentParser) -> None:
    """`--version`: the program's name and napshare's version, as installed."""
    try:
        version = importlib.metadata.version("napshare")
    except importlib.metadata.PackageNotFoundError:  # run from a tree that was not installed
        version = "unknown"
    parser.add_argument(
        "--version",
        action="version",
        version=f"{parser.prog} {version}",
        help=tr("print the version and exit"),
    )


def positive_number(text: str) -> float:
    """A finite number above zero, such as a number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(tr("{text} is not a positive number", text=repr(text)))
    return value


def non_negative_number(text: str) -> float:
    """A finite number of zero or more, such as a rate where 0 turns a check off."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(tr("{text} is not a number of 0 or more", text=repr(text)))
    return value


def byte_rate(text: str) -> float:
    """Bytes per second, such as 500K or 30M (common.ratelimit.parse_rate); 0 for no limit."""
    try:
        return parse_rate(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            tr(
                "{text} is not a rate: bytes per second, with K, M or G for 1024, 1024² or "
                "1024³ (500K, 30M); 0 for no limit",
                text=repr(text),
            )
        ) from None


def parse_size(text: str) -> int:
    """Bytes from `1G`, `512MiB`, `64K` or `4096` (binary units); ValueError otherwise."""
    match = _SIZE.fullmatch(text.strip().upper())
    if match is None:
        raise ValueError(f"{text!r} is not a number of bytes")
    return int(match.group(1)) * _UNITS[match.group(2)]


def byte_size(text: str) -> int:
    """A number of bytes, such as 512M or 1T (parse_size), for a flag."""
    try:
        return parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            tr(
                "{text} is not a number of bytes; write it with an optional K, M, G or T "
                "(1024, 1024², ...), such as 512M or 1G",
                text=repr(text),
            )
        ) from None


def int_in_range(low: int, high: int) -> Callable[[str], int]:
    """A parser of whole numbers from `low` to `high`."""

    def parse(text: str) -> int:
        if not text.isdigit() or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(
                tr(
                    "{text} is not a number from {low} to {high}",
                    text=repr(text),
                    low=low,
                    high=high,
                )
            )
        return int(text)

    return parse


def add_metrics_flags(parser: argparse.ArgumentParser) -> None:
    """--metrics-port and --metrics-host, the same on the tracker and on `serve`."""
    parser.add_argument(
        "--metrics-port",
        type=int_in_range(0, 65535),
        default=None,
        metavar="PORT",
        help=tr(
            "serve Prometheus metrics over HTTP on PORT at /metrics; 0 picks a free one, "
            "printed (default: no metrics)"
        ),
    )
    parser.add_argument(
        "--metrics-host",
        type=host_name,
        default=METRICS_HOST,
        metavar="ADDR",
        help=tr(
            "the address the metrics listen on (default: {host}; the metrics name peers and "
            "files, so open them to other hosts only on purpose)",
            host=METRICS_HOST,
        ),
    )


def host_name(text: str) -> str:
    """An IP address or DNS name, normalised."""
    try:
        return check_host(text)
    except InvalidAddressError as error:
        raise argparse.ArgumentTypeError(localized(error)) from None
