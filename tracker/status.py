"""The one place that turns the tracker's domain errors into gRPC statuses with details."""

from typing import NoReturn

import grpc
from napshare.common import error_details
from napshare.common.messages import MalformedRequestError
from napshare.tracker.errors import (
    AddressTakenError,
    AnonymousPeerError,
    BusyError,
    CapacityError,
    ChecksBusyError,
    ConnectRateError,
    DialsBusyError,
    InvalidRequestError,
    ListenersFullError,
    ListenReplacedError,
    NotListeningError,
    ProofInvalidError,
    RelayUnavailableError,
    StoreUnavailableError,
    TrackerError,
    UnauthenticatedError,
    UnknownPeerError,
)

STATUS_CODES: dict[type[Exception], grpc.StatusCode] = {
    MalformedRequestError: grpc.StatusCode.INVALID_ARGUMENT,  # bytes that are no request
    InvalidRequestError: grpc.StatusCode.INVALID_ARGUMENT,
    UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    UnknownPeerError: grpc.StatusCode.NOT_FOUND,
    CapacityError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    BusyError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ProofInvalidError: grpc.StatusCode.UNAUTHENTICATED,
    AddressTakenError: grpc.StatusCode.PERMISSION_DENIED,
    ChecksBusyError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    StoreUnavailableError: grpc.StatusCode.UNAVAILABLE,
    ListenersFullError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ListenReplacedError: grpc.StatusCode.ABORTED,
    NotListeningError: grpc.StatusCode.FAILED_PRECONDITION,
    AnonymousPeerError: grpc.StatusCode.FAILED_PRECONDITION,
    RelayUnavailableError: grpc.StatusCode.UNAVAILABLE,
    ConnectRateError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    DialsBusyError: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def status_code(error: TrackerError | MalformedRequestError) -> grpc.StatusCode:
    """The status code for `error`: that of its nearest class in STATUS_CODES."""
    for cls in type(error).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return grpc.StatusCode.INTERNAL


def abort(context: grpc.ServicerContext, error: TrackerError | MalformedRequestError) -> NoReturn:
    """End the RPC with `error`'s status code and message, an ErrorInfo of its reason and,
    if it says when to ask again, a RetryInfo.
    """
    if isinstance(error, MalformedRequestError):
        status = error_details.status(status_code(error), str(error), error.reason)
    else:
        status = error_details.status(
            status_code(error), str(error), error.reason, error.metadata, error.retry_delay
        )
    context.abort_with_status(status)
