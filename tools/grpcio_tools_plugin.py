"""A protoc plugin that runs grpcio-tools' generators, so buf writes what grpc_tools.protoc does.

Usage as a buf local plugin: `[python, tools/grpcio_tools_plugin.py, GENERATOR...]`, where each
GENERATOR is one of grpcio-tools' protoc outputs (`python`, `pyi`, `grpc_python`). buf cannot
run them itself: it knows only protoc's own built-ins (not `grpc_python`), and it hands
descriptors where every field's json_name is filled in, which protoc would embed in the
_pb2.py files (and reflection would then serve) although the .proto set none.
"""

import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc  # type: ignore[import-untyped]


def default_json_name(field_name: str) -> str:
    """The json_name protoc gives a field that sets none: lowerCamelCase of its name."""
    parts = field_name.split("_")
    return parts[0] + "".join(part[:1].upper() + part[1:] for part in parts[1:])


def _drop_default_json_names(fields: Iterable[descriptor_pb2.FieldDescriptorProto]) -> None:
    for field in fields:
        if field.json_name == default_json_name(field.name):
            field.ClearField("json_name")


def _as_parsed(message: descriptor_pb2.DescriptorProto) -> None:
    _drop_default_json_names(message.field)
    _drop_default_json_names(message.extension)
    for nested in message.nested_type:
        _as_parsed(nested)


def as_parsed(file: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    """`file` as protoc holds it after parsing the .proto: json_name only where it was set."""
    copy = descriptor_pb2.FileDescriptorProto()
    copy.CopyFrom(file)
    _drop_default_json_names(copy.extension)
    for message in copy.message_type:
        _as_parsed(message)
    return copy


def generate(
    request: plugin_pb2.CodeGeneratorRequest, generators: list[str]
) -> plugin_pb2.CodeGeneratorResponse:
    """Run grpcio-tools' protoc with `--<generator>_out` for each generator; what it wrote."""
    # grpcio-tools' generators handle proto3 `optional`; say so, or buf refuses such files.
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    with tempfile.TemporaryDirectory() as scratch:
        descriptors = Path(scratch, "descriptors.binpb")
        files = [as_parsed(file) for file in request.proto_file]
        descriptors.write_bytes(descriptor_pb2.FileDescriptorSet(file=files).SerializeToString())
        out = Path(scratch, "out")
        out.mkdir()
        args = ["grpc_tools.protoc", f"--descriptor_set_in={descriptors}"]
        for generator in generators:
            args.append(f"--{generator}_out={out}")
            if request.parameter:
                args.append(f"--{generator}_opt={request.parameter}")
        if protoc.main([*args, *request.file_to_generate]) != 0:
            response.error = "grpc_tools.protoc failed (its message is above)"
            return response
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            response.file.add(name=path.relative_to(out).as_posix(), content=path.read_text())
    return response


def main() -> None:
    """Read a CodeGeneratorRequest on stdin, write a CodeGeneratorResponse on stdout."""
    generators = sys.argv[1:]
    if not generators:
        sys.exit("usage: grpcio_tools_plugin.py GENERATOR... (python, pyi, grpc_python)")
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(request, generators).SerializeToString())


if __name__ == "__main__":
    main()
