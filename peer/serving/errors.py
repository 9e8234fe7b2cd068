"""The serving side's domain errors, one base with an ErrorInfo reason each: what a Download
or GetPieceLayer is refused for. peer.serving.status maps them to status codes in one table.
"""

from napshare.common import reasons


class ServingError(Exception):
    """A request this peer refuses; `reason` is the machine-readable why (common.reasons)."""

    reason: str


class BadRequestError(ServingError, ValueError):
    """A request field that can never be valid, such as a negative limit."""

    reason = reasons.LIMIT_INVALID


class OutOfRangeError(ServingError):
    """The requested offset is negative or past the end of the file; `reason` says which."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class FileChangedError(ServingError):
    """The file is not the one the caller expects, or it changed while being sent."""

    reason = reasons.FILE_CHANGED


class SlotRefusedError(ServingError):
    """No slot for this Download now; `retry_delay` is how many seconds to wait before asking."""

    def __init__(self, message: str, retry_delay: float) -> None:
        super().__init__(message)
        self.retry_delay = retry_delay


class UploadsBusyError(SlotRefusedError):
    """Every upload slot is taken: the original's "download refused"."""

    reason = reasons.UPLOAD_SLOTS_FULL


class TooManyUploadsError(SlotRefusedError):
    """The caller's address already holds as many slots as one address may."""

    reason = reasons.TOO_MANY_UPLOADS_FOR_ADDRESS


class UploadTooSlowError(SlotRefusedError):
    """The caller's address read an upload too slowly: its slot went to others for a while."""

    reason = reasons.UPLOAD_TOO_SLOW
