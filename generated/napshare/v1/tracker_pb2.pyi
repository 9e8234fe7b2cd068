from napshare.v1 import file_info_pb2 as _file_info_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConnectPath(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONNECT_PATH_UNSPECIFIED: _ClassVar[ConnectPath]
    CONNECT_PATH_REVERSE: _ClassVar[ConnectPath]
    CONNECT_PATH_RELAY: _ClassVar[ConnectPath]
CONNECT_PATH_UNSPECIFIED: ConnectPath
CONNECT_PATH_REVERSE: ConnectPath
CONNECT_PATH_RELAY: ConnectPath

class JoinRequest(_message.Message):
    __slots__ = ("host", "port", "files", "certificate", "signature", "signed_at", "local_addresses", "nonce")
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    host: str
    port: int
    files: _containers.RepeatedCompositeFieldContainer[_file_info_pb2.FileInfo]
    certificate: bytes
    signature: bytes
    signed_at: int
    local_addresses: _containers.RepeatedScalarFieldContainer[str]
    nonce: bytes
    def __init__(self, host: _Optional[str] = ..., port: _Optional[int] = ..., files: _Optional[_Iterable[_Union[_file_info_pb2.FileInfo, _Mapping]]] = ..., certificate: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., signed_at: _Optional[int] = ..., local_addresses: _Optional[_Iterable[str]] = ..., nonce: _Optional[bytes] = ...) -> None: ...

class JoinResponse(_message.Message):
    __slots__ = ("peer_id", "token", "heartbeat_interval_seconds", "reachable")
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    token: str
    heartbeat_interval_seconds: int
    reachable: bool
    def __init__(self, peer_id: _Optional[str] = ..., token: _Optional[str] = ..., heartbeat_interval_seconds: _Optional[int] = ..., reachable: _Optional[bool] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("name", "query", "limit", "peer_id", "page_size", "page_token", "sha256", "pieces_root")
    NAME_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    PIECES_ROOT_FIELD_NUMBER: _ClassVar[int]
    name: str
    query: str
    limit: int
    peer_id: str
    page_size: int
    page_token: str
    sha256: str
    pieces_root: str
    def __init__(self, name: _Optional[str] = ..., query: _Optional[str] = ..., limit: _Optional[int] = ..., peer_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., sha256: _Optional[str] = ..., pieces_root: _Optional[str] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("results", "truncated", "next_page_token", "gathering")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    GATHERING_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SearchResult]
    truncated: bool
    next_page_token: str
    gathering: bool
    def __init__(self, results: _Optional[_Iterable[_Union[SearchResult, _Mapping]]] = ..., truncated: _Optional[bool] = ..., next_page_token: _Optional[str] = ..., gathering: _Optional[bool] = ...) -> None: ...

class SearchResult(_message.Message):
    __slots__ = ("peer_id", "file", "certificate", "reachable")
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    file: _file_info_pb2.FileInfo
    certificate: bytes
    reachable: bool
    def __init__(self, peer_id: _Optional[str] = ..., file: _Optional[_Union[_file_info_pb2.FileInfo, _Mapping]] = ..., certificate: _Optional[bytes] = ..., reachable: _Optional[bool] = ...) -> None: ...

class BrowseRequest(_message.Message):
    __slots__ = ("peer_id", "folder", "page_size", "page_token")
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    FOLDER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    folder: str
    page_size: int
    page_token: str
    def __init__(self, peer_id: _Optional[str] = ..., folder: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class BrowseResponse(_message.Message):
    __slots__ = ("files", "next_page_token", "certificate", "reachable")
    FILES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[_file_info_pb2.FileInfo]
    next_page_token: str
    certificate: bytes
    reachable: bool
    def __init__(self, files: _Optional[_Iterable[_Union[_file_info_pb2.FileInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., certificate: _Optional[bytes] = ..., reachable: _Optional[bool] = ...) -> None: ...

class UpdateRequest(_message.Message):
    __slots__ = ("peer_id", "token", "files", "removed_names")
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    REMOVED_NAMES_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    token: str
    files: _containers.RepeatedCompositeFieldContainer[_file_info_pb2.FileInfo]
    removed_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, peer_id: _Optional[str] = ..., token: _Optional[str] = ..., files: _Optional[_Iterable[_Union[_file_info_pb2.FileInfo, _Mapping]]] = ..., removed_names: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("peer_id", "token")
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    token: str
    def __init__(self, peer_id: _Optional[str] = ..., token: _Optional[str] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LeaveRequest(_message.Message):
    __slots__ = ("peer_id", "token")
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    token: str
    def __init__(self, peer_id: _Optional[str] = ..., token: _Optional[str] = ...) -> None: ...

class LeaveResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListenRequest(_message.Message):
    __slots__ = ("peer_id", "token")
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    token: str
    def __init__(self, peer_id: _Optional[str] = ..., token: _Optional[str] = ...) -> None: ...

class ListenResponse(_message.Message):
    __slots__ = ("started", "keepalive", "reverse_dial", "relay_session")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    KEEPALIVE_FIELD_NUMBER: _ClassVar[int]
    REVERSE_DIAL_FIELD_NUMBER: _ClassVar[int]
    RELAY_SESSION_FIELD_NUMBER: _ClassVar[int]
    started: ListenStarted
    keepalive: ListenKeepalive
    reverse_dial: ReverseDial
    relay_session: RelaySession
    def __init__(self, started: _Optional[_Union[ListenStarted, _Mapping]] = ..., keepalive: _Optional[_Union[ListenKeepalive, _Mapping]] = ..., reverse_dial: _Optional[_Union[ReverseDial, _Mapping]] = ..., relay_session: _Optional[_Union[RelaySession, _Mapping]] = ...) -> None: ...

class ListenStarted(_message.Message):
    __slots__ = ("keepalive_seconds",)
    KEEPALIVE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    keepalive_seconds: int
    def __init__(self, keepalive_seconds: _Optional[int] = ...) -> None: ...

class ListenKeepalive(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReverseDial(_message.Message):
    __slots__ = ("address", "session", "secret")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    address: str
    session: bytes
    secret: bytes
    def __init__(self, address: _Optional[str] = ..., session: _Optional[bytes] = ..., secret: _Optional[bytes] = ...) -> None: ...

class RelaySession(_message.Message):
    __slots__ = ("relay_address", "relay_ticket")
    RELAY_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RELAY_TICKET_FIELD_NUMBER: _ClassVar[int]
    relay_address: str
    relay_ticket: bytes
    def __init__(self, relay_address: _Optional[str] = ..., relay_ticket: _Optional[bytes] = ...) -> None: ...

class ConnectRequest(_message.Message):
    __slots__ = ("peer_id", "path", "reverse_port", "caller_ip")
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    REVERSE_PORT_FIELD_NUMBER: _ClassVar[int]
    CALLER_IP_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    path: ConnectPath
    reverse_port: int
    caller_ip: str
    def __init__(self, peer_id: _Optional[str] = ..., path: _Optional[_Union[ConnectPath, str]] = ..., reverse_port: _Optional[int] = ..., caller_ip: _Optional[str] = ...) -> None: ...

class ConnectResponse(_message.Message):
    __slots__ = ("local_addresses", "dialing", "session", "secret", "relay_address", "relay_ticket", "caller_behind_nat")
    LOCAL_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    DIALING_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    RELAY_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RELAY_TICKET_FIELD_NUMBER: _ClassVar[int]
    CALLER_BEHIND_NAT_FIELD_NUMBER: _ClassVar[int]
    local_addresses: _containers.RepeatedScalarFieldContainer[str]
    dialing: bool
    session: bytes
    secret: bytes
    relay_address: str
    relay_ticket: bytes
    caller_behind_nat: bool
    def __init__(self, local_addresses: _Optional[_Iterable[str]] = ..., dialing: _Optional[bool] = ..., session: _Optional[bytes] = ..., secret: _Optional[bytes] = ..., relay_address: _Optional[str] = ..., relay_ticket: _Optional[bytes] = ..., caller_behind_nat: _Optional[bool] = ...) -> None: ...
