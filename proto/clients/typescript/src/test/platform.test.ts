// The TypeScript client under Node against a running Kiln (KILN_URL): sign-up, a model
// with its records through EntityService with paging, a refused record's fields, and a
// refused token refreshed.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { Code, Kiln, KilnError, each } from "../index.js";

const baseUrl = process.env.KILN_URL ?? "http://localhost:4000";

async function signedUp(): Promise<Kiln> {
  const kiln = new Kiln({ baseUrl });
  const user = await kiln.register(`ts-${randomUUID().slice(0, 8)}@example.com`, "correct horse 9");
  assert.ok(user?.workspaceSlug);
  return kiln;
}

test("a model and its records, paged", async () => {
  const kiln = await signedUp();
  const created = await kiln.models.createModel({
    name: "Invoice",
    fields: [
      { name: "number", type: "text", required: true },
      { name: "count", type: "integer" },
    ],
  });
  assert.deepEqual(created.model?.fields.map((f) => f.number), [16, 17]);
  for (const n of [0, 1, 2]) {
    await kiln.entities.createEntity({ model: "invoices", record: { number: `INV-${n}`, count: n } });
  }
  const numbers: unknown[] = [];
  for await (const record of each(kiln.entities.listEntities, { model: "invoices", pageSize: 2, sort: "number" }, "records")) {
    numbers.push(record.number);
  }
  assert.deepEqual(numbers, ["INV-0", "INV-1", "INV-2"]);
});

test("a refused record names its fields", async () => {
  const kiln = await signedUp();
  await kiln.models.createModel({ name: "Ticket", fields: [{ name: "number", type: "text", required: true }] });
  await assert.rejects(kiln.entities.createEntity({ model: "tickets", record: {} }), (error: unknown) => {
    assert.ok(error instanceof KilnError);
    assert.equal(error.code, Code.InvalidArgument);
    assert.ok("number" in error.fields, JSON.stringify(error.fields));
    return true;
  });
  await assert.rejects(kiln.entities.getEntity({ model: "tickets", id: randomUUID() }), (error: unknown) => {
    assert.ok(error instanceof KilnError && error.code === Code.NotFound);
    return true;
  });
});

test("a refused access token is refreshed once", async () => {
  const kiln = await signedUp();
  kiln.session.accessToken = "not-a-token";
  const listed = await kiln.models.listModels({});
  assert.ok(listed.models.some((m) => m.plural === "models"));
  assert.notEqual(kiln.session.accessToken, "not-a-token");
});
