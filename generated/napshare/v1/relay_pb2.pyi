from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RelaySide(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RELAY_SIDE_UNSPECIFIED: _ClassVar[RelaySide]
    RELAY_SIDE_SERVING: _ClassVar[RelaySide]
    RELAY_SIDE_DOWNLOADING: _ClassVar[RelaySide]

class RelayAnswerCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RELAY_ANSWER_CODE_UNSPECIFIED: _ClassVar[RelayAnswerCode]
    RELAY_ANSWER_CODE_PAIRED: _ClassVar[RelayAnswerCode]
    RELAY_ANSWER_CODE_TICKET_INVALID: _ClassVar[RelayAnswerCode]
    RELAY_ANSWER_CODE_TICKET_EXPIRED: _ClassVar[RelayAnswerCode]
    RELAY_ANSWER_CODE_FULL: _ClassVar[RelayAnswerCode]
    RELAY_ANSWER_CODE_TIMEOUT: _ClassVar[RelayAnswerCode]
RELAY_SIDE_UNSPECIFIED: RelaySide
RELAY_SIDE_SERVING: RelaySide
RELAY_SIDE_DOWNLOADING: RelaySide
RELAY_ANSWER_CODE_UNSPECIFIED: RelayAnswerCode
RELAY_ANSWER_CODE_PAIRED: RelayAnswerCode
RELAY_ANSWER_CODE_TICKET_INVALID: RelayAnswerCode
RELAY_ANSWER_CODE_TICKET_EXPIRED: RelayAnswerCode
RELAY_ANSWER_CODE_FULL: RelayAnswerCode
RELAY_ANSWER_CODE_TIMEOUT: RelayAnswerCode

class RelayTicket(_message.Message):
    __slots__ = ("session", "side", "expires_at", "serving_peer", "downloader")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    SERVING_PEER_FIELD_NUMBER: _ClassVar[int]
    DOWNLOADER_FIELD_NUMBER: _ClassVar[int]
    session: bytes
    side: RelaySide
    expires_at: int
    serving_peer: str
    downloader: str
    def __init__(self, session: _Optional[bytes] = ..., side: _Optional[_Union[RelaySide, str]] = ..., expires_at: _Optional[int] = ..., serving_peer: _Optional[str] = ..., downloader: _Optional[str] = ...) -> None: ...

class SignedRelayTicket(_message.Message):
    __slots__ = ("ticket", "signature")
    TICKET_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    ticket: bytes
    signature: bytes
    def __init__(self, ticket: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class RelayAnswer(_message.Message):
    __slots__ = ("code", "message", "retry_after_seconds", "max_bytes", "max_seconds")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_SECONDS_FIELD_NUMBER: _ClassVar[int]
    code: RelayAnswerCode
    message: str
    retry_after_seconds: int
    max_bytes: int
    max_seconds: int
    def __init__(self, code: _Optional[_Union[RelayAnswerCode, str]] = ..., message: _Optional[str] = ..., retry_after_seconds: _Optional[int] = ..., max_bytes: _Optional[int] = ..., max_seconds: _Optional[int] = ...) -> None: ...
