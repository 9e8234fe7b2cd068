"""What every napshare gRPC server has: health, reflection, binding, graceful stop, and its
bounds on connections: a short TLS handshake, at most so many connections in all (within the
process's open files, raised to the hard limit at start) and per address (common.conncap).
"""

import logging
import resource
import signal
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2
from napshare.common.address import format_address
from napshare.common.addresskey import AddressKey
from napshare.common.conncap import ConnectionCap
from napshare.common.console import tr
from napshare.common.messages import MalformedRequestError, abort_malformed, parse_request
from napshare.common.reflection import enable_reflection

logger = logging.getLogger(__name__)

GRACE_SECONDS = 5.0
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
# Calls accepted at once, queued or running; past it gRPC answers RESOURCE_EXHAUSTED.
MAX_CONCURRENT_RPCS = 4096
# gRPC core holds the calls that Python has not picked up yet (Python takes them one at a
# time, under the GIL) and, once more than grpc.server.max_pending_requests (default 1000)
# wait, drops some at random with a bare CANCELLED ("Too many pending requests for this
# server"): a burst of 2,000 searches lost 1-2% that way. Up to MAX_CONCURRENT_RPCS may wait.
BACKLOG_OPTIONS = [
    ("grpc.server.max_pending_requests", MAX_CONCURRENT_RPCS),
    ("grpc.server.max_pending_requests_hard_limit", MAX_CONCURRENT_RPCS),
]

# A connection must finish its TLS handshake within this long, or it is closed (gRPC's own
# default is 120 s: 1,100 connections that never finish took a process's 1,024 open files).
HANDSHAKE_SECONDS = 5.0
# Open files a server leaves to the rest of its process (files served or written, channels
# to a tracker, a store, other peers, pipes) when it bounds its connections by the limit.
FDS_KEPT = 256


def connection_options(max_connections: int) -> list[tuple[str, int]]:
    """Server options that close a connection whose TLS handshake takes longer than
    HANDSHAKE_SECONDS, and any connection past `max_connections` at once.
    """
    return [
        ("grpc.server_handshake_timeout_ms", round(HANDSHAKE_SECONDS * 1000)),
        ("grpc.max_allowed_incoming_connections", max_connections),
    ]


def connections_allowed(wanted: int) -> int:
    """`wanted` connections, or fewer if this process may not open that many files and keep
    FDS_KEPT for the rest (said in the log then); at least 16.
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft - FDS_KEPT >= wanted:
        return wanted
    allowed = max(16, soft - FDS_KEPT)
    logger.warning(
        "this process may open %d files, so it takes %d connections at once, not %d: raise "
        "the limit (ulimit -n, or LimitNOFILE of a service) for more",
        soft,
        allowed,
        wanted,
    )
    return allowed


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit (a service's soft
    limit is often 1,024 of a hard one far higher); the soft limit now.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        try:
            target = int(Path("/proc/sys/fs/nr_open").read_text())
        except (OSError, ValueError):
            target = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:
            logger.warning("cannot raise the limit of open files to %d: %s", target, error)
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cap_connections(
    server: grpc.Server,
    port: int,
    per_address: int,
    address_key: AddressKey,
    skip: Callable[[str, int], bool] = lambda _ip, _port: False,
) -> ConnectionCap:
    """Keep the connections of each address to `server` (started, listening on `port`) at
    most `per_address`, until the server stops (common.conncap).
    """
    cap = ConnectionCap(port, per_address, address_key, skip=skip).start()

    def stop_with_server() -> None:
        server.wait_for_termination()
        cap.stop()

    threading.Thread(target=stop_with_server, name="connection-cap-stop", daemon=True).start()
    return cap


RequestT = TypeVar("RequestT", bound=Message)
ResponseT = TypeVar("ResponseT")


class PortInUseError(OSError):
    """The address could not be bound, most often because the port is taken."""


def add_health_and_reflection(
    server: grpc.Server,
    service_names: Iterable[str],
    health_servicer: health.HealthServicer | None = None,
) -> health.HealthServicer:
    """Register grpc.health.v1 and server reflection v1 and v1alpha; every service SERVING.

    Pass the `health_servicer` that main() will flip to NOT_SERVING on shutdown.
    """
    names = list(service_names)
    health_servicer = health_servicer or health.HealthServicer()
    _add_health(server, health_servicer)
    for name in ["", *names]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    enable_reflection(server, [*names, HEALTH_SERVICE])
    return health_servicer


def _add_health(server: grpc.Server, servicer: health.HealthServicer) -> None:
    """What grpc_health's add_HealthServicer_to_server registers, but on bytes.

    Its handlers let gRPC deserialize, which answers INTERNAL to bytes that are no message;
    these parse the request themselves, so such bytes get INVALID_ARGUMENT.
    """
    response = health_pb2.HealthCheckResponse.SerializeToString
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Check": grpc.unary_unary_rpc_method_handler(
            on_bytes(servicer.Check, health_pb2.HealthCheckRequest),
            response_serializer=response,
        ),
        "Watch": grpc.unary_stream_rpc_method_handler(
            on_bytes(servicer.Watch, health_pb2.HealthCheckRequest),
            response_serializer=response,
        ),
        "List": grpc.unary_unary_rpc_method_handler(
            on_bytes(servicer.List, health_pb2.HealthListRequest),
            response_serializer=health_pb2.HealthListResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(HEALTH_SERVICE, handlers),)
    )


def on_bytes(
    method: Callable[[RequestT, grpc.ServicerContext], ResponseT],
    request_type: type[RequestT],
    abort: Callable[[grpc.ServicerContext, MalformedRequestError], NoReturn] = abort_malformed,
) -> Callable[[bytes, grpc.ServicerContext], ResponseT]:
    """`method` on the serialized request, as a server registers it with no deserializer:
    bytes that are no `request_type` are the caller's, ended by `abort` (a server's own table).
    """

    def handle(data: bytes, context: grpc.ServicerContext) -> ResponseT:
        try:
            request = parse_request(request_type, data)
        except MalformedRequestError as error:
            abort(context, error)
        return method(request, context)

    return handle


def bind(
    server: grpc.Server,
    host: str,
    port: int,
    credentials: grpc.ServerCredentials | None = None,
) -> int:
    """Listen on host:port (0 picks a free port), over TLS with `credentials` (else plain
    text), and return the port, or raise PortInUseError.
    """
    target = format_address(host, port)
    try:
        if credentials is None:
            bound = server.add_insecure_port(target)
        else:
            bound = server.add_secure_port(target, credentials)
    except RuntimeError as error:
        raise port_in_use(host, port) from error
    if bound == 0:
        raise port_in_use(host, port)
    return bound


def port_in_use(host: str, port: int) -> PortInUseError:
    """The error of an address that cannot be listened on, naming it."""
    return PortInUseError(
        tr(
            "cannot listen on {target}: the port is in use or the address is not local",
            target=format_address(host, port),
        )
    )


def stop_gracefully(
    server: grpc.Server, health_servicer: health.HealthServicer, grace: float = GRACE_SECONDS
) -> None:
    """Turn health NOT_SERVING, then give running RPCs `grace` seconds to finish."""
    health_servicer.enter_graceful_shutdown()
    server.stop(grace).wait()


def wait_for_signal(ready: Callable[[], None] | None = None) -> signal.Signals:
    """Block until SIGINT or SIGTERM arrives (main thread only) and return it.

    `ready` runs once the handlers are in place: announce the address there, so that a
    signal sent as soon as the announcement appears is handled, not fatal.
    """
    received: list[signal.Signals] = []
    done = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum))
        done.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if ready is not None:
            ready()
        while not done.wait(0.5):
            pass
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    logger.info("received %s, shutting down", received[0].name)
    return received[0]
