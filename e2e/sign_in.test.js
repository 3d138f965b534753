// A server that needs a token: the sign-in link, the sign-in screen, and a token that never leaks.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { launch, newPage, screenshot } from "./support/browser.js";
import { ask, waitForState } from "./support/helpers.js";
import { REPO, startParlance } from "./support/server.js";

const TOKEN = `e2e-${randomBytes(24).toString("hex")}`;

describe("signing in to a server that needs a token", () => {
  let server;
  before(async () => {
    server = await startParlance({ heard: "unused", extraArgs: ["--token", TOKEN] });
  });
  after(async () => {
    await server?.stop();
  });

  test("without a token the app shows the sign-in screen instead of failing turns", async (t) => {
    const browser = await launch();
    t.after(() => browser.close());
    const { page } = await newPage(browser);
    await page.goto(server.url);
    await page.waitForSelector(".sign-in", { timeout: 30_000 });
    assert.match(await page.locator(".sign-in").innerText(), /needs a sign-in token/);
    await screenshot(page, "sign-in-needed");
  });

  test("the sign-in link signs in once, leaves the address bar, and questions are answered", async (t) => {
    const browser = await launch();
    t.after(() => browser.close());
    const { page } = await newPage(browser);
    await page.goto(`${server.url}/#token=${TOKEN}`);
    await waitForState(page, "ready");
    assert.ok(!page.url().includes(TOKEN), `the token left the address bar: ${page.url()}`);
    assert.equal(await page.evaluate(() => localStorage.getItem("parlance.token")), TOKEN);
    assert.equal(await page.locator(".sign-in").count(), 0);
    // The live socket authenticates too (subprotocol), so the turn goes over it.
    await page.waitForSelector('.app[data-live="open"]', { timeout: 30_000 });
    await ask(page, "Tell me a short joke");
    await page.waitForSelector(".exchange .answer-text", { timeout: 120_000 });
    assert.ok((await page.locator(".exchange .answer-text").innerText()).trim().length > 0);
    // A reload keeps the sign-in.
    await page.reload();
    await waitForState(page, "ready");
    assert.equal(await page.locator(".sign-in").count(), 0);
    // Signing out forgets the token and the conversation: the next person starts at the sign-in screen.
    await page.click("button.sign-out");
    await page.waitForSelector(".sign-in", { timeout: 30_000 });
    assert.equal(await page.evaluate(() => localStorage.getItem("parlance.token")), null);
    assert.equal(await page.evaluate(() => localStorage.getItem("parlance.session_id")), null);
  });

  test("a pasted token signs in, and a wrong one is refused", async (t) => {
    const browser = await launch();
    t.after(() => browser.close());
    const { page } = await newPage(browser);
    await page.goto(server.url);
    await page.fill("#sign-in-token", "wrong-token-0123456789");
    await page.press("#sign-in-token", "Enter");
    await page.waitForSelector(".sign-in", { timeout: 30_000 });
    await page.waitForFunction(() => document.querySelector(".sign-in")?.innerText.includes("not accepted"), null, { timeout: 30_000 });
    await page.fill("#sign-in-token", TOKEN);
    await page.press("#sign-in-token", "Enter");
    await page.waitForSelector('.app[data-live="open"]', { timeout: 30_000 });
    assert.equal(await page.locator(".sign-in").count(), 0);
  });

  test("neither the server's log nor the built app contains the token", () => {
    assert.ok(!server.log().includes(TOKEN), "the token is in the server's log");
    const dist = join(REPO, "frontend/dist");
    for (const file of readdirSync(dist, { recursive: true })) {
      const path = join(dist, String(file));
      let bytes;
      try {
        bytes = readFileSync(path);
      } catch {
        continue; // a folder
      }
      assert.ok(!bytes.includes(TOKEN), `${file} contains the token`);
    }
  });
});
