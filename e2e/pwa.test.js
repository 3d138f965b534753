// Installable and offline-capable: the manifest and the service worker register, Chromium finds the app
// installable, files carry the right cache headers, and with the server gone the cached app still opens
// and says the server is unreachable. Also reports the app's size.

import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { test } from "node:test";

import { launchWithProfile, screenshot } from "./support/browser.js";
import { waitForState } from "./support/helpers.js";
import { startParlance } from "./support/server.js";

test("manifest and service worker register; the app is installable and opens offline", async (t) => {
  const server = await startParlance({ heard: "unused" });
  const { context, page } = await launchWithProfile();
  t.after(async () => {
    await context.close();
    await server.stop();
  });
  await page.goto(server.url);
  await waitForState(page, "ready");

  const worker = await page.evaluate(async () => (await navigator.serviceWorker.ready).active.scriptURL);
  assert.equal(worker, `${server.url}/sw.js`);
  // The worker precached the shell: the page and every hashed asset it names.
  const cached = await page.evaluate(async () => {
    const cache = await caches.open("parlance-shell-v1");
    return (await cache.keys()).map((request) => new URL(request.url).pathname);
  });
  assert.ok(cached.includes("/"), cached.join(", "));
  assert.ok(cached.some((path) => path.endsWith("_bg.wasm")), cached.join(", "));

  const cdp = await page.context().newCDPSession(page);
  const { url: manifestUrl, errors } = await cdp.send("Page.getAppManifest");
  assert.equal(manifestUrl, `${server.url}/manifest.webmanifest`);
  assert.deepEqual(errors, [], "the manifest parses cleanly");
  const manifest = await (await page.request.get(manifestUrl)).json();
  assert.equal(manifest.display, "standalone");
  assert.ok(manifest.icons.some((icon) => icon.sizes === "512x512" && icon.type === "image/png"));
  const { installabilityErrors } = await cdp.send("Page.getInstallabilityErrors");
  assert.deepEqual(installabilityErrors, [], "Chromium's install criteria are met");

  // Cache headers and types as the browser receives them.
  const html = await (await page.request.get(server.url)).text();
  const wasmPath = /\/[\w.-]+_bg\.wasm/.exec(html)[0];
  const jsPath = /\/[\w.-]+-[0-9a-f]{8,16}\.js/.exec(html)[0];
  const cssPath = /\/[\w.-]+-[0-9a-f]{8,16}\.css/.exec(html)[0];
  const head = async (path) => (await page.request.get(server.url + path)).headers();
  assert.equal((await head(wasmPath))["content-type"], "application/wasm");
  assert.match((await head(wasmPath))["cache-control"], /immutable/);
  assert.equal((await head("/"))["cache-control"], "no-cache");
  assert.equal((await head("/sw.js"))["cache-control"], "no-cache");
  assert.equal((await head("/manifest.webmanifest"))["content-type"], "application/manifest+json");

  // Size of what a first visit downloads (the app shell), gzipped as a server or proxy would send it.
  const shell = ["/", jsPath, wasmPath, cssPath, "/manifest.webmanifest", "/sw.js"];
  let total = 0;
  for (const path of shell) {
    const body = await (await page.request.get(server.url + path)).body();
    const gz = gzipSync(body, { level: 9 }).length;
    total += gz;
    if (path === wasmPath) t.diagnostic(`wasm: ${(body.length / 1024).toFixed(1)} KB raw, ${(gz / 1024).toFixed(1)} KB gzipped`);
  }
  t.diagnostic(`app shell (page, JS, wasm, CSS, manifest, worker): ${(total / 1024).toFixed(1)} KB gzipped`);

  // A second visit loads the shell from the worker's cache.
  await page.reload();
  await waitForState(page, "ready");
  const warm = await page.evaluate(() => window.__interactiveAt);
  t.diagnostic(`time to interactive, second visit (shell from the service worker): ${warm.toFixed(0)} ms after navigation start`);

  // The server goes away: the cached app still opens and says so.
  await server.stop();
  await page.reload();
  await page.waitForSelector(".notice", { timeout: 15_000 });
  assert.match(await page.locator(".notice").innerText(), /Can't reach the Parlance server/);
  assert.ok(await page.locator("#mic").isVisible(), "the app itself is there");
  await screenshot(page, "offline");
});
