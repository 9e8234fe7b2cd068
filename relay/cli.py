"""The napshare-relay command: parse flags, relay until SIGINT or SIGTERM, stop gracefully."""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from napshare.common import logsetup
from napshare.common.address import format_address
from napshare.common.addresskey import add_ipv6_prefix_flag, address_key_from_args
from napshare.common.cliargs import OneLineParser, add_metrics_flags, host_name, int_in_range
from napshare.common.console import tr
from napshare.common.exitcodes import ExitCode, epilog
from napshare.common.identity import IdentityError, certificates_in, fingerprint
from napshare.common.protocol import RELAY_PORT
from napshare.common.relay_wire import trusted_key
from napshare.relay.caps import add_cap_flags, caps_from_args

# This module loads no gRPC: main() must set GRPC_VERBOSITY before gRPC's core starts.

EXIT_CODES = (
    ExitCode.OK,
    ExitCode.OTHER,
    ExitCode.USAGE,
    ExitCode.PORT_IN_USE,
    ExitCode.IDENTITY_FILES,
)


class TrustedCertError(Exception):
    """A --tracker-cert file that is unreadable or holds no usable certificate."""


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="napshare-relay",
        description=tr(
            "The napshare relay: pairs two peers that cannot reach each other, with tickets "
            "from the trackers it trusts, and carries their end-to-end encrypted bytes."
        ),
        epilog=epilog(EXIT_CODES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host",
        type=host_name,
        default="0.0.0.0",
        help=tr("address to listen on (default 0.0.0.0)"),
    )
    parser.add_argument(
        "--port",
        type=int_in_range(0, 65535),
        default=RELAY_PORT,
        help=tr("port to listen on; 0 picks a free one (default %(default)s)"),
    )
    parser.add_argument(
        "--tracker-cert",
        action="append",
        required=True,
        metavar="FILE",
        help=tr(
            "accept the tickets of the tracker with this PEM certificate (its "
            "identity/cert.pem); repeat it for several trackers"
        ),
    )
    add_cap_flags(parser)
    add_ipv6_prefix_flag(parser)
    add_metrics_flags(parser)
    logsetup.add_log_level_flag(parser)
    return parser


def read_trusted(paths: Sequence[str]) -> list[bytes]:
    """The certificates (DER) of the --tracker-cert files; TrustedCertError naming a bad one."""
    trusted: list[bytes] = []
    for path in paths:
        try:
            found = certificates_in(Path(path).read_bytes())
            for certificate in found:
                trusted_key(certificate)
        except OSError as error:
            raise TrustedCertError(
                tr("cannot read {path}: {error}", path=path, error=error.strerror)
            ) from None
        except (IdentityError, ValueError) as error:
            raise TrustedCertError(f"{path}: {error}") from None
        trusted += found
    return list(dict.fromkeys(trusted))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the relay until SIGINT or SIGTERM; return the exit status."""
    args = _parser().parse_args(argv)
    logsetup.configure(args.log_level)
    from napshare.common.metrics import Metrics  # noqa: PLC0415 - only now may gRPC load
    from napshare.common.serving import PortInUseError, wait_for_signal  # noqa: PLC0415
    from napshare.relay.server import create_relay  # noqa: PLC0415

    try:
        trusted = read_trusted(args.tracker_cert)
    except TrustedCertError as error:
        print(f"napshare-relay: {error}", file=sys.stderr)
        return ExitCode.IDENTITY_FILES
    metrics = None if args.metrics_port is None else Metrics("napshare")
    endpoint = None
    try:
        relay, port = create_relay(
            args.host,
            args.port,
            trusted,
            caps_from_args(args),
            metrics=metrics,
            address_key=address_key_from_args(args),
        )
        if metrics is not None:
            try:
                endpoint = metrics.serve(args.metrics_host, args.metrics_port)
            except PortInUseError:
                relay.stop()
                raise
    except PortInUseError as error:
        print(f"napshare-relay: {error}", file=sys.stderr)
        return ExitCode.PORT_IN_USE
    lines = [tr("napshare relay listening on {address}", address=format_address(args.host, port))]
    if endpoint is not None:
        lines.append(endpoint.line())
    trusting = [
        tr("accepting the tickets of the tracker {fingerprint}", fingerprint=fingerprint(der))
        for der in trusted
    ]

    def ready() -> None:
        print(*lines, sep="\n", flush=True)
        print(*trusting, sep="\n", file=sys.stderr, flush=True)  # stdout: the lines scripts read

    wait_for_signal(ready=ready)
    relay.stop()
    if endpoint is not None:
        endpoint.close()
    return ExitCode.OK
