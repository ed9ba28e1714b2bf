"""A workspace's typed services as a stock gRPC tool sees them (what `grpcurl describe`
and a call do): described by reflection, asked with the user's token, then called with
messages built from those descriptors alone, no .proto file at hand. Another tenant
neither sees nor reaches them."""

import os
import uuid

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from kiln.v1 import model_pb2
from kiln_client import Client

TARGET = os.environ.get("KILN_TARGET", "localhost:4000")


class Bearer(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the token to every call, reflection's streams included."""

    def __init__(self, token):
        self.token = token

    def _with_token(self, details):
        metadata = list(details.metadata or []) + [("authorization", f"Bearer {self.token}")]
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._with_token(details), requests)


def reflected(token):
    channel = grpc.intercept_channel(grpc.insecure_channel(TARGET), Bearer(token))
    database = ProtoReflectionDescriptorDatabase(channel)
    return channel, database, descriptor_pool.DescriptorPool(database)


def signed_up():
    client = Client(TARGET)
    user = client.register(f"tool-{uuid.uuid4().hex[:8]}@example.com", "correct horse 9")
    return client, user.workspace_slug


def test_described_and_called_from_reflection_alone():
    client, slug = signed_up()
    fields = [model_pb2.Field(name="number", type="text", required=True), model_pb2.Field(name="count", type="integer")]
    client.models.CreateModel(model_pb2.CreateModelRequest(name="Invoice", fields=fields))
    channel, database, pool = reflected(client.session.access_token)
    service = f"kiln.ws.{slug}.v1.InvoiceService"
    assert service in list(database.get_services())
    invoice = pool.FindMessageTypeByName(f"kiln.ws.{slug}.v1.Invoice")
    assert [f.name for f in invoice.fields][4:] == ["number", "count"]

    method = pool.FindServiceByName(service).FindMethodByName("Create")
    request_type = message_factory.GetMessageClass(method.input_type)
    answer_type = message_factory.GetMessageClass(method.output_type)
    create = channel.unary_unary(f"/{service}/Create", request_serializer=request_type.SerializeToString,
                                 response_deserializer=answer_type.FromString)
    request = request_type()
    request.invoice.number = "INV-1"
    request.invoice.count = 2**53 + 1
    made = create(request)
    assert made.id and made.count == 2**53 + 1 and made.number == "INV-1"

    # Another tenant: not listed, and the call is NOT_FOUND.
    other, _ = signed_up()
    other_channel, other_database, _ = reflected(other.session.access_token)
    assert not any(name.startswith(f"kiln.ws.{slug}.") for name in other_database.get_services())
    call = other_channel.unary_unary(f"/{service}/Create", request_serializer=request_type.SerializeToString,
                                     response_deserializer=answer_type.FromString)
    with pytest.raises(grpc.RpcError) as refused:
        call(request)
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
