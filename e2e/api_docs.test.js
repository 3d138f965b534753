// The API reference page: Parlance serves it at /api/docs with the renderer bundled at build time (Swagger UI
// from npm), so it opens with no CDN and under the server's Content-Security-Policy. Every operation of the
// served OpenAPI document shows, and one opens to its request body, on a server with a token, without it.

import assert from "node:assert/strict";
import { test } from "node:test";

import { launch, screenshot } from "./support/browser.js";
import { startParlance } from "./support/server.js";

test("the API docs page shows every operation of the document, offline and within the CSP", async (t) => {
  const server = await startParlance({ heard: "unused", extraArgs: ["--token", "e2e-docs-token-0123456789abcdef"] });
  const browser = await launch();
  t.after(async () => {
    await browser.close();
    await server.stop();
  });
  const page = await browser.newPage();
  const problems = [];
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(message.text());
  });
  page.on("pageerror", (error) => problems.push(error.message));
  const elsewhere = [];
  page.on("request", (request) => {
    if (!request.url().startsWith(server.url)) elsewhere.push(request.url());
  });
  // Every policy violation, reported by the browser itself.
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener("securitypolicyviolation", (event) => window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`));
  });

  const response = await page.goto(`${server.url}/api/docs`);
  assert.equal(response.status(), 200);
  assert.match(response.headers()["content-security-policy"], /script-src 'self'/);
  await page.waitForSelector(".opblock-summary-path", { timeout: 30_000 });

  const document = await (await page.request.get(`${server.url}/api/openapi.json`)).json();
  const expected = Object.entries(document.paths).flatMap(([path, item]) =>
    ["get", "post", "delete", "put", "patch"].filter((method) => item[method]).map((method) => `${method.toUpperCase()} ${path}`),
  );
  const shown = await page.$$eval(".opblock", (blocks) =>
    blocks.map((block) => `${block.querySelector(".opblock-summary-method").textContent} ${block.querySelector(".opblock-summary-path").textContent}`),
  );
  assert.deepEqual([...shown].sort(), [...expected].sort());
  for (const operation of ["POST /api/chat", "GET /api/ws", "POST /v1/chat/completions", "POST /v1/audio/transcriptions", "GET /health"]) {
    assert.ok(shown.includes(operation), `${operation} not shown: ${shown.join(", ")}`);
  }

  // An operation opens to its request body's schema.
  await page.locator(".opblock-summary-path", { hasText: "/v1/chat/completions" }).click();
  await page.getByText("Request body").waitFor();
  await page.locator(".opblock.is-open").getByText("Schema", { exact: true }).first().click();
  await page.locator(".opblock.is-open .model-box").getByText("ChatCompletionRequest").first().waitFor();
  await screenshot(page, "api-docs");

  assert.deepEqual(elsewhere, [], "the page fetched from elsewhere");
  assert.deepEqual(await page.evaluate(() => window.__violations), [], "Content-Security-Policy violations");
  assert.deepEqual(problems, [], "errors in the console");
});
