// The typed path, and every way the microphone can be unavailable: a clear message, and typing still works.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { launch, newPage, screenshot, spokenQuestion } from "./support/browser.js";
import { ask, assertPassedThrough, states, waitForState } from "./support/helpers.js";
import { BACKENDS, startParlance } from "./support/server.js";

describe("typing, and a microphone that cannot be used", () => {
  let server;
  before(async () => {
    server = await startParlance({ heard: "unused" });
  });
  after(async () => {
    await server?.stop();
  });

  test("a typed question gets a written and a spoken answer", async (t) => {
    const browser = await launch();
    t.after(() => browser.close());
    const { page } = await newPage(browser);
    // Typed questions go over the live connection when it is open: sources are added to its `done` event
    // below the same way as to the HTTP answer.
    const TRIP_NOTE = { id: "note-7", title: "Trip notes", snippet: "The train leaves at 9:40 from platform 4.", score: 0.82 };
    let addSources = false;
    await page.routeWebSocket(/\/api\/ws$/, (ws) => {
      const upstream = ws.connectToServer();
      upstream.onMessage((message) => {
        if (addSources && typeof message === "string" && JSON.parse(message).type === "done") {
          ws.send(JSON.stringify({ ...JSON.parse(message), sources: [TRIP_NOTE] }));
        } else {
          ws.send(message);
        }
      });
    });
    await page.goto(server.url);
    await waitForState(page, "ready");
    await ask(page, "Tell me a short joke");
    await page.waitForSelector(".exchange .answer-text", { timeout: 60_000 });
    await page.waitForSelector('.app[data-playback="ended"]', { timeout: 60_000 });
    await waitForState(page, "ready");
    assertPassedThrough(await states(page), ["ready", "thinking", "speaking", "ready"]);
    assert.equal(await page.locator(".exchange .bubble.user").innerText(), "Tell me a short joke");
    if (BACKENDS === "fake") assert.match(await page.locator(".answer-text").innerText(), /Tell me a short joke/);
    assert.equal(await page.inputValue("#question"), "", "the box is cleared for the next question");
    await screenshot(page, "text-answered");

    // Sources: no knowledge tool runs on this branch yet, so the real answer gets one added on its way in.
    await page.route("**/api/chat", async (route) => {
      const response = await route.fetch();
      const json = await response.json();
      json.sources = [TRIP_NOTE];
      await route.fulfill({ response, json });
    });
    addSources = true;
    await ask(page, "When does my train leave?");
    await page.waitForSelector(".exchange:nth-of-type(2) details.sources", { timeout: 60_000 });
    const sources = page.locator(".exchange:nth-of-type(2) details.sources");
    assert.equal(await sources.locator("summary").innerText(), "Sources (1)");
    assert.equal(await sources.locator(".source-snippet").isVisible(), false, "collapsed until asked for");
    await sources.locator("summary").click();
    assert.equal(await sources.locator(".source-title").innerText(), "Trip notes");
    assert.ok(await sources.locator(".source-snippet").isVisible());
    await page.unroute("**/api/chat");
    await screenshot(page, "text-sources");
    await page.emulateMedia({ colorScheme: "dark" });
    await screenshot(page, "text-answered-dark");
  });

  test("microphone permission denied: a clear message, and typing still works", async (t) => {
    const browser = await launch({ microphone: spokenQuestion("Hello"), grant: false });
    t.after(() => browser.close());
    const { page } = await newPage(browser);
    await page.goto(server.url);
    await waitForState(page, "ready");
    await page.click("#mic");
    await waitForState(page, "error", 10_000);
    const message = await page.locator("#status").innerText();
    assert.match(message, /Microphone access was denied/);
    assert.match(message, /type your question/);
    await screenshot(page, "mic-denied");

    await ask(page, "Can you hear me?");
    await page.waitForSelector(".exchange .answer-text", { timeout: 60_000 });
    assert.equal(await page.locator(".exchange .bubble.user").innerText(), "Can you hear me?");
  });

  test("no microphone at all: a clear message", async (t) => {
    const browser = await launch();
    t.after(() => browser.close());
    const { page } = await newPage(browser);
    await page.goto(server.url);
    await waitForState(page, "ready");
    await page.click("#mic");
    await waitForState(page, "error", 10_000);
    assert.match(await page.locator("#status").innerText(), /No microphone was found/);
    await screenshot(page, "mic-missing");
  });

  test("a page that is not a secure context: says the microphone needs HTTPS", async (t) => {
    const browser = await launch({ microphone: spokenQuestion("Hello"), hostAlias: "parlance.test" });
    t.after(() => browser.close());
    const { page } = await newPage(browser);
    await page.goto(server.url.replace("127.0.0.1", "parlance.test"));
    await waitForState(page, "ready");
    assert.equal(await page.evaluate(() => window.isSecureContext), false);
    await page.click("#mic");
    await waitForState(page, "error", 10_000);
    assert.match(await page.locator("#status").innerText(), /secure connection \(HTTPS or localhost\)/);
    await ask(page, "Still there?");
    await page.waitForSelector(".exchange .answer-text", { timeout: 60_000 });
    await screenshot(page, "mic-insecure-context");
  });
});
