import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Model(_message.Message):
    __slots__ = ("id", "name", "singular", "plural", "slug", "label", "label_plural", "description", "title_field", "is_system", "version", "fields", "table_name", "created_at", "updated_at", "reserved_fields")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SINGULAR_FIELD_NUMBER: _ClassVar[int]
    PLURAL_FIELD_NUMBER: _ClassVar[int]
    SLUG_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    LABEL_PLURAL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_FIELD_NUMBER: _ClassVar[int]
    IS_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    TABLE_NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    singular: str
    plural: str
    slug: str
    label: str
    label_plural: str
    description: str
    title_field: str
    is_system: bool
    version: int
    fields: _containers.RepeatedCompositeFieldContainer[Field]
    table_name: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    reserved_fields: _containers.RepeatedCompositeFieldContainer[ReservedField]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., singular: _Optional[str] = ..., plural: _Optional[str] = ..., slug: _Optional[str] = ..., label: _Optional[str] = ..., label_plural: _Optional[str] = ..., description: _Optional[str] = ..., title_field: _Optional[str] = ..., is_system: _Optional[bool] = ..., version: _Optional[int] = ..., fields: _Optional[_Iterable[_Union[Field, _Mapping]]] = ..., table_name: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reserved_fields: _Optional[_Iterable[_Union[ReservedField, _Mapping]]] = ...) -> None: ...

class ReservedField(_message.Message):
    __slots__ = ("number", "name")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    number: int
    name: str
    def __init__(self, number: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class Field(_message.Message):
    __slots__ = ("name", "label", "type", "required", "unique", "default_value", "min", "max", "min_length", "max_length", "pattern", "enum_values", "relation", "help_text", "previous_name", "number")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    UNIQUE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    MIN_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    ENUM_VALUES_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    HELP_TEXT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_NAME_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    name: str
    label: str
    type: str
    required: bool
    unique: bool
    default_value: _struct_pb2.Value
    min: float
    max: float
    min_length: int
    max_length: int
    pattern: str
    enum_values: _containers.RepeatedScalarFieldContainer[str]
    relation: Relation
    help_text: str
    previous_name: str
    number: int
    def __init__(self, name: _Optional[str] = ..., label: _Optional[str] = ..., type: _Optional[str] = ..., required: _Optional[bool] = ..., unique: _Optional[bool] = ..., default_value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., min: _Optional[float] = ..., max: _Optional[float] = ..., min_length: _Optional[int] = ..., max_length: _Optional[int] = ..., pattern: _Optional[str] = ..., enum_values: _Optional[_Iterable[str]] = ..., relation: _Optional[_Union[Relation, _Mapping]] = ..., help_text: _Optional[str] = ..., previous_name: _Optional[str] = ..., number: _Optional[int] = ...) -> None: ...

class Relation(_message.Message):
    __slots__ = ("target", "kind", "on_delete")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ON_DELETE_FIELD_NUMBER: _ClassVar[int]
    target: str
    kind: str
    on_delete: str
    def __init__(self, target: _Optional[str] = ..., kind: _Optional[str] = ..., on_delete: _Optional[str] = ...) -> None: ...

class SchemaChange(_message.Message):
    __slots__ = ("action", "field", "description", "destructive")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DESTRUCTIVE_FIELD_NUMBER: _ClassVar[int]
    action: str
    field: str
    description: str
    destructive: bool
    def __init__(self, action: _Optional[str] = ..., field: _Optional[str] = ..., description: _Optional[str] = ..., destructive: _Optional[bool] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("model_id", "version", "fields", "author", "summary", "created_at")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    version: int
    fields: _containers.RepeatedCompositeFieldContainer[Field]
    author: str
    summary: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, model_id: _Optional[str] = ..., version: _Optional[int] = ..., fields: _Optional[_Iterable[_Union[Field, _Mapping]]] = ..., author: _Optional[str] = ..., summary: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "next_page_token")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    next_page_token: str
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: Model
    def __init__(self, model: _Optional[_Union[Model, _Mapping]] = ...) -> None: ...

class CreateModelRequest(_message.Message):
    __slots__ = ("name", "plural", "label", "label_plural", "description", "title_field", "fields")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PLURAL_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    LABEL_PLURAL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    plural: str
    label: str
    label_plural: str
    description: str
    title_field: str
    fields: _containers.RepeatedCompositeFieldContainer[Field]
    def __init__(self, name: _Optional[str] = ..., plural: _Optional[str] = ..., label: _Optional[str] = ..., label_plural: _Optional[str] = ..., description: _Optional[str] = ..., title_field: _Optional[str] = ..., fields: _Optional[_Iterable[_Union[Field, _Mapping]]] = ...) -> None: ...

class CreateModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: Model
    def __init__(self, model: _Optional[_Union[Model, _Mapping]] = ...) -> None: ...

class PlanModelChangeRequest(_message.Message):
    __slots__ = ("id", "fields")
    ID_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    fields: _containers.RepeatedCompositeFieldContainer[Field]
    def __init__(self, id: _Optional[str] = ..., fields: _Optional[_Iterable[_Union[Field, _Mapping]]] = ...) -> None: ...

class PlanModelChangeResponse(_message.Message):
    __slots__ = ("changes", "destructive")
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    DESTRUCTIVE_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[SchemaChange]
    destructive: bool
    def __init__(self, changes: _Optional[_Iterable[_Union[SchemaChange, _Mapping]]] = ..., destructive: _Optional[bool] = ...) -> None: ...

class UpdateModelRequest(_message.Message):
    __slots__ = ("id", "label", "label_plural", "description", "title_field", "fields", "confirm_data_loss", "summary")
    ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    LABEL_PLURAL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    CONFIRM_DATA_LOSS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    id: str
    label: str
    label_plural: str
    description: str
    title_field: str
    fields: _containers.RepeatedCompositeFieldContainer[Field]
    confirm_data_loss: bool
    summary: str
    def __init__(self, id: _Optional[str] = ..., label: _Optional[str] = ..., label_plural: _Optional[str] = ..., description: _Optional[str] = ..., title_field: _Optional[str] = ..., fields: _Optional[_Iterable[_Union[Field, _Mapping]]] = ..., confirm_data_loss: _Optional[bool] = ..., summary: _Optional[str] = ...) -> None: ...

class UpdateModelResponse(_message.Message):
    __slots__ = ("model", "changes")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    model: Model
    changes: _containers.RepeatedCompositeFieldContainer[SchemaChange]
    def __init__(self, model: _Optional[_Union[Model, _Mapping]] = ..., changes: _Optional[_Iterable[_Union[SchemaChange, _Mapping]]] = ...) -> None: ...

class DeleteModelRequest(_message.Message):
    __slots__ = ("id", "confirm_data_loss")
    ID_FIELD_NUMBER: _ClassVar[int]
    CONFIRM_DATA_LOSS_FIELD_NUMBER: _ClassVar[int]
    id: str
    confirm_data_loss: bool
    def __init__(self, id: _Optional[str] = ..., confirm_data_loss: _Optional[bool] = ...) -> None: ...

class DeleteModelResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelVersionsRequest(_message.Message):
    __slots__ = ("id", "page_size", "page_token")
    ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    id: str
    page_size: int
    page_token: str
    def __init__(self, id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListModelVersionsResponse(_message.Message):
    __slots__ = ("versions", "next_page_token")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[ModelVersion]
    next_page_token: str
    def __init__(self, versions: _Optional[_Iterable[_Union[ModelVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetTypedContractRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetTypedContractResponse(_message.Message):
    __slots__ = ("package", "file_name", "proto", "descriptor_set")
    PACKAGE_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    PROTO_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTOR_SET_FIELD_NUMBER: _ClassVar[int]
    package: str
    file_name: str
    proto: str
    descriptor_set: bytes
    def __init__(self, package: _Optional[str] = ..., file_name: _Optional[str] = ..., proto: _Optional[str] = ..., descriptor_set: _Optional[bytes] = ...) -> None: ...
