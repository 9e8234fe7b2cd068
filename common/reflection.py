"""Server reflection v1 and v1alpha, because grpcio-reflection ships only v1alpha.

grpc.reflection.v1 has the same messages and field numbers as v1alpha; only the proto
package differs. So the v1 file descriptor is built here from v1alpha's (for `describe`), and
one v1alpha servicer answers on both method paths: the bytes on the wire are the same.
Both paths take raw bytes and parse each request here, so that bytes that are no message get
INVALID_ARGUMENT rather than gRPC's INTERNAL.
"""

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2
from napshare.common.messages import MalformedRequestError, abort_malformed, parse_request

logger = logging.getLogger(__name__)

V1ALPHA_PACKAGE = reflection_pb2.DESCRIPTOR.package
V1_PACKAGE = "grpc.reflection.v1"
V1_FILE_NAME = "grpc/reflection/v1/reflection.proto"
V1_SERVICE_NAME = f"{V1_PACKAGE}.ServerReflection"
V1ALPHA_SERVICE_NAME: str = reflection.SERVICE_NAME
METHOD = "ServerReflectionInfo"


def enable_reflection(server: grpc.Server, service_names: Iterable[str]) -> None:
    """Serve both reflection versions on `server`, listing `service_names` and themselves."""
    _ensure_v1_descriptor(descriptor_pool.Default())
    names = [*service_names, V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME]
    servicer = reflection.ReflectionServicer(names)

    def info(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[Any]:
        # Its stubs say it returns None; it is a generator of responses.
        respond: Any = servicer.ServerReflectionInfo
        answers: Iterator[Any] = respond(_parsed(requests, context), context)
        return answers

    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        METHOD: grpc.stream_stream_rpc_method_handler(
            info, response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString
        )
    }
    server.add_generic_rpc_handlers(
        tuple(
            grpc.method_handlers_generic_handler(name, handlers)
            for name in (V1ALPHA_SERVICE_NAME, V1_SERVICE_NAME)
        )
    )


def _parsed(
    requests: Iterator[bytes], context: grpc.ServicerContext
) -> Iterator[reflection_pb2.ServerReflectionRequest]:
    """Each request parsed; the call ends with INVALID_ARGUMENT at the first that is none."""
    for data in requests:
        try:
            yield parse_request(reflection_pb2.ServerReflectionRequest, data)
        except MalformedRequestError as error:
            abort_malformed(context, error)


def v1_file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """grpc/reflection/v1/reflection.proto, made from v1alpha's by renaming its package."""
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name = V1_FILE_NAME
    proto.package = V1_PACKAGE
    proto.options.go_package = "google.golang.org/grpc/reflection/grpc_reflection_v1"
    proto.options.java_package = "io.grpc.reflection.v1"
    proto.options.ClearField("deprecated")  # v1alpha is deprecated in favour of v1
    old, new = f".{V1ALPHA_PACKAGE}.", f".{V1_PACKAGE}."
    for message in proto.message_type:
        for field in message.field:
            if field.type_name.startswith(old):
                field.type_name = new + field.type_name.removeprefix(old)
    for service in proto.service:
        for method in service.method:
            method.input_type = new + method.input_type.removeprefix(old)
            method.output_type = new + method.output_type.removeprefix(old)
    return proto


def _ensure_v1_descriptor(pool: descriptor_pool.DescriptorPool) -> None:
    """Add the v1 file to `pool` once; a library that already added its own v1 wins."""
    try:
        pool.FindFileByName(V1_FILE_NAME)
    except KeyError:
        pool.AddSerializedFile(v1_file_descriptor().SerializeToString())
        logger.debug("added %s to the descriptor pool", V1_FILE_NAME)
