"""The one place that turns the peer's domain errors into gRPC status codes."""

from typing import NoReturn

import grpc
from napshare.common.names import InvalidNameError
from napshare.peer.folder.store import FolderError, NotSharedError
from napshare.peer.serving.slots import UploadsBusyError
from napshare.peer.serving.uploads import BadRequestError, FileChangedError, OutOfRangeError

# Checked in order; the first matching class wins.
STATUS_BY_ERROR: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (InvalidNameError, grpc.StatusCode.INVALID_ARGUMENT),
    (BadRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotSharedError, grpc.StatusCode.NOT_FOUND),
    (OutOfRangeError, grpc.StatusCode.OUT_OF_RANGE),
    (FileChangedError, grpc.StatusCode.FAILED_PRECONDITION),
    (UploadsBusyError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (FolderError, grpc.StatusCode.UNAVAILABLE),
    (OSError, grpc.StatusCode.UNAVAILABLE),
)


def status_for(error: Exception) -> tuple[grpc.StatusCode, str] | None:
    """The status code and message for a domain error, or None for anything else (a bug)."""
    for kind, code in STATUS_BY_ERROR:
        if isinstance(error, kind):
            if isinstance(error, OSError):
                return code, f"this peer cannot read the file: {error.strerror or error}"
            return code, str(error)
    return None


def abort(context: grpc.ServicerContext, error: Exception) -> NoReturn:
    """End the call with the status that `error` maps to; re-raise errors that are bugs."""
    status = status_for(error)
    if status is None:
        raise error
    context.abort(*status)
