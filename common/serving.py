"""What every napshare gRPC server has: health, reflection, binding, graceful stop."""

import logging
import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from napshare.common.address import format_address
from napshare.common.console import tr
from napshare.common.reflection import enable_reflection

logger = logging.getLogger(__name__)

GRACE_SECONDS = 5.0


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
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ["", *names]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    enable_reflection(server, [*names, health_name])
    return health_servicer


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
