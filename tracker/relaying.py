"""The tracker's relay: its own beside it (the default), another one it hands out, or none.

A tracker signs relay tickets with its identity, so one serving plain text offers no relay.
Its own relay listens on the tracker's host at the tracker's port + 1 (--relay-port), trusts
the tracker's certificate and has the caps of relay.caps (--relay-max-...); Connect hands
out `:PORT`, the tracker's host as the caller dialled it. --relay HOST:PORT hands out a relay
run with napshare-relay --tracker-cert (this tracker's cert.pem) instead.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from napshare.common.address import InvalidAddressError, format_address, normal_address
from napshare.common.addresskey import address_key_from_args
from napshare.common.cliargs import int_in_range
from napshare.common.console import localized, tr
from napshare.common.relay_wire import sign_ticket
from napshare.relay.caps import add_cap_flags, caps_from_args

if TYPE_CHECKING:
    from napshare.common.identity import Identity
    from napshare.common.metrics import Metrics
    from napshare.relay.server import Relay
    from napshare.v1 import relay_pb2

# This module loads no gRPC (the tracker's CLI imports it before main() sets gRPC up).

CAP_PREFIX = "relay-"  # the tracker's relay cap flags: --relay-max-session-bytes, ...


@dataclass
class TrackerRelay:
    """The relay a tracker hands out: `address` as Connect gives it (`:PORT` for its own),
    `sign` to make a ticket for it, and `relay` when the tracker runs it.
    """

    address: str
    sign: Callable[[relay_pb2.RelayTicket], bytes]
    relay: Relay | None = None

    def line(self, host: str) -> str:
        """The tracker's start line about its relay."""
        if self.relay is None:
            return tr("handing out the relay at {address}", address=self.address)
        return tr("relay listening on {address}", address=format_address(host, self.relay.port))

    def stop(self) -> None:
        """Stop the tracker's own relay, if it runs one (its sessions end)."""
        if self.relay is not None:
            self.relay.stop()


def add_relay_flags(parser: argparse.ArgumentParser) -> None:
    """--relay-port, --no-relay, --relay and the caps of the tracker's own relay."""
    group = parser.add_argument_group(
        tr("relay"),
        tr(
            "peers that cannot reach each other meet at a relay, which carries their "
            "end-to-end encrypted bytes; a tracker serving plain text offers none"
        ),
    )
    which = group.add_mutually_exclusive_group()
    which.add_argument(
        "--relay-port",
        type=int_in_range(0, 65535),
        default=None,
        metavar="PORT",
        help=tr(
            "port of the tracker's own relay, on --host; 0 picks a free one (default: the "
            "tracker's port + 1, a free one when --port is 0)"
        ),
    )
    which.add_argument(
        "--no-relay",
        action="store_true",
        help=tr("run no relay and hand out none (Connect answers RELAY_UNAVAILABLE)"),
    )
    which.add_argument(
        "--relay",
        type=_relay_address,
        metavar="HOST:PORT",
        help=tr(
            "hand out this relay instead of running one; it must trust this tracker's "
            "certificate (napshare-relay --tracker-cert)"
        ),
    )
    add_cap_flags(parser, CAP_PREFIX)


def check_relay_flags(args: argparse.Namespace) -> str | None:
    """Why the relay flags cannot be used together with the others, or None."""
    if args.plaintext and (args.relay is not None or args.relay_port is not None):
        return tr(
            "a tracker serving plain text (--plaintext) has no key to sign relay tickets: "
            "drop --relay and --relay-port"
        )
    return None


def relay_port(args: argparse.Namespace, tracker_port: int) -> int:
    """The port of the tracker's own relay: --relay-port, else the tracker's port + 1."""
    if args.relay_port is not None:
        port: int = args.relay_port
        return port
    if tracker_port in (0, 65535):
        return 0
    return tracker_port + 1


def start_relay(
    args: argparse.Namespace, identity: Identity | None, metrics: Metrics | None = None
) -> TrackerRelay | None:
    """The relay the tracker hands out, started if it is its own; None without one.

    Raises common.serving.PortInUseError if its own relay's address cannot be bound.
    """
    if identity is None or args.no_relay:
        return None
    sign = functools.partial(sign_ticket, identity)
    if args.relay is not None:
        return TrackerRelay(args.relay, sign)
    from napshare.common.serving import PortInUseError  # noqa: PLC0415 - loads gRPC
    from napshare.relay.server import create_relay  # noqa: PLC0415

    try:
        relay, port = create_relay(
            args.host,
            relay_port(args, args.port),
            [identity.certificate_der],
            caps_from_args(args, CAP_PREFIX),
            metrics=metrics,
            address_key=address_key_from_args(args),
        )
    except PortInUseError as error:
        raise PortInUseError(
            tr(
                "the tracker's relay: {error}; choose another with --relay-port, or run "
                "none with --no-relay",
                error=error,
            )
        ) from None
    return TrackerRelay(f":{port}", sign, relay)


def _relay_address(text: str) -> str:
    try:
        return normal_address(text)
    except InvalidAddressError as error:
        raise argparse.ArgumentTypeError(localized(error)) from None
