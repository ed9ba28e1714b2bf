"""A workspace SDK as its user gets it: downloaded from /api/v1/sdk/python, installed into
this venv with pip, then used for typed CRUD over every field type, paging, a watched
change, typed errors and a refreshed token. After a model change (a field renamed, one
added, one dropped), the SDK downloaded before it keeps working where the contract
allows: the renamed field keeps its number, the dropped one reads as absent."""

import asyncio
import datetime
import importlib
import io
import os
import queue
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
import uuid

import pytest

from kiln.v1 import model_pb2
from kiln_client import Client

TARGET = os.environ.get("KILN_TARGET", "localhost:4000")
PASSWORD = "correct horse 9"
BIG = 2**53 + 1


def every_field_type(customers_field):
    fields = [
        model_pb2.Field(name="number", type="text", required=True),
        model_pb2.Field(name="notes", type="long_text"),
        model_pb2.Field(name="count", type="integer"),
        model_pb2.Field(name="amount", type="decimal"),
        model_pb2.Field(name="paid", type="boolean"),
        model_pb2.Field(name="due", type="date"),
        model_pb2.Field(name="sent_at", type="datetime"),
        model_pb2.Field(name="email", type="email"),
        model_pb2.Field(name="site", type="url"),
        model_pb2.Field(name="status", type="enum", enum_values=["draft", "paid"]),
        model_pb2.Field(name="extra", type="json"),
        model_pb2.Field(name="ref", type="uuid"),
        customers_field,
    ]
    return fields


def download_and_install(platform, tmp_path):
    """The workspace's SDK, fetched as a user would and pip-installed; its module."""
    request = urllib.request.Request(
        f"http://{TARGET}/api/v1/sdk/python",
        headers={"authorization": f"Bearer {platform.session.access_token}"},
    )
    with urllib.request.urlopen(request) as response:
        assert response.headers["content-type"] == "application/gzip"
        archive = response.read()
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    (root,) = list(tmp_path.iterdir())
    # The package's dependencies are the platform client's, already here: nothing is fetched.
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-index", str(root)]
    subprocess.check_call(pip)
    importlib.invalidate_caches()
    slug = root.name[len("kiln-ws-"):-len("-python")].replace("-", "_")
    return importlib.import_module(f"kiln_ws_{slug}")


@pytest.fixture()
def workspace():
    """A new user with a Customer model and an Invoice model of every field type."""
    email = f"sdk-{uuid.uuid4().hex[:8]}@example.com"
    platform = Client(TARGET)
    platform.register(email, PASSWORD)
    customer = [model_pb2.Field(name="name", type="text", required=True)]
    platform.models.CreateModel(model_pb2.CreateModelRequest(name="Customer", fields=customer))
    relation = model_pb2.Field(
        name="customer", type="relation", relation=model_pb2.Relation(target="customers", kind="many_to_one"))
    invoice = platform.models.CreateModel(model_pb2.CreateModelRequest(name="Invoice", fields=every_field_type(relation)))
    yield platform, email, invoice.model
    platform.close()


def test_typed_records_of_every_field_type_through_the_downloaded_sdk(workspace, tmp_path):
    platform, email, _ = workspace
    sdk = download_and_install(platform, tmp_path)
    client = sdk.Client(TARGET)
    client.login(email, PASSWORD)

    acme = client.customers.create(name="ACME")
    sent = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    made = client.invoices.create(
        number="INV-1", notes="line one\nline two", count=BIG, amount="12.50", paid=True, due="2026-01-31",
        sent_at=sent, email="billing@example.com", site="https://example.com/i/1",
        status=sdk.Invoice.STATUS_PAID, extra={"lines": [1, "two"], "ok": True},
        ref="8c2f1a7e-3b4d-4c5e-9f60-7a8b9c0d1e2f", customer=acme.id)
    got = client.invoices.get(made.id)
    assert isinstance(got, sdk.Invoice) and got == made
    assert got.count == BIG, "an int64 above 2^53 is exact"
    assert got.amount in ("12.50", "12.5") and got.paid and got.due == "2026-01-31"
    assert got.sent_at.ToDatetime(datetime.timezone.utc) == sent
    assert got.status == sdk.Invoice.STATUS_PAID and got.customer == acme.id
    assert got.extra.struct_value["lines"][1] == "two" and got.notes == "line one\nline two"
    assert got.site == "https://example.com/i/1" and got.created_at.seconds > 0

    for n in range(2, 5):
        client.invoices.create(number=f"INV-{n}", count=n)
    assert [i.number for i in client.invoices.each(sort="number", page_size=2)] == [f"INV-{n}" for n in range(1, 5)]
    page = client.invoices.page(page_size=3, sort="-number")
    assert [i.number for i in page.invoices] == ["INV-4", "INV-3", "INV-2"] and page.next_page_token
    assert [i.number for i in client.invoices.each(filter={"number": "INV-3"})] == ["INV-3"]

    changed = client.invoices.update(made.id, number="INV-1b", count=None)
    assert changed.number == "INV-1b" and not changed.HasField("count") and changed.paid, "only the mask changes"

    with pytest.raises(sdk.InvalidArgumentError) as refused:
        client.invoices.create(count=1)
    assert "number" in refused.value.fields
    with pytest.raises(sdk.InvalidArgumentError) as refused:
        client.invoices.create(number="X", email="not an email")
    assert "email" in refused.value.fields

    client.invoices.delete(made.id)
    with pytest.raises(sdk.NotFoundError):
        client.invoices.get(made.id)
    client.close()


def test_a_change_arrives_on_watch_and_a_refused_token_is_refreshed(workspace, tmp_path):
    platform, _, _ = workspace
    sdk = download_and_install(platform, tmp_path)
    # A token the server refuses, and a good refresh token: the first call refreshes.
    client = sdk.Client(TARGET, access_token="not-a-token", refresh_token=platform.session.refresh_token)
    made = client.invoices.create(number="W-1")
    assert client.session.access_token != "not-a-token"

    changes = queue.Queue()

    def watch():
        try:
            for change in client.invoices.watch():
                changes.put(change)
        except sdk.KilnError:
            pass  # the channel closed at the end of the test

    threading.Thread(target=watch, daemon=True).start()
    # The stream may not be subscribed yet when the first change is made: change again
    # until one arrives, within a deadline.
    deadline = time.monotonic() + 20
    change = None
    while change is None and time.monotonic() < deadline:
        client.invoices.update(made.id, count=int(time.monotonic() * 1000))
        try:
            change = changes.get(timeout=0.5)
        except queue.Empty:
            pass
    assert change is not None, "no change arrived on Watch"
    assert change.kind == sdk.InvoiceChange.KIND_UPDATED and change.id == made.id
    assert change.invoice.number == "W-1"
    client.close()

    async def asynchronous():
        async with sdk.AsyncClient(TARGET, access_token=client.session.access_token) as aclient:
            got = await aclient.invoices.get(made.id)
            listed = [i.id async for i in aclient.invoices.each()]
            return got, listed

    got, listed = asyncio.run(asynchronous())
    assert got.number == "W-1" and listed == [made.id]


def test_an_sdk_from_before_a_model_change_keeps_working(workspace, tmp_path):
    platform, _, invoice = workspace
    sdk = download_and_install(platform, tmp_path)
    client = sdk.Client(TARGET, access_token=platform.session.access_token)
    made = client.invoices.create(number="OLD-1", notes="to be dropped", count=7)

    # `number` renamed to `code`, `notes` dropped (confirmed), `memo` added.
    fields = [f for f in invoice.fields if f.name not in ("notes",)]
    for field in fields:
        if field.name == "number":
            field.previous_name, field.name = "number", "code"
    fields.append(model_pb2.Field(name="memo", type="text"))
    platform.models.UpdateModel(model_pb2.UpdateModelRequest(id=invoice.id, fields=fields, confirm_data_loss=True))

    old = client.invoices.get(made.id)
    assert old.number == "OLD-1", "the renamed field keeps its number, so the old name reads it"
    assert not old.HasField("notes"), "the dropped field reads as absent"
    assert old.count == 7
    again = client.invoices.create(number="OLD-2", notes="ignored")
    assert again.number == "OLD-2" and not again.HasField("notes")
    renamed = client.invoices.update(made.id, number="OLD-1b")
    assert renamed.number == "OLD-1b"
    client.close()
