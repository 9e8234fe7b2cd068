"""Requests parsed by our own code, so that bytes that are no message get INVALID_ARGUMENT.

gRPC's own deserializer answers INTERNAL ("Exception deserializing request!") for them; the
servers register every method on raw bytes and parse them here instead.
"""

from typing import NoReturn, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from napshare.common import error_details, reasons

RequestT = TypeVar("RequestT", bound=Message)


class MalformedRequestError(ValueError):
    """The request's bytes are not a serialized message of the method's request type."""

    reason = reasons.REQUEST_MALFORMED


def parse_request(message_type: type[RequestT], data: bytes) -> RequestT:
    """`data` parsed as `message_type`; MalformedRequestError if it is not one."""
    try:
        return message_type.FromString(data)
    except DecodeError:
        raise MalformedRequestError(
            f"the request is not a {message_type.DESCRIPTOR.name} message"
        ) from None


def abort_malformed(context: grpc.ServicerContext, error: MalformedRequestError) -> NoReturn:
    """End a health or reflection call on bytes that are no message: INVALID_ARGUMENT.

    The tracker and the peer map MalformedRequestError in their own status tables.
    """
    context.abort_with_status(
        error_details.status(grpc.StatusCode.INVALID_ARGUMENT, str(error), error.reason)
    )
