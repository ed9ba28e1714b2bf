"""Kiln's platform API: the core's clients with the `kiln.v1` services attached."""

from kiln.v1 import (
    application_pb2_grpc,
    build_pb2_grpc,
    entity_pb2_grpc,
    model_pb2_grpc,
    template_pb2_grpc,
)

from . import _core

_PLATFORM = {
    "models": model_pb2_grpc.ModelServiceStub,
    "entities": entity_pb2_grpc.EntityServiceStub,
    "applications": application_pb2_grpc.ApplicationServiceStub,
    "templates": template_pb2_grpc.TemplateServiceStub,
    "builds": build_pb2_grpc.BuildServiceStub,
}


class Client(_core.Client):
    """Kiln's platform API over gRPC (blocking): `auth`, `models`, `entities`,
    `applications`, `templates`, `builds`.

        client = Client("localhost:4000")
        client.register("ada@example.com", "correct horse 9")
        model = client.models.CreateModel(model_pb2.CreateModelRequest(name="Invoice"))
    """

    SERVICES = _PLATFORM


class AsyncClient(_core.AsyncClient):
    """[`Client`] for asyncio (grpc.aio): the same services, awaited.

        async with AsyncClient("localhost:4000") as client:
            await client.login("ada@example.com", "correct horse 9")
    """

    SERVICES = _PLATFORM
