from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Void(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TaskId(_message.Message):
    __slots__ = ("index", "commit", "cleanup")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    CLEANUP_FIELD_NUMBER: _ClassVar[int]
    index: int
    commit: Void
    cleanup: Void
    def __init__(self, index: _Optional[int] = ..., commit: _Optional[_Union[Void, _Mapping]] = ..., cleanup: _Optional[_Union[Void, _Mapping]] = ...) -> None: ...
