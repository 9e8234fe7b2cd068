from napshare.v1 import file_info_pb2 as _file_info_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetPieceLayerRequest(_message.Message):
    __slots__ = ("name", "sha256")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    name: str
    sha256: str
    def __init__(self, name: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class GetPieceLayerResponse(_message.Message):
    __slots__ = ("piece_size", "hashes")
    PIECE_SIZE_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    piece_size: int
    hashes: bytes
    def __init__(self, piece_size: _Optional[int] = ..., hashes: _Optional[bytes] = ...) -> None: ...

class DownloadRequest(_message.Message):
    __slots__ = ("name", "offset", "limit", "sha256", "wait_for_slot")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    WAIT_FOR_SLOT_FIELD_NUMBER: _ClassVar[int]
    name: str
    offset: int
    limit: int
    sha256: str
    wait_for_slot: bool
    def __init__(self, name: _Optional[str] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ..., sha256: _Optional[str] = ..., wait_for_slot: _Optional[bool] = ...) -> None: ...

class DownloadResponse(_message.Message):
    __slots__ = ("offset", "data", "file", "queued")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    offset: int
    data: bytes
    file: _file_info_pb2.FileInfo
    queued: QueuePosition
    def __init__(self, offset: _Optional[int] = ..., data: _Optional[bytes] = ..., file: _Optional[_Union[_file_info_pb2.FileInfo, _Mapping]] = ..., queued: _Optional[_Union[QueuePosition, _Mapping]] = ...) -> None: ...

class QueuePosition(_message.Message):
    __slots__ = ("position", "waiting", "estimated_seconds")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    position: int
    waiting: int
    estimated_seconds: int
    def __init__(self, position: _Optional[int] = ..., waiting: _Optional[int] = ..., estimated_seconds: _Optional[int] = ...) -> None: ...
