"""google.rpc.Status details of napshare errors: the one place they are built and read.

Every error a napshare server returns carries an ErrorInfo (a reason from common.reasons,
domain reasons.DOMAIN, a little metadata) and, when it says when to ask again, a RetryInfo.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from napshare.common.reasons import DOMAIN

MAX_METADATA_VALUE = 128  # characters of one metadata value read from a peer or tracker


@dataclass(frozen=True)
class ErrorDetails:
    """What a napshare error says besides its code and message."""

    reason: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    retry_delay: float | None = None  # seconds, from RetryInfo


def status(
    code: grpc.StatusCode,
    message: str,
    reason: str,
    metadata: Mapping[str, str] | None = None,
    retry_delay: float | None = None,
) -> grpc.Status:
    """The status to abort with: `code`, `message`, an ErrorInfo and maybe a RetryInfo."""
    info = error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata or {})
    details = [_pack(info)]
    if retry_delay is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(round(retry_delay * 1e9))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    value = code.value[0]
    return rpc_status.to_status(status_pb2.Status(code=value, message=message, details=details))


def read(error: grpc.RpcError) -> ErrorDetails | None:
    """The napshare details of a failed call, or None (another server, or none sent)."""
    if not isinstance(error, grpc.Call):
        return None
    try:
        found = rpc_status.from_call(error)
    except ValueError:  # the details contradict the call's own code or message
        return None
    if found is None:
        return None
    info: error_details_pb2.ErrorInfo | None = None
    retry_delay = None
    for detail in found.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR) and info is None:
            candidate = error_details_pb2.ErrorInfo()
            if detail.Unpack(candidate) and candidate.domain == DOMAIN:
                info = candidate
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR) and retry_delay is None:
            retry = error_details_pb2.RetryInfo()
            if detail.Unpack(retry):
                seconds = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
                retry_delay = seconds if math.isfinite(seconds) and seconds >= 0 else None
    if info is None:
        return None
    metadata = {k[:MAX_METADATA_VALUE]: v[:MAX_METADATA_VALUE] for k, v in info.metadata.items()}
    return ErrorDetails(info.reason, metadata, retry_delay)


def _pack(message: error_details_pb2.ErrorInfo | error_details_pb2.RetryInfo) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed
