"""The napshare-tracker command: parse flags, serve until SIGINT or SIGTERM, stop gracefully."""

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from napshare.common import logsetup
from napshare.common.address import format_address
from napshare.common.addresskey import add_ipv6_prefix_flag, address_key_from_args
from napshare.common.cliargs import (
    OneLineParser,
    add_metrics_flags,
    add_version,
    int_in_range,
    non_negative_number,
    positive_number,
)
from napshare.common.console import tr
from napshare.common.exitcodes import ExitCode, epilog
from napshare.common.protocol import HEARTBEAT_INTERVAL, LEASE_INTERVALS, TRACKER_PORT
from napshare.tracker import console
from napshare.tracker.connects import (
    CONNECT_BURST_SECONDS,
    CONNECT_RATE,
    MAX_PEER_DIALS,
    PENDING_SECONDS,
)
from napshare.tracker.largejoins import LARGE_JOIN_FILES, LARGE_JOIN_INTERVAL
from napshare.tracker.limits import (
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_ADDRESS,
    Limits,
    flag,
)
from napshare.tracker.relaying import add_relay_flags, check_relay_flags, start_relay
from napshare.tracker.store.base import (
    MAX_CANDIDATES,
    MAX_CONCURRENT_SEARCHES,
    MAX_JOIN_NONCES,
    NONCE_SECONDS,
)
from napshare.tracker.store.factory import MEMORY, check_store
from napshare.tracker.switchboard import LISTEN_KEEPALIVE, MAX_LISTENERS

if TYPE_CHECKING:
    from napshare.common.identity import Identity

# This module loads no gRPC: main() must set GRPC_VERBOSITY before gRPC's core starts.

MAX_LIMIT = 10**12  # what a --max-... flag accepts: far past any tracker's memory

EXIT_CODES = (
    ExitCode.OK,
    ExitCode.OTHER,
    ExitCode.USAGE,
    ExitCode.PORT_IN_USE,
    ExitCode.IDENTITY_FILES,
    ExitCode.STORE_UNAVAILABLE,
)
IDENTITY_DIR = "identity"  # in the state folder: the tracker's own key.pem and cert.pem


def default_state_dir() -> Path:
    """Where the tracker keeps its own certificate: $XDG_STATE_HOME/napshare-tracker, or
    ~/.local/state/napshare-tracker.
    """
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "napshare-tracker"


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="napshare-tracker",
        description=tr("The napshare tracker: the central index of which peer shares which file."),
        epilog=epilog(EXIT_CODES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(parser)
    parser.add_argument(
        "--host", default="0.0.0.0", help=tr("address to listen on (default 0.0.0.0)")
    )
    parser.add_argument(
        "--port",
        type=int_in_range(0, 65535),
        default=TRACKER_PORT,
        help=tr("port to listen on; 0 picks a free one"),
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=positive_number,
        default=HEARTBEAT_INTERVAL,
        metavar="SECONDS",
        help=tr(
            "how often peers must call Heartbeat; a peer silent for {intervals} intervals is "
            "dropped (default %(default)g; fractions are for tests)",
            intervals=LEASE_INTERVALS,
        ),
    )
    parser.add_argument(
        "--max-concurrent-searches",
        type=int_in_range(1, 1024),
        default=MAX_CONCURRENT_SEARCHES,
        metavar="N",
        help=tr(
            "broad keyword searches (words found in more than {names} names) run at once; "
            "more are refused with RESOURCE_EXHAUSTED and a time to ask again "
            "(default %(default)s)",
            names=MAX_CANDIDATES,
        ),
    )
    parser.add_argument(
        "--plaintext",
        action="store_true",
        help=tr("serve plain text instead of TLS, for a network you trust (grpcurl -plaintext)"),
    )
    parser.add_argument(
        "--tls-cert",
        metavar="FILE",
        help=tr(
            "serve TLS with this PEM certificate (with --tls-key) instead of the tracker's own"
        ),
    )
    parser.add_argument(
        "--tls-key", metavar="FILE", help=tr("the PEM private key of --tls-cert (unencrypted)")
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help=tr(
            "where the tracker keeps its own certificate, made on first start "
            "(DIR/{identity}/cert.pem and key.pem, owner-only; default: {default})",
            identity=IDENTITY_DIR,
            default="$XDG_STATE_HOME/napshare-tracker or ~/.local/state/napshare-tracker",
        ),
    )
    parser.add_argument(
        "--store",
        type=_store,
        default=MEMORY,
        metavar="URL",
        help=tr(
            "where the index lives: memory (this process; a restart forgets it), or a Redis or "
            "Valkey server, redis://HOST:PORT/DB, rediss://... (TLS) or unix:///PATH?db=N, "
            "which every tracker given the same URL shares: replicas answering as one "
            "(default %(default)s)"
        ),
    )
    _add_limit_flags(parser)
    add_relay_flags(parser)
    _add_reach_flags(parser)
    add_metrics_flags(parser)
    logsetup.add_log_level_flag(parser)
    return parser


def _store(value: str) -> str:
    try:
        return check_store(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_limit_flags(parser: argparse.ArgumentParser) -> None:
    """A --max-... flag for every field of Limits, with the field's default."""
    limits = Limits()
    helps = {
        "peers_per_address": tr(
            "registrations (peers) from one IP address (default {n:,})", n=limits.peers_per_address
        ),
        "files_per_address": tr(
            "files the peers of one IP address share, in all (default {n:,})",
            n=limits.files_per_address,
        ),
        "name_bytes_per_address": tr(
            "bytes of file names the peers of one IP address share (default {n:,})",
            n=limits.name_bytes_per_address,
        ),
        "peers": tr("registrations in the whole index (default {n:,})", n=limits.peers),
        "files": tr(
            "files in the whole index, once per peer that shares each (default {n:,})",
            n=limits.files,
        ),
        "name_bytes": tr(
            "bytes of distinct file names in the whole index (default {n:,})",
            n=limits.name_bytes,
        ),
    }
    group = parser.add_argument_group(
        tr("limits"),
        tr("past a limit, Join and Update answer RESOURCE_EXHAUSTED and change nothing"),
    )
    for limit in Limits.__dataclass_fields__:
        group.add_argument(
            flag(limit),
            dest=f"max_{limit}",
            type=int_in_range(1, MAX_LIMIT),
            default=getattr(limits, limit),
            metavar="N",
            help=helps[limit],
        )
    group.add_argument(
        "--max-connections",
        type=int_in_range(16, MAX_LIMIT),
        default=MAX_CONNECTIONS,
        metavar="N",
        help=tr(
            "connections held at once, within the open files this process may have; more are "
            "closed at once (default {n:,})",
            n=MAX_CONNECTIONS,
        ),
    )
    group.add_argument(
        "--max-connections-per-address",
        type=int_in_range(1, MAX_LIMIT),
        default=MAX_CONNECTIONS_PER_ADDRESS,
        metavar="N",
        help=tr(
            "connections from one IP address at once; past it, its newest are closed and it "
            "may open no more until it holds fewer (default {n:,})",
            n=MAX_CONNECTIONS_PER_ADDRESS,
        ),
    )
    group.add_argument(
        "--large-join-files",
        type=int_in_range(1, MAX_LIMIT),
        default=LARGE_JOIN_FILES,
        metavar="N",
        help=tr(
            "a Join of this many files or more is large: one address or identity may send "
            "one every --large-join-interval (default {n:,})",
            n=LARGE_JOIN_FILES,
        ),
    )
    group.add_argument(
        "--large-join-interval",
        type=non_negative_number,
        default=LARGE_JOIN_INTERVAL,
        metavar="SECONDS",
        help=tr(
            "seconds between two large Joins of one address or identity; one sooner is "
            "refused with RESOURCE_EXHAUSTED and the time to wait (default {n:g}; 0: no limit)",
            n=LARGE_JOIN_INTERVAL,
        ),
    )
    add_ipv6_prefix_flag(group)
    group.add_argument(
        "--max-join-nonces",
        type=int_in_range(1, MAX_LIMIT),
        default=MAX_JOIN_NONCES,
        metavar="N",
        help=tr(
            "signed Joins remembered at once, each for {seconds} s, so that none is taken "
            "twice (a copy of one seen on the wire); past it, signed Joins are refused with "
            "RESOURCE_EXHAUSTED until the oldest is forgotten (default {n:,})",
            seconds=NONCE_SECONDS,
            n=MAX_JOIN_NONCES,
        ),
    )


def _add_reach_flags(parser: argparse.ArgumentParser) -> None:
    """Flags of Listen and Connect: how peers behind a NAT or firewall are reached."""
    group = parser.add_argument_group(
        tr("reaching peers behind a NAT"),
        tr("a peer the tracker cannot reach holds a Listen stream; Connect asks it to dial out"),
    )
    group.add_argument(
        "--max-listeners",
        type=int_in_range(1, 100_000),
        default=MAX_LISTENERS,
        metavar="N",
        help=tr(
            "Listen streams held at once, each a thread; more are refused with "
            "RESOURCE_EXHAUSTED (default {n:,})",
            n=MAX_LISTENERS,
        ),
    )
    group.add_argument(
        "--listen-keepalive",
        type=positive_number,
        default=LISTEN_KEEPALIVE,
        metavar="SECONDS",
        help=tr(
            "how often a Listen stream carries a keepalive when nothing else is sent, so home "
            "routers keep its mapping (default %(default)g)"
        ),
    )
    group.add_argument(
        "--connect-rate",
        type=positive_number,
        default=CONNECT_RATE,
        metavar="N",
        help=tr(
            "Connect calls a second from one IP address, in bursts of {seconds:g} s of it; more "
            "are refused with RESOURCE_EXHAUSTED (default %(default)g)",
            seconds=CONNECT_BURST_SECONDS,
        ),
    )
    group.add_argument(
        "--max-peer-dials",
        type=int_in_range(1, 10_000),
        default=MAX_PEER_DIALS,
        metavar="N",
        help=tr(
            "dials sent to one peer in {seconds:g} s; Connect calls past it are refused with "
            "RESOURCE_EXHAUSTED (default %(default)s)",
            seconds=PENDING_SECONDS,
        ),
    )


def _limits(args: argparse.Namespace) -> Limits:
    """The Limits that the --max-... flags set."""
    return Limits(**{limit: getattr(args, f"max_{limit}") for limit in Limits.__dataclass_fields__})


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tracker until SIGINT or SIGTERM; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error(tr("--tls-cert and --tls-key go together"))
    if args.plaintext and args.tls_cert is not None:
        parser.error(tr("--plaintext serves no TLS: drop --tls-cert and --tls-key"))
    if relay_error := check_relay_flags(args):
        parser.error(relay_error)
    logsetup.configure(args.log_level)
    for handler in logging.getLogger().handlers:
        handler.addFilter(console.ConsoleFirst())
    from grpc_health.v1.health import HealthServicer  # noqa: PLC0415 - only now may gRPC load
    from napshare.common.identity import IdentityError  # noqa: PLC0415
    from napshare.common.serving import (  # noqa: PLC0415
        PortInUseError,
        raise_open_files_limit,
        stop_gracefully,
        wait_for_signal,
    )
    from napshare.tracker.errors import TrackerError  # noqa: PLC0415
    from napshare.tracker.server import create_server, tracker_metrics  # noqa: PLC0415
    from napshare.tracker.store.factory import StoreConfigError, open_store  # noqa: PLC0415

    raise_open_files_limit()  # a service's soft limit (often 1,024) holds few connections
    try:
        identity = None if args.plaintext else _identity(args)
    except (IdentityError, OSError) as error:
        print(f"napshare-tracker: {error}", file=sys.stderr)
        return ExitCode.IDENTITY_FILES
    try:
        store = open_store(
            args.store,
            args.heartbeat_interval,
            max_concurrent_searches=args.max_concurrent_searches,
            limits=_limits(args),
            address_key=address_key_from_args(args),
            max_join_nonces=args.max_join_nonces,
            large_join_files=args.large_join_files,
            large_join_interval=args.large_join_interval,
        )
    except StoreConfigError as error:
        print(f"napshare-tracker: {error}", file=sys.stderr)
        return ExitCode.STORE_UNAVAILABLE
    health = HealthServicer()
    metrics = None if args.metrics_port is None else tracker_metrics()
    try:
        switchboard = store.switchboard(args.max_listeners)
    except TrackerError as error:
        store.close()
        print(f"napshare-tracker: {error}", file=sys.stderr)
        return ExitCode.STORE_UNAVAILABLE
    endpoint = None
    relay = None
    try:
        relay = start_relay(args, identity, metrics)
        server, port = create_server(
            store,
            host=args.host,
            port=args.port,
            health=health,
            metrics=metrics,
            tls=identity,
            switchboard=switchboard,
            listen_keepalive=args.listen_keepalive,
            connect_rate=args.connect_rate,
            max_peer_dials=args.max_peer_dials,
            relay=relay,
            max_connections=args.max_connections,
            max_connections_per_address=args.max_connections_per_address,
        )
        if metrics is not None:
            try:
                endpoint = metrics.serve(args.metrics_host, args.metrics_port)
            except PortInUseError:
                server.stop(None)
                raise
    except PortInUseError as error:
        if relay is not None:
            relay.stop()
        store.close()
        print(f"napshare-tracker: {error}", file=sys.stderr)
        return ExitCode.PORT_IN_USE
    address = format_address(args.host, port)
    lines = [tr("napshare tracker listening on {address}", address=address)]
    if relay is not None:
        lines.append(relay.line(args.host))
    if identity is None:
        security = tr("serving plain text (--plaintext): anyone on the path can read it")
    else:
        security = tr(
            "serving TLS; certificate SHA-256 fingerprint {fingerprint}",
            fingerprint=identity.fingerprint,
        )
    if endpoint is not None:
        lines.append(endpoint.line())

    def ready() -> None:
        print(*lines, sep="\n", flush=True)
        print(security, file=sys.stderr, flush=True)  # stdout stays the lines scripts read

    wait_for_signal(ready=ready)
    switchboard.close()  # Listen streams end now, not after the grace period
    stop_gracefully(server, health)
    if relay is not None:
        relay.stop()
    store.close()
    if endpoint is not None:
        endpoint.close()
    return ExitCode.OK


def _identity(args: argparse.Namespace) -> "Identity":
    """The tracker's TLS identity: --tls-cert and --tls-key, else its own (made if needed)."""
    from napshare.common.identity import (  # noqa: PLC0415
        TRACKER_NAME,
        IdentityError,
        identity_from_pem,
        load_or_create,
    )

    if args.tls_cert is not None:
        try:
            cert = Path(args.tls_cert).read_bytes()
            key = Path(args.tls_key).read_bytes()
        except OSError as error:
            raise IdentityError(f"cannot read {error.filename}: {error.strerror}") from None
        try:
            return identity_from_pem(key, cert)
        except IdentityError as error:
            raise IdentityError(f"{args.tls_cert}, {args.tls_key}: {error}") from None
    state = Path(args.state_dir) if args.state_dir else default_state_dir()
    directory = state / IDENTITY_DIR
    names = ["localhost", "127.0.0.1", "::1"]
    if args.host not in ("0.0.0.0", "::", ""):
        names.append(args.host)
    try:
        return load_or_create(str(directory), TRACKER_NAME, names)
    except IdentityError as error:
        raise IdentityError(
            f"the tracker's identity in {directory} is unusable: {error}; delete the folder to "
            "make a new one (peers that pinned the old one will refuse it)"
        ) from None
