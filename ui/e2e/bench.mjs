// The web UI's weight and speed, as a table (a benchmark, not a test): the gzipped size of
// the module and its JS as the gateway sends them, and the time from navigation to the
// first render of the sign-in page in headless Chromium, cold (no cache) and warm (cached
// files), median of --runs loads each. Targets: ≤ 400 KB gzipped, first render ≤ 1 s.
//
//   KILN_BIN=target/release/kiln node ui/e2e/bench.mjs [--runs 9]

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
// Absolute: the server runs in a directory of its own.
const kiln = resolve(process.env.KILN_BIN ?? join(here, "../../target/release/kiln"));
const runsAt = process.argv.indexOf("--runs");
const runs = runsAt > 0 ? Number(process.argv[runsAt + 1]) : 9;
const port = 4900 + Math.floor(Math.random() * 90);
const base = `http://127.0.0.1:${port}`;

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "kiln-ui-bench-"));
  const server = spawn(kiln, ["serve"], {
    cwd: dir,
    env: { ...process.env, KILN_HTTP_ADDR: `127.0.0.1:${port}`, KILN_LOG: "error" },
    stdio: "ignore",
  });
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${base}/readyz`)).ok) break;
      } catch (_) {
        // not up yet
      }
      if (i > 600) throw new Error("kiln did not come up");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const page = await (await fetch(base)).text();
    const files = [...page.matchAll(/"\/(kiln-ui-[0-9a-f]+\.(?:js|wasm))"/g)].map((m) => m[1]);
    const sizes = {};
    for (const file of new Set(files)) {
      const response = await fetch(`${base}/${file}`, { headers: { "accept-encoding": "gzip" } });
      sizes[file.split(".").pop()] = Number(response.headers.get("content-length"));
    }

    const browser = await chromium.launch({
      executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic"],
    });
    const firstRender = async (context) => {
      const tab = await context.newPage();
      await tab.goto(`${base}/login`);
      await tab.waitForSelector(".auth .card");
      // From the start of navigation to the moment the app's first view is in the page.
      const ms = await tab.evaluate(() => performance.now());
      await tab.close();
      return ms;
    };
    const cold = [];
    const warm = [];
    const context = await browser.newContext();
    for (let i = 0; i < runs; i++) {
      const fresh = await browser.newContext();
      cold.push(await firstRender(fresh));
      await fresh.close();
      warm.push(await firstRender(context));
    }
    await browser.close();

    const kb = (bytes) => `${(bytes / 1024).toFixed(0)} KB`;
    const total = (sizes.wasm ?? 0) + (sizes.js ?? 0);
    console.log("| measure | value | target |");
    console.log("|---|---|---|");
    console.log(`| wasm, gzipped | ${kb(sizes.wasm)} | |`);
    console.log(`| JS, gzipped | ${kb(sizes.js)} | |`);
    console.log(`| wasm + JS, gzipped | ${kb(total)} | ≤ 400 KB ${total <= 400 * 1024 ? "met" : "missed"} |`);
    console.log(`| first render, cold (median of ${runs}) | ${median(cold).toFixed(0)} ms | ≤ 1000 ms ${median(cold) <= 1000 ? "met" : "missed"} |`);
    console.log(`| first render, warm (median of ${runs}) | ${median(warm).toFixed(0)} ms | |`);
  } finally {
    server.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
