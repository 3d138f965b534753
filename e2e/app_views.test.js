// The app as the place people manage their assistant: notes (added by dropping files and by pasting, found,
// opened from an answer's sources, deleted), conversations (listed, reopened and continued, renamed, deleted),
// settings (the speaking rate heard in shorter clips, the theme, both kept by the browser) and the status of
// each model stage. Screenshots of each view at phone and desktop width go to e2e/screenshots/.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { launch, newPage, screenshot, spokenQuestion } from "./support/browser.js";
import { waitForState } from "./support/helpers.js";
import { BACKENDS, startParlance } from "./support/server.js";

const DESKTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };
const QUESTION = "Which shelf holds the saddle bags?";

const SHELVES = "# Workshop shelves\n\nThe saddle bags are kept on shelf seven, above the spare inner tubes.\n\nBrake pads are on shelf two.\n";
const HOURS = "# Opening hours\n\nThe bike workshop opens at nine on Saturdays and is closed on Mondays.\n";

async function both(page, name) {
  await page.setViewportSize(DESKTOP);
  await screenshot(page, `${name}-desktop`);
  await page.setViewportSize(PHONE);
  await screenshot(page, `${name}-phone`);
  const { scrollWidth, innerWidth } = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth }));
  assert.ok(scrollWidth <= innerWidth, `${name}: nothing runs past a phone's screen (${scrollWidth} px wide in ${innerWidth})`);
}

async function openPanel(page, panel) {
  await page.click(`#open-${panel}`);
  await page.waitForSelector(`#panel[data-panel="${panel}"]`);
}

/// Drops files on the notes panel as a file manager would: a drop event carrying them in its DataTransfer.
async function dropFiles(page, files) {
  const transfer = await page.evaluateHandle((files) => {
    const transfer = new DataTransfer();
    for (const [name, text, type] of files) transfer.items.add(new File([text], name, { type }));
    return transfer;
  }, files);
  await page.dispatchEvent(".dropzone", "drop", { dataTransfer: transfer });
}

async function askTyped(page, text) {
  const answers = await page.locator(".exchange .answer-text").count();
  await page.fill("#question", text);
  await page.press("#question", "Enter");
  await page.waitForFunction((n) => document.querySelectorAll(".exchange .answer-text").length > n, answers, { timeout: 90_000 });
  await waitForState(page, "ready", 90_000);
}

describe("notes, conversations and settings in the app", () => {
  let server;
  let browser;
  before(async () => {
    server = await startParlance({ heard: QUESTION });
    browser = await launch({ microphone: spokenQuestion(QUESTION) });
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test("notes: two files dropped and one pasted, found, used by a spoken answer, opened from its source, deleted", async (t) => {
    const { page, consoleLines } = await newPage(browser);
    t.after(() => page.context().close());
    await page.goto(server.url);
    await waitForState(page, "ready");
    await openPanel(page, "notes");

    await dropFiles(page, [
      ["shelves.md", SHELVES, "text/markdown"],
      ["hours.txt", HOURS, "text/plain"],
      ["photo.png", "not a note", "image/png"],
    ]);
    await page.waitForSelector('.upload[data-file="shelves.md"][data-state="added"]', { timeout: 30_000 });
    await page.waitForSelector('.upload[data-file="hours.txt"][data-state="added"]', { timeout: 30_000 });
    const refused = page.locator('.upload[data-file="photo.png"]');
    assert.equal(await refused.getAttribute("data-state"), "failed");
    assert.match(await refused.innerText(), /Only Markdown/);

    await page.fill("#paste-title", "Locker");
    await page.fill("#paste-text", "The workshop locker code is 4417.");
    await page.click(".paste button[type=submit]");
    await page.waitForFunction(() => /Added: Locker/.test(document.querySelector(".paste-state")?.textContent ?? ""), null, { timeout: 30_000 });
    await page.waitForSelector('.note-row:has-text("Locker")');
    const newest = await page.locator(".note-row .note-open").allInnerTexts();
    assert.deepEqual(newest.slice(0, 3).sort(), ["Locker", "Opening hours", "Workshop shelves"], `newest first: ${newest.slice(0, 5)}`);

    await page.fill("#note-search", "saddle bags shelf");
    await page.press("#note-search", "Enter");
    await page.waitForSelector(".results .hit");
    assert.equal(await page.locator(".results .hit .link").first().innerText(), "Workshop shelves");
    const marked = await page.locator(".results .hit").first().locator("mark").allInnerTexts();
    assert.ok(marked.some((word) => /saddle/i.test(word)), `the matching words are marked: ${marked}`);
    await both(page, "app-notes");
    await page.keyboard.press("Escape");
    await page.waitForSelector("#panel", { state: "detached" });

    // A spoken question the note answers; its source opens the note.
    const box = await page.locator("#mic").boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await waitForState(page, "listening", 5_000);
    await page.waitForTimeout(2500);
    await page.mouse.up();
    await page.waitForSelector(".exchange .answer-text", { timeout: 90_000 });
    await waitForState(page, "ready", 90_000);
    const answer = await page.locator(".exchange .answer-text").last().innerText();
    if (BACKENDS === "local") assert.match(answer, /seven|7/i, `the answer uses the note: ${answer}`);
    await page.click(".exchange details.sources summary");
    const source = page.locator(".exchange details.sources button.source-title", { hasText: "Workshop shelves" });
    await source.click();
    await page.waitForSelector('#panel[data-panel="notes"] .note-view');
    assert.equal(await page.locator("#note-title").innerText(), "Workshop shelves");
    assert.match(await page.locator(".note-view .passages").innerText(), /shelf seven/);
    await both(page, "app-note-from-source");

    const hours = page.locator(".note-row", { hasText: "Opening hours" });
    const id = await hours.getAttribute("data-note-id");
    await hours.locator(".note-delete").click();
    await hours.locator(".confirm-delete").click();
    await page.waitForSelector(`.note-row[data-note-id="${id}"]`, { state: "detached" });
    const gone = await page.evaluate(async (id) => (await fetch(`/api/knowledge/${id}`)).status, id);
    assert.equal(gone, 404, "deleted on the server");
    assert.ok(!consoleLines.some((line) => line.startsWith("pageerror")), consoleLines.join("\n"));
  });

  test("conversations: two listed, the first reopened and continued, renamed, the second deleted", async (t) => {
    // A server of its own: the other tests' conversations would be listed too.
    const server = await startParlance({ heard: QUESTION });
    t.after(() => server.stop());
    const { page } = await newPage(browser);
    t.after(() => page.context().close());
    await page.goto(server.url);
    await waitForState(page, "ready");
    await askTyped(page, "What is two plus two?");
    await page.click(".topbar button:has-text('New conversation')");
    await askTyped(page, "Name a colour of the sky.");

    await openPanel(page, "conversations");
    await page.waitForFunction(() => document.querySelectorAll(".conversation-row").length === 2);
    const titles = await page.locator(".conversation-open").allInnerTexts();
    assert.deepEqual(titles, ["Name a colour of the sky.", "What is two plus two?"], "newest first, named by the first question");
    await both(page, "app-conversations");

    await page.locator(".conversation-open", { hasText: "two plus two" }).click();
    await page.waitForSelector("#panel", { state: "detached" });
    await page.waitForFunction(() => document.querySelector(".exchange .bubble.user")?.textContent === "What is two plus two?");
    assert.equal(await page.locator(".exchange").count(), 1, "only the reopened conversation is shown");
    await askTyped(page, "And two plus three?");
    assert.equal(await page.locator(".exchange").count(), 2);

    await openPanel(page, "conversations");
    const first = page.locator(".conversation-row", { hasText: "two plus two" });
    await first.waitFor();
    assert.match(await first.innerText(), /2 questions/);
    await first.locator(".conversation-rename").click();
    await page.fill("#rename-title", "Sums");
    await page.press("#rename-title", "Enter");
    await page.waitForSelector(".conversation-open:has-text('Sums')");

    const second = page.locator(".conversation-row", { hasText: "colour of the sky" });
    await second.locator(".conversation-delete").click();
    await second.locator(".confirm-delete").click();
    await page.waitForFunction(() => document.querySelectorAll(".conversation-row").length === 1);
    const listed = await page.evaluate(async () => (await (await fetch("/api/sessions")).json()).total);
    assert.equal(listed, 1, "deleted on the server");
  });

  test("settings: a faster rate gives shorter clips, choices survive a reload, Escape closes", async (t) => {
    const { page } = await newPage(browser);
    t.after(() => page.context().close());
    await page.goto(server.url);
    await waitForState(page, "ready");
    const bytesPerChar = async () => {
      const chunks = await page.evaluate(() => window.__wsEvents.filter((event) => event.type === "audio_chunk"));
      await page.evaluate(() => (window.__wsEvents = []));
      const bytes = chunks.reduce((sum, chunk) => sum + (chunk.audio.data_base64.length * 3) / 4 - 44, 0);
      const chars = chunks.reduce((sum, chunk) => sum + chunk.text.length, 0);
      assert.ok(chars > 0, "the answer was spoken");
      return bytes / chars;
    };
    const SAY = "Repeat after me, exactly: the bike workshop opens at nine on Saturdays.";
    await askTyped(page, SAY);
    await page.waitForSelector('.app[data-playback="ended"]', { timeout: 60_000 });
    const normal = await bytesPerChar();

    await openPanel(page, "settings");
    await page.locator("#speech-rate").evaluate((input) => {
      input.value = "2";
      input.dispatchEvent(new Event("input", { bubbles: true }));
    });
    assert.match(await page.locator(".rate").innerText(), /2\.0×/);
    await page.selectOption("#theme", "dark");
    assert.equal(await page.getAttribute("html", "data-theme"), "dark");
    await page.waitForSelector('.stage[data-stage="tts"][data-ready="true"]');
    await both(page, "app-settings");
    await page.keyboard.press("Escape");
    await page.waitForSelector("#panel", { state: "detached" });

    await askTyped(page, SAY);
    await page.waitForSelector('.app[data-playback="ended"]', { timeout: 60_000 });
    const sent = await page.evaluate(() => window.__wsSent.filter((message) => message.type === "text").at(-1));
    assert.equal(sent.speech_rate, 2, "the rate goes with the question");
    const fast = await bytesPerChar();
    t.diagnostic(`spoken audio per character of answer: ${normal.toFixed(0)} bytes at 1x, ${fast.toFixed(0)} at 2x`);
    if (BACKENDS === "local") assert.ok(fast < normal * 0.75, `twice the rate, shorter clips: ${normal.toFixed(0)} -> ${fast.toFixed(0)} bytes per character`);

    await page.reload();
    await waitForState(page, "ready");
    assert.equal(await page.getAttribute("html", "data-theme"), "dark", "the theme is kept");
    await openPanel(page, "settings");
    assert.equal(Number(await page.inputValue("#speech-rate")), 2, "the rate is kept");

    // The local backend has Piper's voice and espeak-ng's: the choice is offered, sent and kept.
    if (BACKENDS === "local") {
      await page.waitForSelector("#voice");
      const voices = await page.locator("#voice option").allInnerTexts();
      assert.ok(voices.length >= 3 && voices[0].includes("Piper"), `the voices, the default first: ${voices}`);
      const first = await page.locator("#voice option").first().getAttribute("value");
      assert.equal(await page.inputValue("#voice"), first, "the default voice until one is chosen");
      await page.selectOption("#voice", "espeak-ng-en-gb");
      await page.keyboard.press("Escape");
      await page.evaluate(() => (window.__wsEvents = []));
      await askTyped(page, SAY);
      await page.waitForSelector('.app[data-playback="ended"]', { timeout: 60_000 });
      const asked = await page.evaluate(() => window.__wsSent.filter((message) => message.type === "text").at(-1));
      assert.equal(asked.voice, "espeak-ng-en-gb", "the voice goes with the question");
      await bytesPerChar();
      await page.reload();
      await waitForState(page, "ready");
      await openPanel(page, "settings");
      await page.waitForSelector("#voice");
      assert.equal(await page.inputValue("#voice"), "espeak-ng-en-gb", "the voice is kept");
    }
  });

  test("a stage that is not set up is named in the status panel with the fix", async (t) => {
    const degraded = await startParlance({ heard: QUESTION, extraArgs: ["--tts-backend", "none"] });
    t.after(() => degraded.stop());
    const { page } = await newPage(browser);
    t.after(() => page.context().close());
    await page.goto(degraded.url);
    await waitForState(page, "ready");
    await openPanel(page, "settings");
    const tts = page.locator('.stage[data-stage="tts"]');
    await tts.waitFor();
    assert.equal(await tts.getAttribute("data-ready"), "false");
    assert.match(await tts.locator(".stage-state").innerText(), /Not ready/);
    assert.match(await tts.locator(".stage-fix").innerText(), /parlance models/);
    assert.ok((await tts.locator(".stage-problem").innerText()).length > 5);
    await both(page, "app-status-missing-stage");
  });
});
