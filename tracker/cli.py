"""The napshare-tracker command: parse flags, serve until SIGINT or SIGTERM, stop gracefully."""

import argparse
import math
import sys
from collections.abc import Sequence
from typing import NoReturn

from common import logsetup
from common.address import format_address
from tracker.index import DEFAULT_HEARTBEAT_INTERVAL

# This module loads no gRPC: main() must set GRPC_VERBOSITY before gRPC's core starts.
DEFAULT_PORT = 1099


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, not usage plus a line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"port {text!r} must be a number from 0 to 65535")
    return int(text)


def _interval(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"interval {text!r} must be a positive number of seconds")
    return seconds


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="napshare-tracker",
        description="The napshare tracker: the central index of which peer shares which file.",
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help="port to listen on; 0 picks a free one"
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=_interval,
        default=DEFAULT_HEARTBEAT_INTERVAL,
        metavar="SECONDS",
        help="how often peers must call Heartbeat; a peer silent for three intervals is "
        "dropped (default 30; fractions are for tests)",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=logsetup.LOG_LEVELS,
        default="INFO",
        help="diagnostics on stderr (default INFO)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tracker until SIGINT or SIGTERM; return the exit status."""
    args = _parser().parse_args(argv)
    logsetup.configure(args.log_level)
    from grpc_health.v1.health import HealthServicer  # noqa: PLC0415 - only now may gRPC load

    from common.serving import PortInUseError, stop_gracefully, wait_for_signal  # noqa: PLC0415
    from tracker.server import create_server  # noqa: PLC0415

    health = HealthServicer()
    try:
        server, port = create_server(
            host=args.host,
            port=args.port,
            heartbeat_interval=args.heartbeat_interval,
            health=health,
        )
    except PortInUseError as error:
        print(f"napshare-tracker: {error}", file=sys.stderr)
        return 1
    address = format_address(args.host, port)
    wait_for_signal(ready=lambda: print(f"napshare tracker listening on {address}", flush=True))
    stop_gracefully(server, health)
    return 0
