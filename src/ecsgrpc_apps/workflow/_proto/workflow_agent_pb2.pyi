from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Message(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class ConversationRequest(_message.Message):
    __slots__ = ("conversation_id", "messages", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, conversation_id: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ConversationEvent(_message.Message):
    __slots__ = ("conversation_id", "sequence", "served_by", "kind", "text", "delta_count")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[ConversationEvent.Kind]
        KIND_START: _ClassVar[ConversationEvent.Kind]
        KIND_DELTA: _ClassVar[ConversationEvent.Kind]
        KIND_COMPLETE: _ClassVar[ConversationEvent.Kind]
    KIND_UNSPECIFIED: ConversationEvent.Kind
    KIND_START: ConversationEvent.Kind
    KIND_DELTA: ConversationEvent.Kind
    KIND_COMPLETE: ConversationEvent.Kind
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SERVED_BY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DELTA_COUNT_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    sequence: int
    served_by: str
    kind: ConversationEvent.Kind
    text: str
    delta_count: int
    def __init__(self, conversation_id: _Optional[str] = ..., sequence: _Optional[int] = ..., served_by: _Optional[str] = ..., kind: _Optional[_Union[ConversationEvent.Kind, str]] = ..., text: _Optional[str] = ..., delta_count: _Optional[int] = ...) -> None: ...

class DescribeAgentRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AgentInfo(_message.Message):
    __slots__ = ("instance_id",)
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    def __init__(self, instance_id: _Optional[str] = ...) -> None: ...
