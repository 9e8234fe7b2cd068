"""Argument parsing that both command lines share: one-line errors and checked numbers."""

import argparse
import math
from collections.abc import Callable
from typing import NoReturn

from napshare.common.console import tr
from napshare.common.exitcodes import ExitCode


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, not usage plus a line."""

    def error(self, message: str) -> NoReturn:
        self.exit(
            ExitCode.USAGE,
            tr("{prog}: {message} (see --help)", prog=self.prog, message=message) + "\n",
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
