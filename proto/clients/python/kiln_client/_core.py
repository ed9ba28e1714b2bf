"""The core of Kiln's Python clients, shared as it is by the platform client
(proto/clients/python) and every workspace SDK (the `sdk-python` template set carries
this file): one channel, the access token on every call, a refresh when the server says
it expired (once per call, one refresh at a time), errors as exceptions that carry the
server's field details, and paging iterators. It needs only the auth messages and stub,
which `._auth` provides."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, ClassVar, Iterator, Optional

import grpc
import grpc.aio
from google.rpc import error_details_pb2, status_pb2

from ._auth import AuthServiceStub, auth_pb2

_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class FieldViolation:
    """One field the server refused, and why."""

    field: str
    description: str


class KilnError(Exception):
    """A call the server refused or could not answer. `code` is the gRPC status code,
    `violations` the fields it refused (for INVALID_ARGUMENT)."""

    def __init__(self, code: grpc.StatusCode, message: str, violations: tuple[FieldViolation, ...] = ()):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.violations = violations

    @property
    def fields(self) -> dict[str, str]:
        """Field name → what is wrong with it."""
        return {v.field: v.description for v in self.violations}


class InvalidArgumentError(KilnError):
    """INVALID_ARGUMENT: the request is wrong; `fields` says where."""


class NotFoundError(KilnError):
    """NOT_FOUND: no such thing in the caller's workspace."""


class AuthenticationError(KilnError):
    """UNAUTHENTICATED: no valid token, and none could be refreshed."""


class PermissionDeniedError(KilnError):
    """PERMISSION_DENIED."""


class ConflictError(KilnError):
    """ALREADY_EXISTS, ABORTED or FAILED_PRECONDITION: the state does not allow it."""


class UnavailableError(KilnError):
    """UNAVAILABLE or DEADLINE_EXCEEDED: trying again later may work."""


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.ALREADY_EXISTS: ConflictError,
    grpc.StatusCode.ABORTED: ConflictError,
    grpc.StatusCode.FAILED_PRECONDITION: ConflictError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: UnavailableError,
}


def error_from(code: grpc.StatusCode, message: str, trailing: Any) -> KilnError:
    """The error a status (and its `google.rpc.Status` details, if any) stands for."""
    violations: list[FieldViolation] = []
    for key, value in trailing or ():
        if key != _DETAILS_KEY:
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            bad = error_details_pb2.BadRequest()
            if detail.Unpack(bad):
                violations.extend(FieldViolation(v.field, v.description) for v in bad.field_violations)
    return _BY_CODE.get(code, KilnError)(code, message, tuple(violations))


def _converted(error: grpc.RpcError) -> KilnError:
    return error_from(error.code(), error.details() or "", error.trailing_metadata())


@dataclass
class Session:
    """The signed-in session's tokens."""

    access_token: str = ""
    refresh_token: str = ""


def _keep(session: Session, tokens: auth_pb2.TokenPair) -> None:
    session.access_token = tokens.access_token
    session.refresh_token = tokens.refresh_token


def _metadata(session: Session, given: Any) -> list[tuple[str, str]]:
    metadata = list(given or ())
    if session.access_token:
        metadata.append(("authorization", f"Bearer {session.access_token}"))
    return metadata


def each(method: Callable[[Any], Any], request: Any, items: str) -> Iterator[Any]:
    """Every item of every page a List method answers (`items` is the repeated field),
    following `next_page_token` until the last page."""
    request = type(request).FromString(request.SerializeToString())
    while True:
        page = method(request)
        yield from getattr(page, items)
        if not page.next_page_token:
            return
        request.page_token = page.next_page_token


async def each_async(method: Callable[[Any], Any], request: Any, items: str) -> AsyncIterator[Any]:
    """[`each`] for an [`AsyncClient`]'s methods."""
    request = type(request).FromString(request.SerializeToString())
    while True:
        page = await method(request)
        for item in getattr(page, items):
            yield item
        if not page.next_page_token:
            return
        request.page_token = page.next_page_token


class _Service:
    """A generated stub whose methods carry the token, refresh it once when it is refused,
    and raise [`KilnError`]s."""

    def __init__(self, client: "Client", stub: Any):
        self._client = client
        self._stub = stub

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._stub, name)
        client = self._client
        if isinstance(method, grpc.UnaryStreamMultiCallable):

            def stream(request: Any, metadata: Any = None, **kwargs: Any) -> Iterator[Any]:
                try:
                    yield from method(request, metadata=_metadata(client.session, metadata), **kwargs)
                except grpc.RpcError as error:
                    raise _converted(error) from None

            return stream

        def unary(request: Any, metadata: Any = None, **kwargs: Any) -> Any:
            token = client.session.access_token
            try:
                return method(request, metadata=_metadata(client.session, metadata), **kwargs)
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.UNAUTHENTICATED and client._refresh(token):
                    try:
                        return method(request, metadata=_metadata(client.session, metadata), **kwargs)
                    except grpc.RpcError as again:
                        raise _converted(again) from None
                raise _converted(error) from None

        return unary


class Client:
    """A blocking connection to Kiln's gateway. `target` is `host:port` of the gateway;
    `credentials` (e.g. `grpc.ssl_channel_credentials()`) for TLS. Each entry of
    `SERVICES` (attribute name → generated stub class) becomes an attribute whose calls
    carry the token and raise [`KilnError`]s."""

    SERVICES: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        target: str = "localhost:4000",
        *,
        access_token: str = "",
        refresh_token: str = "",
        credentials: Optional[grpc.ChannelCredentials] = None,
    ):
        self.session = Session(access_token, refresh_token)
        self.channel = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
        self._refreshing = threading.Lock()
        self.auth = _Service(self, AuthServiceStub(self.channel))
        for name, stub in self.SERVICES.items():
            setattr(self, name, _Service(self, stub(self.channel)))

    def register(self, email: str, password: str, display_name: str = "") -> auth_pb2.User:
        """Creates an account (and its workspace) and signs in as it."""
        answer = self.auth.Register(auth_pb2.RegisterRequest(email=email, password=password, display_name=display_name))
        _keep(self.session, answer.tokens)
        return answer.user

    def login(self, email: str, password: str) -> auth_pb2.User:
        answer = self.auth.Login(auth_pb2.LoginRequest(email=email, password=password))
        _keep(self.session, answer.tokens)
        return answer.user

    def _refresh(self, refused: str) -> bool:
        """Trades the refresh token for new tokens, unless another call already did since
        `refused` was current. False: there is nothing to refresh with."""
        with self._refreshing:
            if self.session.access_token != refused:
                return True
            if not self.session.refresh_token:
                return False
            request = auth_pb2.RefreshRequest(refresh_token=self.session.refresh_token)
            try:
                answer = AuthServiceStub(self.channel).Refresh(request)
            except grpc.RpcError:
                return False
            _keep(self.session, answer.tokens)
            return True

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


class _AsyncService:
    """[`_Service`] for grpc.aio stubs."""

    def __init__(self, client: "AsyncClient", stub: Any):
        self._client = client
        self._stub = stub

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._stub, name)
        client = self._client
        if isinstance(method, grpc.aio.UnaryStreamMultiCallable):

            async def stream(request: Any, metadata: Any = None, **kwargs: Any) -> AsyncIterator[Any]:
                try:
                    async for item in method(request, metadata=_metadata(client.session, metadata), **kwargs):
                        yield item
                except grpc.aio.AioRpcError as error:
                    raise _converted(error) from None

            return stream

        async def unary(request: Any, metadata: Any = None, **kwargs: Any) -> Any:
            token = client.session.access_token
            try:
                return await method(request, metadata=_metadata(client.session, metadata), **kwargs)
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.UNAUTHENTICATED and await client._refresh(token):
                    try:
                        return await method(request, metadata=_metadata(client.session, metadata), **kwargs)
                    except grpc.aio.AioRpcError as again:
                        raise _converted(again) from None
                raise _converted(error) from None

        return unary


class AsyncClient:
    """[`Client`] for asyncio (grpc.aio): the same services, awaited."""

    SERVICES: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        target: str = "localhost:4000",
        *,
        access_token: str = "",
        refresh_token: str = "",
        credentials: Optional[grpc.ChannelCredentials] = None,
    ):
        self.session = Session(access_token, refresh_token)
        self.channel = (
            grpc.aio.secure_channel(target, credentials) if credentials else grpc.aio.insecure_channel(target)
        )
        self._refreshing = asyncio.Lock()
        self.auth = _AsyncService(self, AuthServiceStub(self.channel))
        for name, stub in self.SERVICES.items():
            setattr(self, name, _AsyncService(self, stub(self.channel)))

    async def register(self, email: str, password: str, display_name: str = "") -> auth_pb2.User:
        request = auth_pb2.RegisterRequest(email=email, password=password, display_name=display_name)
        answer = await self.auth.Register(request)
        _keep(self.session, answer.tokens)
        return answer.user

    async def login(self, email: str, password: str) -> auth_pb2.User:
        answer = await self.auth.Login(auth_pb2.LoginRequest(email=email, password=password))
        _keep(self.session, answer.tokens)
        return answer.user

    async def _refresh(self, refused: str) -> bool:
        async with self._refreshing:
            if self.session.access_token != refused:
                return True
            if not self.session.refresh_token:
                return False
            request = auth_pb2.RefreshRequest(refresh_token=self.session.refresh_token)
            try:
                answer = await AuthServiceStub(self.channel).Refresh(request)
            except grpc.aio.AioRpcError:
                return False
            _keep(self.session, answer.tokens)
            return True

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.close()
