"""Kiln's platform API from Python: the generated `kiln.v1` messages and gRPC stubs
(`from kiln.v1 import model_pb2`), and a small core around them: where the server is, the
access token on every call and its refresh, paging iterators, and errors that carry the
server's field details."""

from ._core import (
    AuthenticationError,
    ConflictError,
    FieldViolation,
    InvalidArgumentError,
    KilnError,
    NotFoundError,
    PermissionDeniedError,
    Session,
    UnavailableError,
    each,
    each_async,
    error_from,
)
from ._platform import AsyncClient, Client

__all__ = [
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "FieldViolation",
    "InvalidArgumentError",
    "KilnError",
    "NotFoundError",
    "PermissionDeniedError",
    "Session",
    "UnavailableError",
    "each",
    "each_async",
    "error_from",
]
