// A workspace SDK as its user gets it, under Node against a running Kiln (KILN_URL):
// downloaded from /api/v1/sdk/typescript, unpacked and compiled with tsc (so its types
// check, and a file using them as a user would), then used for typed CRUD over every field
// type, paging, a watched change, typed errors and a refreshed token. After a model change
// (a field renamed, one added, one dropped), the SDK downloaded before it keeps working
// where the contract allows.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, Kiln, type Model } from "../index.js";

const baseUrl = process.env.KILN_URL ?? "http://localhost:4000";
const password = "correct horse 9";
const big = 2n ** 53n + 1n;
// dist/test/ → the package, whose node_modules the SDK is compiled against.
const clientRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

// What a user of the SDK writes: compiled with it, so a wrong type fails the build.
const usage = `import { Workspace, Invoice_Status, type Invoice } from "./index.js";
export async function usage(kiln: Workspace): Promise<bigint | undefined> {
  const made: Invoice = await kiln.invoices.create({ number: "A-1", count: 1n, status: Invoice_Status.PAID, paid: true });
  for await (const invoice of kiln.invoices.each({ sort: "-number" })) void invoice.number;
  const changed = await kiln.invoices.update(made.id, { count: 2n });
  return changed.count;
}
`;

async function workspace(): Promise<{ kiln: Kiln; email: string; invoice: Model }> {
  const kiln = new Kiln({ baseUrl });
  const email = `ts-sdk-${randomUUID().slice(0, 8)}@example.com`;
  await kiln.register(email, password);
  await kiln.models.createModel({ name: "Customer", fields: [{ name: "name", type: "text", required: true }] });
  const created = await kiln.models.createModel({
    name: "Invoice",
    fields: [
      { name: "number", type: "text", required: true },
      { name: "notes", type: "long_text" },
      { name: "count", type: "integer" },
      { name: "amount", type: "decimal" },
      { name: "paid", type: "boolean" },
      { name: "due", type: "date" },
      { name: "sent_at", type: "datetime" },
      { name: "email", type: "email" },
      { name: "site", type: "url" },
      { name: "status", type: "enum", enumValues: ["draft", "paid"] },
      { name: "extra", type: "json" },
      { name: "ref", type: "uuid" },
      { name: "customer", type: "relation", relation: { target: "customers", kind: "many_to_one" } },
    ],
  });
  assert.ok(created.model);
  return { kiln, email, invoice: created.model };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Sdk = any;

/** The workspace's SDK: downloaded, unpacked, compiled with a user's file, imported. */
async function downloadedSdk(kiln: Kiln): Promise<Sdk> {
  const response = await fetch(`${baseUrl}/api/v1/sdk/typescript`, {
    headers: { authorization: `Bearer ${kiln.session.accessToken}` },
  });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/gzip");
  const work = mkdtempSync(join(tmpdir(), "kiln-sdk-"));
  writeFileSync(join(work, "sdk.tar.gz"), Buffer.from(await response.arrayBuffer()));
  execFileSync("tar", ["xzf", "sdk.tar.gz"], { cwd: work });
  const root = join(work, readdirSync(work).find((name) => name.endsWith("-typescript")) ?? "");
  symlinkSync(join(clientRoot, "node_modules"), join(root, "node_modules"));
  writeFileSync(join(root, "src", "usage.ts"), usage);
  execFileSync(process.execPath, [join(clientRoot, "node_modules/typescript/bin/tsc"), "-p", root], { stdio: "inherit" });
  return await import(pathToFileURL(join(root, "dist", "index.js")).href);
}

test("typed records of every field type through the downloaded SDK", async () => {
  const { kiln: platform, email } = await workspace();
  const sdk = await downloadedSdk(platform);
  const kiln = new sdk.Workspace({ baseUrl });
  await kiln.login(email, password);

  const acme = await kiln.customers.create({ name: "ACME" });
  const sent = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));
  const made = await kiln.invoices.create({
    number: "INV-1",
    notes: "line one\nline two",
    count: big,
    amount: "12.50",
    paid: true,
    due: "2026-01-31",
    sentAt: timestampFromDate(sent),
    email: "billing@example.com",
    site: "https://example.com/i/1",
    status: sdk.Invoice_Status.PAID,
    extra: fromJson(ValueSchema, { lines: [1, "two"], ok: true }),
    ref: "8c2f1a7e-3b4d-4c5e-9f60-7a8b9c0d1e2f",
    customer: acme.id,
  });
  const got = await kiln.invoices.get(made.id);
  assert.equal(got.count, big, "an int64 above 2^53 is exact");
  assert.ok(["12.50", "12.5"].includes(got.amount));
  assert.equal(got.paid, true);
  assert.equal(got.due, "2026-01-31");
  assert.equal(timestampDate(got.sentAt).getTime(), sent.getTime());
  assert.equal(got.status, sdk.Invoice_Status.PAID);
  assert.equal(got.customer, acme.id);
  assert.equal(got.extra.kind.value.fields.lines.kind.value.values[1].kind.value, "two");
  assert.equal(got.notes, "line one\nline two");

  for (const n of [2, 3, 4]) await kiln.invoices.create({ number: `INV-${n}`, count: BigInt(n) });
  const numbers: string[] = [];
  for await (const invoice of kiln.invoices.each({ sort: "number", pageSize: 2 })) numbers.push(invoice.number);
  assert.deepEqual(numbers, ["INV-1", "INV-2", "INV-3", "INV-4"]);
  const page = await kiln.invoices.page({ pageSize: 3, sort: "-number" });
  assert.deepEqual(page.invoices.map((i: { number: string }) => i.number), ["INV-4", "INV-3", "INV-2"]);
  assert.ok(page.nextPageToken);

  const changed = await kiln.invoices.update(made.id, { number: "INV-1b", count: undefined });
  assert.equal(changed.number, "INV-1b");
  assert.equal(changed.count, undefined, "named in the mask and unset: cleared");
  assert.equal(changed.paid, true, "not in the mask: kept");

  await assert.rejects(kiln.invoices.create({ count: 1n }), (error: Sdk) => {
    assert.ok(error instanceof sdk.KilnError && error.code === Code.InvalidArgument);
    assert.ok("number" in error.fields, JSON.stringify(error.fields));
    return true;
  });
  await kiln.invoices.delete(made.id);
  await assert.rejects(kiln.invoices.get(made.id), (error: Sdk) => {
    assert.ok(error instanceof sdk.KilnError && error.code === Code.NotFound);
    return true;
  });
});

test("a change arrives on Watch and a refused token is refreshed", async () => {
  const { kiln: platform } = await workspace();
  const sdk = await downloadedSdk(platform);
  const session = { accessToken: "not-a-token", refreshToken: platform.session.refreshToken };
  const kiln = new sdk.Workspace({ baseUrl, session });
  const made = await kiln.invoices.create({ number: "W-1" });
  assert.notEqual(kiln.session.accessToken, "not-a-token");

  const stop = new AbortController();
  const changes: { kind: number; id: string; invoice?: { number: string } }[] = [];
  const watching = (async () => {
    try {
      for await (const change of kiln.invoices.watch(stop.signal)) changes.push(change);
    } catch (error) {
      if (!stop.signal.aborted) throw error;
    }
  })();
  // The stream may not be subscribed when the first change is made: change again until
  // one arrives, within a deadline.
  const deadline = Date.now() + 20_000;
  while (changes.length === 0 && Date.now() < deadline) {
    await kiln.invoices.update(made.id, { count: BigInt(Date.now()) });
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  stop.abort();
  await watching;
  assert.ok(changes.length > 0, "no change arrived on Watch");
  assert.equal(changes[0].kind, sdk.InvoiceChange_Kind.UPDATED);
  assert.equal(changes[0].id, made.id);
  assert.equal(changes[0].invoice?.number, "W-1");
});

test("an SDK from before a model change keeps working", async () => {
  const { kiln: platform, invoice } = await workspace();
  const sdk = await downloadedSdk(platform);
  const kiln = new sdk.Workspace({ baseUrl, session: platform.session });
  const made = await kiln.invoices.create({ number: "OLD-1", notes: "to be dropped", count: 7n });

  // `number` renamed to `code`, `notes` dropped (confirmed), `memo` added.
  const fields = invoice.fields
    .filter((field) => field.name !== "notes")
    .map((field) => (field.name === "number" ? { ...field, name: "code", previousName: "number" } : field));
  fields.push({ ...fields[0], name: "memo", type: "text", required: false, number: 0, previousName: "" });
  await platform.models.updateModel({ id: invoice.id, fields, confirmDataLoss: true });

  const old = await kiln.invoices.get(made.id);
  assert.equal(old.number, "OLD-1", "the renamed field keeps its number, so the old name reads it");
  assert.equal(old.notes, undefined, "the dropped field reads as absent");
  assert.equal(old.count, 7n);
  const again = await kiln.invoices.create({ number: "OLD-2", notes: "ignored" });
  assert.equal(again.number, "OLD-2");
  assert.equal(again.notes, undefined);
  const renamed = await kiln.invoices.update(made.id, { number: "OLD-1b" });
  assert.equal(renamed.number, "OLD-1b");
});
