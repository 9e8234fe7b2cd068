"""The one place that turns the peer's domain errors into gRPC statuses with details."""

from typing import NoReturn

import grpc
from napshare.common import error_details, reasons
from napshare.common.messages import MalformedRequestError
from napshare.common.names import InvalidNameError
from napshare.peer.folder.store import FolderError, NotSharedError
from napshare.peer.serving.errors import (
    BadRequestError,
    FileChangedError,
    OutOfRangeError,
    SlotRefusedError,
)

# Checked in order; the first matching class wins. The reason is the error's own `reason`
# (OSError's is FILE_UNREADABLE).
STATUS_BY_ERROR: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (MalformedRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidNameError, grpc.StatusCode.INVALID_ARGUMENT),
    (BadRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotSharedError, grpc.StatusCode.NOT_FOUND),
    (OutOfRangeError, grpc.StatusCode.OUT_OF_RANGE),
    (FileChangedError, grpc.StatusCode.FAILED_PRECONDITION),
    (SlotRefusedError, grpc.StatusCode.RESOURCE_EXHAUSTED),  # busy, per address, too slow
    (FolderError, grpc.StatusCode.UNAVAILABLE),
    (OSError, grpc.StatusCode.UNAVAILABLE),
)


def status_for(error: Exception) -> grpc.Status | None:
    """The status, with its ErrorInfo (and RetryInfo), for a domain error; None for a bug."""
    for kind, code in STATUS_BY_ERROR:
        if not isinstance(error, kind):
            continue
        if isinstance(error, OSError):
            message = f"this peer cannot read the file: {error.strerror or error}"
            return error_details.status(code, message, reasons.FILE_UNREADABLE)
        if not isinstance(error, reasons.HasReason):
            return None
        retry_delay = error.retry_delay if isinstance(error, SlotRefusedError) else None
        return error_details.status(code, str(error), error.reason, retry_delay=retry_delay)
    return None


def abort(context: grpc.ServicerContext, error: Exception) -> NoReturn:
    """End the call with the status that `error` maps to; re-raise errors that are bugs."""
    status = status_for(error)
    if status is None:
        raise error
    context.abort_with_status(status)
