"""The client reads google.rpc.Status details: the reason first, the code when there are none."""

from collections.abc import Callable, Iterator
from concurrent import futures

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from napshare.peer.errors import (
    MAX_RETRY_AFTER,
    LeaseLostError,
    PeerFault,
    TrackerBusyError,
    TrackerRejectedError,
    peer_failure,
    tracker_error,
)


def packed(message: object) -> any_pb2.Any:
    holder = any_pb2.Any()
    holder.Pack(message)
    return holder


def with_details(
    code: grpc.StatusCode, reason: str, retry_seconds: int | None = None
) -> grpc.Status:
    details = [packed(error_details_pb2.ErrorInfo(reason=reason, domain="napshare.v1"))]
    if retry_seconds is not None:
        delay = duration_pb2.Duration(seconds=retry_seconds)
        details.append(packed(error_details_pb2.RetryInfo(retry_delay=delay)))
    return rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message="refused", details=details)
    )


@pytest.fixture
def failing() -> Iterator[Callable[[object], grpc.RpcError]]:
    """failing(status or code): the error a real call gets from a server that answers so."""
    answers: list[object] = []

    def handle(_request: bytes, context: grpc.ServicerContext) -> bytes:
        answer = answers[-1]
        if isinstance(answer, grpc.StatusCode):
            context.abort(answer, "refused")
        context.abort_with_status(answer)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "test.Fail", {"Call": grpc.unary_unary_rpc_method_handler(handle)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    call = channel.unary_unary("/test.Fail/Call")

    def fail(answer: object) -> grpc.RpcError:
        answers.append(answer)
        with pytest.raises(grpc.RpcError) as raised:
            call(b"", timeout=30)
        return raised.value

    yield fail
    channel.close()
    server.stop(None)


def test_a_busy_peer_s_retry_info_is_kept_and_bounded(failing) -> None:
    soon = peer_failure(
        "p", failing(with_details(grpc.StatusCode.RESOURCE_EXHAUSTED, "UPLOAD_SLOTS_FULL", 3))
    )
    never = peer_failure(
        "p", failing(with_details(grpc.StatusCode.RESOURCE_EXHAUSTED, "UPLOAD_SLOTS_FULL", 10**9))
    )

    assert (soon.fault, soon.retry_after) == (PeerFault.REFUSED, 3.0)
    assert (never.fault, never.retry_after) == (PeerFault.REFUSED, MAX_RETRY_AFTER)


@pytest.mark.parametrize("reason", ["TOO_MANY_UPLOADS_FOR_ADDRESS", "UPLOAD_TOO_SLOW"])
def test_a_peer_sharing_its_slots_fairly_is_asked_again_later(failing, reason: str) -> None:
    failure = peer_failure(
        "p", failing(with_details(grpc.StatusCode.RESOURCE_EXHAUSTED, reason, 4))
    )

    assert (failure.fault, failure.retry_after) == (PeerFault.REFUSED, 4.0)


def test_the_reason_decides_over_the_code(failing) -> None:
    # OUT_OF_RANGE alone means a broken peer; OFFSET_PAST_END says its file is another one.
    past_end = failing(with_details(grpc.StatusCode.OUT_OF_RANGE, "OFFSET_PAST_END"))

    assert peer_failure("p", past_end).fault is PeerFault.CHANGED


def test_servers_without_details_are_judged_by_the_code(failing) -> None:
    busy = peer_failure("p", failing(grpc.StatusCode.RESOURCE_EXHAUSTED))
    unknown_reason = failing(with_details(grpc.StatusCode.NOT_FOUND, "SOMETHING_NEW"))

    assert (busy.fault, busy.retry_after) == (PeerFault.REFUSED, None)
    assert peer_failure("p", unknown_reason).fault is PeerFault.MISSING
    assert isinstance(tracker_error("t", failing(grpc.StatusCode.NOT_FOUND)), LeaseLostError)


def test_only_lease_reasons_mean_joining_again(failing) -> None:
    lost = failing(with_details(grpc.StatusCode.NOT_FOUND, "PEER_NOT_REGISTERED"))
    other = failing(with_details(grpc.StatusCode.NOT_FOUND, "SOMETHING_NEW"))

    assert isinstance(tracker_error("t", lost), LeaseLostError)
    assert isinstance(tracker_error("t", other), TrackerRejectedError)


@pytest.mark.parametrize("reason", ["ADDRESS_CHECKS_BUSY", "JOINS_BUSY", "LARGE_JOIN_TOO_SOON"])
def test_a_tracker_saying_later_is_waited_out_as_long_as_it_asks(failing, reason: str) -> None:
    later = tracker_error(
        "t", failing(with_details(grpc.StatusCode.RESOURCE_EXHAUSTED, reason, retry_seconds=28))
    )

    assert isinstance(later, TrackerBusyError)
    assert later.retry_after == 28
