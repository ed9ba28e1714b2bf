"""The platform client against a running Kiln (KILN_TARGET, host:port): sign-up, a model
with every field type, records through EntityService with paging, typed errors with field
details, a refused token refreshed, and the asyncio client."""

import asyncio
import os
import uuid

import pytest
from google.protobuf import struct_pb2

from kiln.v1 import entity_pb2, model_pb2
from kiln_client import AsyncClient, Client, InvalidArgumentError, NotFoundError, each, each_async

TARGET = os.environ.get("KILN_TARGET", "localhost:4000")
PASSWORD = "correct horse 9"
FIELD_TYPES = ["text", "long_text", "integer", "decimal", "boolean", "date", "datetime", "email", "url",
               "enum", "json", "uuid"]


def record(**values):
    message = struct_pb2.Struct()
    message.update(values)
    return message


@pytest.fixture()
def client():
    with Client(TARGET) as client:
        client.register(f"py-{uuid.uuid4().hex[:8]}@example.com", PASSWORD)
        yield client


def test_a_model_with_every_field_type_and_its_records(client):
    fields = [model_pb2.Field(name=f"f_{kind}", type=kind, required=kind == "text") for kind in FIELD_TYPES]
    fields[FIELD_TYPES.index("enum")].enum_values.extend(["draft", "sent"])
    created = client.models.CreateModel(model_pb2.CreateModelRequest(name="Invoice", fields=fields)).model
    assert created.plural == "invoices"
    assert [f.number for f in created.fields] == list(range(16, 16 + len(FIELD_TYPES)))

    for n in range(3):
        client.entities.CreateEntity(entity_pb2.CreateEntityRequest(
            model="invoices", record=record(f_text=f"INV-{n}", f_integer=n, f_enum="sent", f_json={"n": n})))
    listed = list(each(client.entities.ListEntities,
                       entity_pb2.ListEntitiesRequest(model="invoices", page_size=2, sort="f_text"), "records"))
    assert [r["f_text"] for r in listed] == ["INV-0", "INV-1", "INV-2"]
    assert listed[2]["f_json"]["n"] == 2

    first = listed[0]["id"]
    changed = client.entities.UpdateEntity(entity_pb2.UpdateEntityRequest(
        model="invoices", id=first, record=record(f_decimal="12.50"), partial=True)).record
    assert changed["f_text"] == "INV-0" and changed["f_decimal"] in ("12.50", "12.5")
    client.entities.DeleteEntity(entity_pb2.DeleteEntityRequest(model="invoices", id=first))
    with pytest.raises(NotFoundError):
        client.entities.GetEntity(entity_pb2.GetEntityRequest(model="invoices", id=first))


def test_a_refused_record_names_its_fields(client):
    fields = [model_pb2.Field(name="number", type="text", required=True), model_pb2.Field(name="count", type="integer")]
    client.models.CreateModel(model_pb2.CreateModelRequest(name="Ticket", fields=fields))
    with pytest.raises(InvalidArgumentError) as refused:
        client.entities.CreateEntity(entity_pb2.CreateEntityRequest(model="tickets", record=record(count="many")))
    assert set(refused.value.fields) == {"number", "count"}, refused.value.fields


def test_a_refused_access_token_is_refreshed_once(client):
    client.session.access_token = "not-a-token"
    models = client.models.ListModels(model_pb2.ListModelsRequest())
    assert any(m.plural == "models" for m in models.models)
    assert client.session.access_token != "not-a-token"


def test_the_asyncio_client():
    async def scenario():
        async with AsyncClient(TARGET) as client:
            user = await client.register(f"aio-{uuid.uuid4().hex[:8]}@example.com", PASSWORD)
            assert user.workspace_slug
            plurals = [m.plural async for m in each_async(client.models.ListModels,
                                                          model_pb2.ListModelsRequest(page_size=2), "models")]
            assert "applications" in plurals and len(plurals) >= 7
            with pytest.raises(InvalidArgumentError) as refused:
                await client.models.CreateModel(model_pb2.CreateModelRequest(name=""))
            assert "name" in refused.value.fields

    asyncio.run(scenario())
