"""The one place that turns the tracker's domain errors into gRPC status codes."""

from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from tracker.errors import (
    CapacityError,
    InvalidRequestError,
    TrackerError,
    UnauthenticatedError,
    UnknownPeerError,
)

STATUS_CODES: dict[type[TrackerError], grpc.StatusCode] = {
    InvalidRequestError: grpc.StatusCode.INVALID_ARGUMENT,
    UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    UnknownPeerError: grpc.StatusCode.NOT_FOUND,
    CapacityError: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def status_code(error: TrackerError) -> grpc.StatusCode:
    """The status code for `error`: that of its nearest class in STATUS_CODES."""
    for cls in type(error).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return grpc.StatusCode.INTERNAL


@contextmanager
def reported(context: grpc.ServicerContext) -> Iterator[None]:
    """End the RPC with the matching status code and message if the block raises TrackerError."""
    try:
        yield
    except TrackerError as error:
        context.abort(status_code(error), str(error))
