import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Prompt(_message.Message):
    __slots__ = ("id", "name", "category", "type", "content", "variables", "current_version", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    category: str
    type: str
    content: str
    variables: _containers.RepeatedCompositeFieldContainer[PromptVariable]
    current_version: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., category: _Optional[str] = ..., type: _Optional[str] = ..., content: _Optional[str] = ..., variables: _Optional[_Iterable[_Union[PromptVariable, _Mapping]]] = ..., current_version: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PromptVariable(_message.Message):
    __slots__ = ("name", "description", "required", "default_value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    required: bool
    default_value: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., required: _Optional[bool] = ..., default_value: _Optional[str] = ...) -> None: ...

class PromptVersion(_message.Message):
    __slots__ = ("prompt_id", "version", "content", "variables", "change_note", "created_by", "created_at")
    PROMPT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    CHANGE_NOTE_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    prompt_id: str
    version: int
    content: str
    variables: _containers.RepeatedCompositeFieldContainer[PromptVariable]
    change_note: str
    created_by: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, prompt_id: _Optional[str] = ..., version: _Optional[int] = ..., content: _Optional[str] = ..., variables: _Optional[_Iterable[_Union[PromptVariable, _Mapping]]] = ..., change_note: _Optional[str] = ..., created_by: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListPromptsRequest(_message.Message):
    __slots__ = ("category", "page_size", "page_token")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    category: str
    page_size: int
    page_token: str
    def __init__(self, category: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPromptsResponse(_message.Message):
    __slots__ = ("prompts", "next_page_token")
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    prompts: _containers.RepeatedCompositeFieldContainer[Prompt]
    next_page_token: str
    def __init__(self, prompts: _Optional[_Iterable[_Union[Prompt, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetPromptRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetPromptResponse(_message.Message):
    __slots__ = ("prompt",)
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    prompt: Prompt
    def __init__(self, prompt: _Optional[_Union[Prompt, _Mapping]] = ...) -> None: ...

class CreatePromptRequest(_message.Message):
    __slots__ = ("name", "category", "type", "content", "variables")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    name: str
    category: str
    type: str
    content: str
    variables: _containers.RepeatedCompositeFieldContainer[PromptVariable]
    def __init__(self, name: _Optional[str] = ..., category: _Optional[str] = ..., type: _Optional[str] = ..., content: _Optional[str] = ..., variables: _Optional[_Iterable[_Union[PromptVariable, _Mapping]]] = ...) -> None: ...

class CreatePromptResponse(_message.Message):
    __slots__ = ("prompt",)
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    prompt: Prompt
    def __init__(self, prompt: _Optional[_Union[Prompt, _Mapping]] = ...) -> None: ...

class UpdatePromptRequest(_message.Message):
    __slots__ = ("id", "name", "category", "type")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    category: str
    type: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., category: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class UpdatePromptResponse(_message.Message):
    __slots__ = ("prompt",)
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    prompt: Prompt
    def __init__(self, prompt: _Optional[_Union[Prompt, _Mapping]] = ...) -> None: ...

class DeletePromptRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeletePromptResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreatePromptVersionRequest(_message.Message):
    __slots__ = ("id", "content", "variables", "change_note", "base_version")
    ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    CHANGE_NOTE_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    content: str
    variables: _containers.RepeatedCompositeFieldContainer[PromptVariable]
    change_note: str
    base_version: int
    def __init__(self, id: _Optional[str] = ..., content: _Optional[str] = ..., variables: _Optional[_Iterable[_Union[PromptVariable, _Mapping]]] = ..., change_note: _Optional[str] = ..., base_version: _Optional[int] = ...) -> None: ...

class CreatePromptVersionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: PromptVersion
    def __init__(self, version: _Optional[_Union[PromptVersion, _Mapping]] = ...) -> None: ...

class ListPromptVersionsRequest(_message.Message):
    __slots__ = ("id", "page_size", "page_token")
    ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    id: str
    page_size: int
    page_token: str
    def __init__(self, id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPromptVersionsResponse(_message.Message):
    __slots__ = ("versions", "next_page_token")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[PromptVersion]
    next_page_token: str
    def __init__(self, versions: _Optional[_Iterable[_Union[PromptVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetPromptVersionRequest(_message.Message):
    __slots__ = ("id", "version")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetPromptVersionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: PromptVersion
    def __init__(self, version: _Optional[_Union[PromptVersion, _Mapping]] = ...) -> None: ...

class DiffPromptVersionsRequest(_message.Message):
    __slots__ = ("id", "to")
    ID_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    id: str
    to: int
    def __init__(self, id: _Optional[str] = ..., to: _Optional[int] = ..., **kwargs) -> None: ...

class DiffLine(_message.Message):
    __slots__ = ("op", "text")
    OP_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    op: str
    text: str
    def __init__(self, op: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class DiffPromptVersionsResponse(_message.Message):
    __slots__ = ("to", "lines", "unified", "variables_added", "variables_removed")
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    UNIFIED_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_ADDED_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_REMOVED_FIELD_NUMBER: _ClassVar[int]
    to: int
    lines: _containers.RepeatedCompositeFieldContainer[DiffLine]
    unified: str
    variables_added: _containers.RepeatedScalarFieldContainer[str]
    variables_removed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, to: _Optional[int] = ..., lines: _Optional[_Iterable[_Union[DiffLine, _Mapping]]] = ..., unified: _Optional[str] = ..., variables_added: _Optional[_Iterable[str]] = ..., variables_removed: _Optional[_Iterable[str]] = ..., **kwargs) -> None: ...

class TestPromptRequest(_message.Message):
    __slots__ = ("id", "version", "variables")
    class VariablesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    variables: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ..., variables: _Optional[_Mapping[str, str]] = ...) -> None: ...

class PromptTestRun(_message.Message):
    __slots__ = ("id", "prompt_id", "version", "variables", "rendered", "status", "output", "error", "model", "latency_ms", "prompt_tokens", "completion_tokens", "total_tokens", "created_by", "created_at")
    class VariablesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    RENDERED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    prompt_id: str
    version: int
    variables: _containers.ScalarMap[str, str]
    rendered: str
    status: str
    output: str
    error: str
    model: str
    latency_ms: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    created_by: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., prompt_id: _Optional[str] = ..., version: _Optional[int] = ..., variables: _Optional[_Mapping[str, str]] = ..., rendered: _Optional[str] = ..., status: _Optional[str] = ..., output: _Optional[str] = ..., error: _Optional[str] = ..., model: _Optional[str] = ..., latency_ms: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., created_by: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TestPromptResponse(_message.Message):
    __slots__ = ("rendered", "run")
    RENDERED_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    rendered: str
    run: PromptTestRun
    def __init__(self, rendered: _Optional[str] = ..., run: _Optional[_Union[PromptTestRun, _Mapping]] = ...) -> None: ...

class ListPromptTestRunsRequest(_message.Message):
    __slots__ = ("id", "page_size", "page_token")
    ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    id: str
    page_size: int
    page_token: str
    def __init__(self, id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPromptTestRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[PromptTestRun]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[PromptTestRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PromptProvider(_message.Message):
    __slots__ = ("url", "model", "has_key", "key_hint", "updated_at")
    URL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    HAS_KEY_FIELD_NUMBER: _ClassVar[int]
    KEY_HINT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    url: str
    model: str
    has_key: bool
    key_hint: str
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, url: _Optional[str] = ..., model: _Optional[str] = ..., has_key: _Optional[bool] = ..., key_hint: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetPromptProviderRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetPromptProviderResponse(_message.Message):
    __slots__ = ("provider",)
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    provider: PromptProvider
    def __init__(self, provider: _Optional[_Union[PromptProvider, _Mapping]] = ...) -> None: ...

class SetPromptProviderRequest(_message.Message):
    __slots__ = ("url", "model", "key")
    URL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    url: str
    model: str
    key: str
    def __init__(self, url: _Optional[str] = ..., model: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class SetPromptProviderResponse(_message.Message):
    __slots__ = ("provider",)
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    provider: PromptProvider
    def __init__(self, provider: _Optional[_Union[PromptProvider, _Mapping]] = ...) -> None: ...

class DeletePromptProviderRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeletePromptProviderResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
