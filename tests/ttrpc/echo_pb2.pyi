from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class EchoRequest(_message.Message):
    __slots__ = ("text", "data", "sleep", "reply_size")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SLEEP_FIELD_NUMBER: _ClassVar[int]
    REPLY_SIZE_FIELD_NUMBER: _ClassVar[int]
    text: str
    data: bytes
    sleep: float
    reply_size: int
    def __init__(self, text: _Optional[str] = ..., data: _Optional[bytes] = ..., sleep: _Optional[float] = ..., reply_size: _Optional[int] = ...) -> None: ...

class EchoResponse(_message.Message):
    __slots__ = ("text", "data", "remaining", "namespace", "metadata")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    text: str
    data: bytes
    remaining: float
    namespace: str
    metadata: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, text: _Optional[str] = ..., data: _Optional[bytes] = ..., remaining: _Optional[float] = ..., namespace: _Optional[str] = ..., metadata: _Optional[_Iterable[str]] = ...) -> None: ...

class FailRequest(_message.Message):
    __slots__ = ("code", "message", "python_error", "detail")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PYTHON_ERROR_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    python_error: str
    detail: bytes
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., python_error: _Optional[str] = ..., detail: _Optional[bytes] = ...) -> None: ...
