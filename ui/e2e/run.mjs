// Kiln's web UI in headless Chromium against a real `kiln serve` (all-in-one, SQLite in a
// fresh directory) and the local Docker engine: the seeds' scenario, wrong inputs, slow
// and unanswered calls, an access token that is no longer accepted, the workflow
// designer, webhooks with a receiver here, the prompt editor with a second writer and a
// chat-completions endpoint here, an image built, run and stopped, and a stopped server. Screenshots of the key screens, at desktop and phone
// widths, go to ui/e2e/artifacts/.
//
//   KILN_BIN=target/debug/kiln node ui/e2e/run.mjs
//
// Any console error or uncaught exception in the page fails the run.

import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const artifacts = join(here, "artifacts");
// Absolute: the server runs in a directory of its own.
const kiln = resolve(process.env.KILN_BIN ?? join(here, "../../target/debug/kiln"));
const port = 4400 + Math.floor(Math.random() * 500);
const base = `http://127.0.0.1:${port}`;
const deadline = (ms) => Date.now() + ms;

function fail(message) {
  throw new Error(message);
}

async function until(what, check, ms = 15000) {
  const end = deadline(ms);
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (_) {
      // not yet
    }
    if (Date.now() > end) fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function startKiln(dir) {
  const server = spawn(kiln, ["serve"], {
    cwd: dir,
    // Private addresses allowed: the webhook receiver and the model endpoint run here.
    env: {
      ...process.env, KILN_HTTP_ADDR: `127.0.0.1:${port}`, KILN_LOG_FORMAT: "json", KILN_LOG: "warn",
      KILN_WEBHOOK_ALLOW_PRIVATE: "true",
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  return server;
}

async function shoot(page, name) {
  for (const [width, height, suffix] of [[1280, 800, "desktop"], [375, 812, "phone"]]) {
    await page.setViewportSize({ width, height });
    await page.screenshot({ path: join(artifacts, `${name}-${suffix}.png`), fullPage: true });
    // Fits the width (wide tables scroll inside their frame); a closed menu is one bar.
    const { scrollWidth, navHeight } = await page.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      navHeight: document.querySelector("nav.nav")?.getBoundingClientRect().height ?? 0,
    }));
    if (scrollWidth > width) fail(`${name} is ${scrollWidth}px wide at ${width}px`);
    if (suffix === "phone" && navHeight > 100) fail(`${name}: the closed menu is ${navHeight}px tall at phone width`);
  }
  await page.setViewportSize({ width: 1280, height: 800 });
}

// A local HTTP server; `answer(request, body)` gives [status, JSON body or null]. Every
// request is kept in `requests`.
async function localServer(answer) {
  const requests = [];
  const server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => { body += chunk; });
    request.on("end", () => {
      requests.push({ method: request.method, url: request.url, headers: request.headers, body });
      const [status, json] = answer(request, body);
      response.writeHead(status, json === null ? {} : { "content-type": "application/json" });
      response.end(json === null ? undefined : JSON.stringify(json));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, requests, url: `http://127.0.0.1:${server.address().port}` };
}

async function main() {
  rmSync(artifacts, { recursive: true, force: true });
  mkdirSync(artifacts, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), "kiln-ui-e2e-"));
  let server = startKiln(dir);
  await until("kiln to be ready", async () => (await fetch(`${base}/readyz`)).ok, 60000);

  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
      "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
  const problems = [];
  // Stops the local servers the steps start.
  const closers = [];
  let expectFailures = false;
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  try {
    page.on("console", (message) => {
      if (message.type() === "error" && !expectFailures) problems.push(`console: ${message.text()}`);
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("dialog", (dialog) => dialog.accept());

    // A signed-out visitor of a deep link lands on /login, and comes back after.
    await page.goto(`${base}/models`);
    await page.waitForURL(/\/login\?next=/);
    await shoot(page, "01-login");
    await page.getByRole("link", { name: "Create an account" }).click();
    await page.waitForURL(/\/register\?next=/);
    await page.fill("#email", "not-an-email");
    await page.fill("#password", "short");
    await page.click("button[type=submit]");
    await page.waitForSelector(".field-error");
    await page.fill("#email", "ada@example.com");
    await page.fill("#password", "correct horse 9");
    await page.click("button[type=submit]");
    await page.waitForURL(`${base}/models`);

    // The platform's models are tabs, grouped apart from the user's.
    const system = page.getByTestId("system-models");
    await system.getByRole("link", { name: "Applications" }).waitFor();
    for (const tab of ["Models", "Templates", "Workflows", "Prompts"]) {
      await system.getByRole("link", { name: tab }).waitFor();
    }
    await page.evaluate(() => { window.__sameDocument = true; });

    // A model with four fields of different types; its tab appears without a reload.
    await page.getByRole("link", { name: "New model" }).click();
    await page.fill("#model-name", "Invoice");
    const row = (i) => page.locator(".field-row").nth(i);
    const addField = async (i, name, type) => {
      if (i > 0) await page.getByRole("button", { name: "Add field" }).click();
      await row(i).getByLabel("Field name").fill(name);
      await row(i).getByLabel("Type").selectOption(type);
    };
    await addField(0, "number", "text");
    await row(0).getByText("required").click();
    await addField(1, "amount", "decimal");
    await addField(2, "status", "enum");
    await row(2).getByLabel("Values, separated by commas").fill("draft, sent");
    await addField(3, "due", "date");
    // Reordered with the keyboard and back, then dragged and back.
    const names = async () => Promise.all([0, 1, 2, 3].map((i) => row(i).getByLabel("Field name").inputValue()));
    await row(3).getByLabel("Field name").press("Alt+ArrowUp");
    if ((await row(2).getByLabel("Field name").inputValue()) !== "due") fail("Alt+ArrowUp did not move the field");
    await row(2).getByLabel("Field name").press("Alt+ArrowDown");
    await row(3).locator(".handle").dragTo(row(0));
    if ((await names()).join() !== "due,number,amount,status") fail(`dragging gave ${await names()}`);
    await row(0).locator(".handle").dragTo(row(3));
    if ((await names()).join() !== "number,amount,status,due") fail(`dragging back gave ${await names()}`);
    await shoot(page, "02-model-builder");
    await page.getByRole("button", { name: "Create model" }).click();
    await page.waitForURL(/\/models\/[0-9a-f-]{36}$/);
    await page.getByTestId("user-models").getByRole("link", { name: "Invoices" }).waitFor();
    if (!(await page.evaluate(() => window.__sameDocument))) fail("the page reloaded");

    // A model made elsewhere (here, over REST) has its tab once the window is back in focus.
    const access = await page.evaluate(() => localStorage.getItem("kiln.session").split("\n")[0]);
    const made = await fetch(`${base}/api/v1/models`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${access}` },
      body: JSON.stringify({ name: "Customer", fields: [{ name: "name", type: "text" }] }),
    });
    if (made.status !== 201) fail(`creating a model over REST answered ${made.status}`);
    await page.evaluate(() => window.dispatchEvent(new Event("focus")));
    await page.getByTestId("user-models").getByRole("link", { name: "Customers" }).waitFor();

    // Records: an invalid entry, then create, edit, list, sort and delete.
    await page.getByTestId("user-models").getByRole("link", { name: "Invoices" }).click();
    await page.getByText("No records yet.").waitFor();
    await shoot(page, "03-empty-list");
    await page.getByRole("link", { name: "New invoice" }).click();
    await page.fill("#field-amount", "12.50");
    await page.click("button[type=submit]");
    await page.locator("[data-field=number] .field-error").filter({ hasText: "is required" }).waitFor();
    if (!page.url().endsWith("/invoices/new")) fail("an invalid record was sent");
    await shoot(page, "04-invalid-form");
    await page.fill("#field-number", "INV-1");
    await page.fill("#field-amount", "12.50");
    await page.selectOption("#field-status", "sent");
    await page.fill("#field-due", "2026-01-31");
    await page.click("button[type=submit]");
    await page.waitForURL(/\/invoices\/[0-9a-f-]{36}$/);
    await page.locator("dd[data-field=amount]").filter({ hasText: "12.5" }).waitFor();
    await shoot(page, "05-detail");
    await page.getByRole("link", { name: "Edit" }).click();
    await until("the form to load", async () => (await page.inputValue("#field-number")) === "INV-1");
    await page.fill("#field-amount", "99");
    await page.click("button[type=submit]");
    await page.locator("dd[data-field=amount]").filter({ hasText: "99" }).waitFor();

    await page.goto(`${base}/invoices/new`);
    await page.fill("#field-number", "INV-2");
    await page.fill("#field-amount", "5");
    await page.click("button[type=submit]");
    await page.waitForURL(/\/invoices\/[0-9a-f-]{36}$/);
    await page.getByRole("link", { name: "← Invoices" }).click();
    await page.locator("tbody tr").nth(1).waitFor();
    const firstNumber = () => page.locator("tbody tr").first().locator("td").first().innerText();
    await page.getByRole("button", { name: "amount" }).click();
    await until("ascending sort", async () => (await firstNumber()) === "INV-2");
    await page.getByRole("button", { name: /Amount/ }).click();
    await until("descending sort", async () => (await firstNumber()) === "INV-1");
    await shoot(page, "06-list");
    await page.getByRole("link", { name: "INV-2" }).click();
    await page.getByRole("button", { name: "Delete" }).click();
    await page.waitForURL(`${base}/invoices`);
    await until("one invoice left", async () => (await page.locator("tbody tr").count()) === 1 && (await firstNumber()) === "INV-1");

    // What others change shows without a reload: a record created elsewhere (over REST)
    // appears in the open list; on its open detail, an edit shows and a delete is said.
    await page.evaluate(() => { window.__sameDocument = true; });
    const rest = async (method, path, body) => fetch(`${base}/api/v1${path}`, {
      method,
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${await page.evaluate(() => localStorage.getItem("kiln.session").split("\n")[0])}`,
      },
      body: body && JSON.stringify(body),
    });
    const elsewhereMade = await rest("POST", "/invoices", { number: "INV-9", amount: "1" });
    if (elsewhereMade.status !== 201) fail(`creating an invoice over REST answered ${elsewhereMade.status}`);
    const nine = (await elsewhereMade.json()).record.id;
    await page.getByRole("link", { name: "INV-9" }).click();
    await page.waitForURL(`${base}/invoices/${nine}`);
    await page.locator("dd[data-field=amount]").filter({ hasText: /^1$/ }).waitFor();
    if ((await rest("PATCH", `/invoices/${nine}`, { amount: "42" })).status !== 200) fail("the edit over REST failed");
    await page.locator("dd[data-field=amount]").filter({ hasText: "42" }).waitFor();
    await shoot(page, "05b-changed-elsewhere");
    if ((await rest("DELETE", `/invoices/${nine}`)).status !== 204) fail("the delete over REST failed");
    await page.getByRole("alert").filter({ hasText: "This invoice was deleted." }).waitFor();
    await page.getByRole("link", { name: "← Invoices" }).click();
    await until("one invoice left again", async () => (await page.locator("tbody tr").count()) === 1);
    if (!(await page.evaluate(() => window.__sameDocument))) fail("the page reloaded");

    // Slow answers: a save in flight cannot be sent twice, and a list says it is loading
    // until its records arrive.
    const slowly = (ms) => async (route) => {
      await new Promise((resolve) => setTimeout(resolve, ms));
      await route.continue();
    };
    await page.getByRole("link", { name: "New invoice" }).click();
    await page.fill("#field-number", "INV-3");
    await page.fill("#field-amount", "7");
    await page.route("**/kiln.v1.EntityService/CreateEntity", slowly(1500));
    await page.click("button[type=submit]");
    await page.getByRole("button", { name: "Saving…" }).waitFor();
    if (!(await page.getByRole("button", { name: "Saving…" }).isDisabled())) fail("a save in flight can be sent again");
    await page.press("#field-number", "Enter");
    await page.waitForURL(/\/invoices\/[0-9a-f-]{36}$/);
    await page.route("**/kiln.v1.EntityService/ListEntities", slowly(1500));
    await page.getByRole("link", { name: "← Invoices" }).click();
    await page.locator("table[aria-busy=true] tbody").getByText("Loading…").waitFor();
    await until("two invoices, the slow one saved once", async () => (await page.locator("tbody tr").count()) === 2);
    await page.unroute("**/kiln.v1.EntityService/CreateEntity");
    await page.unroute("**/kiln.v1.EntityService/ListEntities");

    // Changing the model: the server's plan first; losing data needs a confirmation.
    await page.getByTestId("system-models").getByRole("link", { name: "Models" }).click();
    await page.locator("main table").getByRole("link", { name: "Invoices" }).click();
    await page.getByRole("link", { name: "Edit fields" }).click();
    await until("the fields to load", async () => (await page.locator(".field-row").count()) === 4);
    await page.locator(".field-row").nth(3).getByLabel("Remove field").click();
    await page.getByRole("button", { name: "Review changes" }).click();
    await page.getByTestId("plan").filter({ hasText: "due" }).waitFor();
    const save = page.getByRole("button", { name: "Save changes" });
    if (!(await save.isDisabled())) fail("a change that loses data was not held for a confirmation");
    await shoot(page, "06b-plan");
    await page.getByText("I understand that this deletes data.").click();
    await save.click();
    await page.waitForURL(/\/models\/[0-9a-f-]{36}$/);
    await until("two versions", async () => (await page.locator("h2:has-text('Versions') + .table-wrap tbody tr").count()) === 2);

    // The dashboard counts the records.
    await page.getByRole("link", { name: "Dashboard" }).click();
    await until("the invoices counted", async () => /\b2\b/.test(await page.locator(".card").filter({ hasText: "Invoices" }).innerText()));

    // A rule only the server knows: a template that does not parse, its error by its field.
    await page.goto(`${base}/templates/new`);
    await page.fill("#field-set", "mine");
    await page.fill("#field-name", "Broken");
    await page.fill("#field-output_path", "a.txt");
    await page.selectOption("#field-scope", "once");
    await page.fill("#field-body", "{{ model.name ");
    await page.click("button[type=submit]");
    await page.locator("[data-field=body] .field-error").filter({ hasText: "line 1" }).waitFor();

    // A JSON field's editor says where the text breaks, and lays valid JSON out.
    await page.goto(`${base}/components/new`);
    const props = page.locator("[data-field=props]");
    await page.fill("#field-props", '{"columns": ["number"],}');
    await page.locator("#field-props-json").filter({ hasText: "line 1 column" }).waitFor();
    if (!(await props.getByRole("button", { name: "Format" }).isDisabled())) fail("broken JSON can be formatted");
    await page.fill("#field-props", '{"columns":["number",2]}');
    await page.locator("#field-props-json").filter({ hasText: /^JSON$/ }).waitFor();
    await props.getByRole("button", { name: "Format" }).click();
    const laidOut = await page.inputValue("#field-props");
    if (laidOut !== '{\n  "columns": [\n    "number",\n    2\n  ]\n}') fail(`Format gave ${JSON.stringify(laidOut)}`);

    // The workflow designer: a manual workflow of two actions, reordered with the buttons
    // and by dragging, saved and kept in that order across a reload; a setting the server
    // refuses is named by its input; run now, each action's result in the run history.
    await page.getByTestId("system-models").getByRole("link", { name: "Workflows" }).click();
    await page.getByRole("link", { name: "New workflow" }).click();
    await page.waitForURL(`${base}/workflows/new`);
    await page.fill("#workflow-name", "Welcome customers");
    const card = (i) => page.getByTestId("action").nth(i);
    const setting = (i, key) => card(i).locator(`[data-setting=${key}]`).locator("input, textarea, select");
    await card(0).locator("input[id$=-name]").fill("make");
    await card(0).locator("select[id$=-kind]").selectOption("create_record");
    await setting(0, "model").fill("customers");
    await setting(0, "record").fill('{"name": "Made by a workflow"}');
    await page.getByRole("button", { name: "Add action" }).click();
    await card(1).locator("input[id$=-name]").fill("count");
    await card(1).locator("select[id$=-kind]").selectOption("script");
    await setting(1, "source").fill("return { made: 1 };");
    const actionNames = async () => Promise.all(
      [0, 1].map((i) => card(i).locator("input[id$=-name]").inputValue()));
    await card(0).getByRole("button", { name: "Move down" }).click();
    if ((await actionNames()).join() !== "count,make") fail(`Move down gave ${await actionNames()}`);
    await card(1).locator(".handle").dragTo(card(0));
    if ((await actionNames()).join() !== "make,count") fail(`dragging gave ${await actionNames()}`);
    await card(1).getByRole("button", { name: "Move up" }).click();
    if ((await actionNames()).join() !== "count,make") fail(`Move up gave ${await actionNames()}`);
    if ((await setting(1, "model").inputValue()) !== "customers") fail("a moved action lost its settings");
    await shoot(page, "10-workflow-designer");
    await page.getByRole("button", { name: "Create workflow" }).click();
    await page.waitForURL(/\/workflows\/[0-9a-f-]{36}$/);
    const workflowPage = page.url();
    await page.reload();
    await until("the workflow to load", async () => (await actionNames()).join() === "count,make");
    if ((await card(0).locator("select[id$=-kind]").inputValue()) !== "script") fail("the kinds were not kept");
    await setting(0, "timeout_ms").fill("99999");
    await page.getByRole("button", { name: "Save", exact: true }).click();
    await card(0).locator("[data-setting=timeout_ms] .field-error").filter({ hasText: "1 to 10000" }).waitFor();
    await shoot(page, "10b-workflow-field-error");
    await setting(0, "timeout_ms").fill("500");
    await page.getByRole("button", { name: "Save", exact: true }).click();
    await page.getByRole("status").filter({ hasText: "Saved." }).waitFor();
    await page.getByRole("button", { name: "Run now" }).click();
    const run = page.getByTestId("run");
    await run.and(page.locator("[data-status=succeeded]")).waitFor();
    for (const action of ["count", "make"]) {
      await run.locator(`li.step[data-action=${action}][data-status=succeeded]`).waitFor();
    }
    if (!/1 attempt/.test(await run.locator("li.step").first().innerText())) fail("the attempts are not shown");
    const runRows = page.getByTestId("runs").locator("tbody tr");
    await until("the run listed", async () => (await runRows.count()) === 1);
    await shoot(page, "11-workflow-run");
    await run.getByRole("button", { name: "Re-run" }).click();
    await until("the rerun listed", async () => (await runRows.count()) === 2);
    await run.and(page.locator("[data-status=succeeded]")).filter({ hasText: "again, of" }).waitFor();
    // Opening a workflow from its tab lands in the designer.
    await page.getByTestId("system-models").getByRole("link", { name: "Workflows" }).click();
    await page.getByRole("link", { name: "Welcome customers" }).click();
    await page.waitForURL(workflowPage);
    await until("the designer", async () => (await page.inputValue("#workflow-name")) === "Welcome customers");

    // Webhooks: a subscription to a receiver here (its secret shown once); a record made
    // elsewhere is delivered and logged, then delivered again; disabled and enabled again.
    const receiver = await localServer(() => [204, null]);
    closers.push(() => receiver.server.close());
    await page.getByRole("link", { name: "Webhooks" }).click();
    await page.getByText("No webhooks yet.").waitFor();
    await page.getByRole("button", { name: "New subscription" }).click();
    await page.fill("#webhook-url", "ftp://example.com/hook");
    await page.getByRole("button", { name: "Create subscription" }).click();
    await page.locator("#webhook-url + .field-error, #webhook-url ~ .field-error").first().waitFor();
    await page.fill("#webhook-url", `${receiver.url}/hooks`);
    await page.fill("#webhook-events", "entity.created");
    await page.fill("#webhook-description", "customers to the CRM");
    await page.getByRole("button", { name: "Create subscription" }).click();
    await page.getByTestId("new-secret").filter({ hasText: "whsec_" }).waitFor();
    await page.getByRole("link", { name: `${receiver.url}/hooks` }).waitFor();
    await shoot(page, "12-webhooks");
    await page.getByRole("link", { name: "Open its delivery log" }).click();
    await page.waitForURL(/\/webhooks\/[0-9a-f-]{36}$/);
    await page.getByText("Nothing delivered yet.").waitFor();
    const grace = await rest("POST", "/customers", { name: "Grace" });
    if (grace.status !== 201) fail(`creating a customer over REST answered ${grace.status}`);
    const delivery = page.getByTestId("deliveries").locator("li.delivery").first();
    await delivery.and(page.locator("[data-status=succeeded]")).waitFor({ timeout: 30000 });
    await delivery.getByTestId("http-status").filter({ hasText: "204" }).waitFor();
    if (!receiver.requests.some((r) => r.body.includes("Grace") && r.headers["webhook-signature"])) {
      fail("the receiver got no signed delivery of the record");
    }
    const deliveredBefore = receiver.requests.length;
    await delivery.getByRole("button", { name: "Redeliver" }).click();
    await until("the delivery sent again", async () => receiver.requests.length > deliveredBefore);
    await delivery.filter({ hasText: "2 attempts" }).waitFor({ timeout: 30000 });
    await shoot(page, "13-webhook-deliveries");
    await page.getByLabel("Enabled").uncheck();
    await page.getByRole("button", { name: "Save", exact: true }).click();
    await page.getByTestId("disabled").waitFor();
    await page.getByRole("button", { name: "Enable again" }).click();
    await page.getByRole("status").filter({ hasText: "Enabled again." }).waitFor();
    if (await page.getByTestId("disabled").count()) fail("the subscription is still disabled");

    // The prompt editor: a prompt and a second version; a save after someone else's is
    // refused and said, the user's text kept; a diff; test runs without a provider, then
    // with a chat-completions endpoint here.
    await page.getByTestId("system-models").getByRole("link", { name: "Prompts" }).click();
    await page.getByRole("link", { name: "New prompt" }).click();
    await page.waitForURL(`${base}/prompts/new`);
    await page.fill("#prompt-name", "Summary");
    await page.fill("#prompt-category", "support");
    await page.fill("#prompt-content", "Summarise {{ topic }} in a {{ tone }} tone.");
    const variable = (i) => page.getByTestId("variables").locator("li").nth(i);
    await page.getByRole("button", { name: "Add variable" }).click();
    await variable(0).getByLabel("Variable name").fill("topic");
    await variable(0).getByText("required").click();
    await page.getByRole("button", { name: "Add variable" }).click();
    await variable(1).getByLabel("Variable name").fill("tone");
    await variable(1).getByLabel("Default").fill("plain");
    await page.getByRole("button", { name: "Create prompt" }).click();
    await page.waitForURL(/\/prompts\/[0-9a-f-]{36}$/);
    const promptId = page.url().split("/").pop();
    await page.getByTestId("base-version").filter({ hasText: "version 1" }).waitFor();
    await page.fill("#prompt-content", "Summarise {{ topic }} in a {{ tone }} tone.\nKeep it short.");
    await page.fill("#prompt-note", "shorter");
    await page.getByRole("button", { name: "Save", exact: true }).click();
    await page.getByRole("status").filter({ hasText: "Saved version 2." }).waitFor();
    // Someone else saves version 3 on version 2 while this editor still works on 2.
    const elsewhereSaved = await rest("POST", `/prompts/${promptId}/versions`, {
      content: "Summarise {{ topic }} for a new customer.",
      variables: [{ name: "topic", required: true }],
      change_note: "for new customers",
      base_version: 2,
    });
    if (elsewhereSaved.status !== 201) fail(`saving a version over REST answered ${elsewhereSaved.status}`);
    const mine = "Summarise {{ topic }} in a {{ tone }} tone.\nKeep it very short.";
    await page.fill("#prompt-content", mine);
    await page.getByRole("button", { name: "Save", exact: true }).click();
    const conflict = page.getByTestId("conflict");
    await conflict.filter({ hasText: "Someone else saved version 3 while you were editing" }).waitFor();
    if ((await page.inputValue("#my-text")) !== mine) fail("the user's text is not kept in the conflict message");
    await shoot(page, "14-prompt-conflict");
    await conflict.getByRole("button", { name: "Load version 3" }).click();
    await page.getByTestId("base-version").filter({ hasText: "version 3" }).waitFor();
    if (!(await page.inputValue("#prompt-content")).includes("new customer")) fail("the latest was not loaded");
    if ((await page.inputValue("#my-text")) !== mine) fail("the user's text went away with the latest");
    const versionRows = page.getByTestId("versions").locator("tbody tr");
    await until("three versions", async () => (await versionRows.count()) === 3);
    await page.selectOption("#diff-from", "1");
    await page.selectOption("#diff-to", "3");
    await page.getByRole("button", { name: "Compare" }).click();
    const diff = page.getByTestId("diff");
    await diff.filter({ hasText: "From version 1 to version 3" }).waitFor();
    await diff.locator(".diff-line.insert").filter({ hasText: "new customer" }).waitFor();
    await diff.locator(".diff-line.delete").filter({ hasText: "tone" }).waitFor();
    await diff.getByText("Variables removed: tone").waitFor();
    await shoot(page, "15-prompt-diff");
    const test = page.getByTestId("test");
    await test.getByRole("button", { name: "Run test" }).click();
    await test.locator(".field-error").filter({ hasText: "is required" }).waitFor();
    await page.fill("#test-var-topic", "billing");
    await test.getByRole("button", { name: "Run test" }).click();
    await page.getByTestId("test-error").filter({ hasText: "no provider is configured" }).waitFor();
    await page.getByTestId("test-rendered").filter({ hasText: "Summarise billing for a new customer." }).waitFor();
    const model = await localServer((request, body) => {
      if (request.method !== "POST" || request.url !== "/v1/chat/completions") return [404, { error: "no such route" }];
      const asked = JSON.parse(body).messages.map((m) => m.content).join(" ");
      return [200, {
        choices: [{ message: { role: "assistant", content: `Billing, briefly: ${asked.length} characters asked.` } }],
        usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 },
      }];
    });
    closers.push(() => model.server.close());
    const provider = page.getByTestId("provider");
    await provider.getByText("No provider is configured").waitFor();
    await page.fill("#provider-url", `${model.url}/v1`);
    await page.fill("#provider-model", "tiny-1");
    await page.fill("#provider-key", "sk-test-9876");
    await provider.getByRole("button", { name: "Save provider" }).click();
    await provider.getByText("A key is kept (…9876)").waitFor();
    if ((await page.inputValue("#provider-key")) !== "") fail("the key stays in its input after saving");
    await test.getByRole("button", { name: "Run test" }).click();
    await page.getByTestId("test-output").filter({ hasText: "Billing, briefly:" }).waitFor();
    const facts = await page.getByTestId("test-facts").innerText();
    if (!/latency \d+ ms/.test(facts) || !facts.includes("12 prompt, 5 completion, 17 total")) fail(`the run said ${facts}`);
    if (!model.requests.some((r) => r.headers.authorization === "Bearer sk-test-9876")) fail("the key was not sent");
    await shoot(page, "16-prompt-test");

    // An access token the server no longer accepts is refreshed without the user noticing.
    await page.evaluate(() => {
      const [, refresh, expires] = localStorage.getItem("kiln.session").split("\n");
      localStorage.setItem("kiln.session", ["not.a.token", refresh, expires].join("\n"));
    });
    await page.goto(`${base}/invoices`);
    await page.getByRole("link", { name: "INV-1" }).waitFor();
    if ((await page.evaluate(() => localStorage.getItem("kiln.session").split("\n")[0])) === "not.a.token") {
      fail("the token was not refreshed");
    }

    // A call that never answers: after its deadline the page says so and offers to try again.
    await page.route("**/kiln.v1.ApplicationService/ListApplications", () => {});
    await page.getByTestId("system-models").getByRole("link", { name: "Applications" }).click();
    await page.getByRole("status").filter({ hasText: "Loading applications" }).waitFor();
    await page.getByRole("alert").filter({ hasText: "taking too long" }).waitFor({ timeout: 30000 });
    await shoot(page, "06c-no-answer");
    await page.unroute("**/kiln.v1.ApplicationService/ListApplications");
    await page.getByRole("button", { name: "Try again" }).click();
    await page.getByText("No applications yet.").waitFor();

    // An application, generated: the build's log streams in.
    await page.getByRole("button", { name: "New application" }).click();
    await page.fill("#app-name", "Invoice Service");
    await page.getByLabel("Invoices").check();
    await page.fill("#app-args", "BUILD_IMAGE=kiln-test/rust:bookworm\nRUNTIME_IMAGE=kiln-test/debian:bookworm-slim");
    await page.getByRole("button", { name: "Create application" }).click();
    await page.waitForURL(/\/applications\/[0-9a-f-]{36}$/);
    await page.getByRole("button", { name: "Generate" }).click();
    await page.waitForURL(/\/builds\/[0-9a-f-]{36}$/);
    await until("log lines", async () => (await page.getByTestId("build-log").innerText()).includes("rendered"), 60000);
    await shoot(page, "07-build");
    // Its image (the whole service compiled) would take minutes: cancel it if it still runs.
    const finished = page.locator("[data-status=succeeded], [data-status=failed], [data-status=cancelled]");
    const cancel = page.getByRole("button", { name: "Cancel" });
    if (await cancel.isVisible()) await cancel.click().catch(() => {});
    await finished.first().waitFor({ timeout: 60000 });

    // A small image of a template set made here: built, its source downloaded, run, its
    // deployment listed, then stopped.
    execFileSync("bash", [join(here, "../../deploy/base-images.sh"), "runtime"], { stdio: "inherit" });
    await page.goto(`${base}/templates/new`);
    await page.fill("#field-set", "sleeper");
    await page.fill("#field-name", "Dockerfile");
    await page.fill("#field-output_path", "Dockerfile");
    await page.selectOption("#field-scope", "once");
    await page.fill("#field-body", 'ARG BASE=missing\nFROM ${BASE}\nCOPY . /app\nCMD ["sleep", "600"]\n');
    await page.click("button[type=submit]");
    await page.waitForURL(/\/templates\/[0-9a-f-]{36}$/);
    await page.getByTestId("system-models").getByRole("link", { name: "Applications" }).click();
    await page.getByRole("button", { name: "New application" }).click();
    await page.fill("#app-name", "Sleeper");
    await page.getByLabel("Invoices").check();
    await page.fill("#app-templates", "sleeper");
    await page.fill("#app-args", "BASE=kiln-test/debian:bookworm-slim");
    await page.getByRole("button", { name: "Create application" }).click();
    await page.waitForURL(/\/applications\/[0-9a-f-]{36}$/);
    const sleeper = page.url();
    await page.getByRole("button", { name: "Generate" }).click();
    await page.waitForURL(/\/builds\/[0-9a-f-]{36}$/);
    await page.locator("[data-status=succeeded]").waitFor({ timeout: 180000 });
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: "Download source" }).click(),
    ]);
    const archive = readFileSync(await download.path());
    if (!download.suggestedFilename().endsWith(".tar.gz") || archive[0] !== 0x1f || archive[1] !== 0x8b) {
      fail(`the download is not the source archive: ${download.suggestedFilename()}, ${archive.length} bytes`);
    }
    await page.getByRole("button", { name: "Run" }).click();
    await page.getByText(/Running at http:\/\/127\.0\.0\.1:\d+/).waitFor({ timeout: 60000 });
    await shoot(page, "07b-deployment");
    await page.goto(sleeper);
    const deployments = page.locator("h2:has-text('Deployments') + .table-wrap tbody tr");
    await until("the deployment listed", async () => (await deployments.count()) === 1);
    await deployments.first().getByRole("button", { name: "Stop" }).click();
    await page.getByText("Nothing runs yet").waitFor();

    // Settings: the dark theme, kept across a reload.
    await page.getByRole("link", { name: "Settings" }).click();
    await page.getByRole("button", { name: "Dark" }).click();
    await page.reload();
    if ((await page.evaluate(() => document.documentElement.dataset.theme)) !== "dark") fail("the theme was not kept");
    await shoot(page, "08-settings-dark");
    // ...and brought along by the account to a browser that never saw it.
    const elsewhere = await browser.newContext({ colorScheme: "light" });
    const other = await elsewhere.newPage();
    other.on("pageerror", (error) => problems.push(`page error (second browser): ${error.message}`));
    await other.goto(`${base}/login`);
    await other.fill("#email", "ada@example.com");
    await other.fill("#password", "correct horse 9");
    await other.click("button[type=submit]");
    await other.waitForURL(`${base}/dashboard`);
    if ((await other.evaluate(() => document.documentElement.dataset.theme)) !== "dark") {
      fail("the profile's theme did not follow the account");
    }
    await elsewhere.close();
    await page.getByRole("button", { name: "Light" }).click();

    // A stopped server: the page says so and offers to try again, never a blank page;
    // once the server is back, trying again works.
    await page.goto(`${base}/invoices`);
    await page.getByRole("link", { name: "INV-1" }).waitFor();
    // From here calls fail, the list's watch of changes among them.
    expectFailures = true;
    server.kill("SIGTERM");
    await new Promise((resolve) => server.once("exit", resolve));
    await page.getByTestId("system-models").getByRole("link", { name: "Applications" }).click();
    await page.getByRole("alert").filter({ hasText: "could not be reached" }).waitFor();
    await shoot(page, "09-server-down");
    server = startKiln(dir);
    await until("kiln to be back", async () => (await fetch(`${base}/readyz`)).ok, 60000);
    await page.getByRole("button", { name: "Try again" }).click();
    await page.getByRole("link", { name: "Invoice Service" }).waitFor();
    expectFailures = false;

    // Log out: back to /login; a private page is closed again.
    await page.getByRole("link", { name: "Settings" }).click();
    await page.getByRole("button", { name: "Log out", exact: true }).click();
    await page.waitForURL(/\/login/);
    await page.goto(`${base}/invoices`);
    await page.waitForURL(/\/login\?next=%2Finvoices/);
  } catch (error) {
    // What the page showed when it went wrong.
    console.error(`at ${page.url()}:\n${await page.locator("body").innerText().catch(() => "")}`);
    await page.screenshot({ path: join(artifacts, "failure.png"), fullPage: true }).catch(() => {});
    console.error(problems.join("\n"));
    throw error;
  } finally {
    for (const close of closers) close();
    await browser.close();
    server.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
  if (problems.length) fail(`the page reported problems:\n${problems.join("\n")}`);
  console.log("ui e2e: passed; screenshots in ui/e2e/artifacts");
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
