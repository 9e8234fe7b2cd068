"""What a failed gRPC call carries: its google.rpc.Status details."""

from typing import cast

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def rpc_details(
    error: grpc.RpcError,
) -> tuple[error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo | None]:
    """The ErrorInfo (domain napshare.v1) and RetryInfo or None in a failed call's status,
    checking there is exactly one ErrorInfo and at most one RetryInfo.
    """
    call = cast(grpc.Call, error)  # what a failed call raises is the call itself
    status = rpc_status.from_call(call)
    assert status is not None, "the error carries no google.rpc.Status"
    assert status.code == call.code().value[0]
    infos: list[error_details_pb2.ErrorInfo] = []
    retries: list[error_details_pb2.RetryInfo] = []
    for detail in status.details:
        for kind, found in (
            (error_details_pb2.ErrorInfo, infos),
            (error_details_pb2.RetryInfo, retries),
        ):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                found.append(message)
    assert len(infos) == 1
    assert len(retries) <= 1
    assert infos[0].domain == "napshare.v1"
    return infos[0], (retries[0] if retries else None)
