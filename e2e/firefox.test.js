// The web app in Firefox: Debian's firefox-esr, headless, driven by puppeteer-core over WebDriver BiDi (the
// other files drive Chromium with playwright-core, whose Firefox needs a patched build that cannot be
// downloaded here), with a private sound server (support/sound.js). A typed question, the notes panel, a
// setting kept across a reload, and a spoken question.
// Firefox's fake microphone plays a tone, not a file, so the spoken question comes from a microphone made in
// the page: the WAV played through Web Audio into a MediaStreamAudioDestinationNode.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";

import puppeteer from "puppeteer-core";

import { OBSERVERS, screenshot, spokenQuestion } from "./support/browser.js";
import { assertPassedThrough, states, waitForState } from "./support/helpers.js";
import { startParlance } from "./support/server.js";
import { startSoundServer } from "./support/sound.js";

const FIREFOX = process.env.FIREFOX ?? "/usr/bin/firefox-esr";
const QUESTION = "What is the capital of France?";

/// Installed before the page's scripts: getUserMedia answers with a stream that plays the spoken question once
/// (started with the prototype's own `start`, so OBSERVERS does not count it as the app's playback).
const SPOKEN_MICROPHONE = (wavBase64) => {
  const start = AudioBufferSourceNode.prototype.start;
  window.__micStarted = 0;
  navigator.mediaDevices.getUserMedia = async () => {
    const context = new AudioContext();
    const bytes = Uint8Array.from(atob(wavBase64), (c) => c.charCodeAt(0));
    const source = context.createBufferSource();
    source.buffer = await context.decodeAudioData(bytes.buffer);
    const destination = context.createMediaStreamDestination();
    source.connect(destination);
    source.addEventListener("ended", () => (window.__micEnded = true));
    start.call(source);
    window.__micStarted += 1;
    return destination.stream;
  };
};

async function launchFirefox(sound) {
  return puppeteer.launch({
    browser: "firefox",
    executablePath: FIREFOX,
    headless: true,
    env: { ...process.env, ...sound.env },
    extraPrefsFirefox: {
      // Sound may start without a click (the tests click, but a headless window has no user activation).
      "media.autoplay.default": 0,
      "media.autoplay.blocking_policy": 0,
    },
  });
}

async function openPage(browser, url, microphone) {
  const page = await browser.newPage();
  await page.setViewport({ width: 390, height: 844, deviceScaleFactor: 2 });
  const consoleLines = [];
  page.on("console", (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => consoleLines.push(`pageerror: ${error.message}`));
  if (microphone) await page.evaluateOnNewDocument(SPOKEN_MICROPHONE, readFileSync(microphone).toString("base64"));
  await page.evaluateOnNewDocument(OBSERVERS);
  await page.goto(url);
  await waitForState(page, "ready");
  return { page, consoleLines };
}

const text = (page, selector) => page.$eval(selector, (element) => element.innerText);
const lastText = (page, selector) => page.$$eval(selector, (elements) => elements.at(-1)?.innerText ?? "");

async function ask(page, question) {
  await page.type("#question", question);
  await page.keyboard.press("Enter");
}

describe("the web app in Firefox", () => {
  let server;
  let sound;
  let browser;
  before(async () => {
    server = await startParlance({ heard: QUESTION });
    sound = await startSoundServer();
    browser = await launchFirefox(sound);
  });
  after(async () => {
    await browser?.close();
    await sound?.stop();
    await server?.stop();
  });

  test("a typed question is answered in writing and aloud", async (t) => {
    t.diagnostic(`browser: ${await browser.version()}`);
    const { page, consoleLines } = await openPage(browser, server.url);
    t.after(() => page.close());
    await ask(page, "Tell me a short joke");
    await page.waitForSelector(".exchange .answer-text", { timeout: 60_000 });
    await page.waitForSelector('.app[data-playback="ended"]', { timeout: 60_000 });
    await waitForState(page, "ready");
    const seen = await states(page);
    assertPassedThrough(seen, ["ready", "thinking", "speaking", "ready"]);
    assert.ok(!seen.includes("error"), `no error: ${seen.join(" -> ")}\n${consoleLines.join("\n")}`);
    assert.equal(await text(page, ".exchange .bubble.user"), "Tell me a short joke");
    assert.ok((await text(page, ".exchange .answer-text")).trim().length > 0, "an answer is shown");
    const played = await page.evaluate(() => window.__played.filter((clip) => clip.duration > 0.05));
    assert.ok(played.length >= 1 && played.every((clip) => clip.ended), `the answer was played to its end: ${JSON.stringify(played)}`);
    await screenshot(page, "firefox-text-answered");
  });

  test("notes: one pasted, found by search with its words marked; a setting survives a reload", async (t) => {
    const { page, consoleLines } = await openPage(browser, server.url);
    t.after(() => page.close());
    await page.click("#open-notes");
    await page.waitForSelector('#panel[data-panel="notes"]');
    await page.type("#paste-title", "Locker");
    await page.type("#paste-text", "The workshop locker code is 4417.");
    await page.click(".paste button[type=submit]");
    await page.waitForFunction(() => [...document.querySelectorAll(".note-row")].some((row) => row.innerText.includes("Locker")), {
      timeout: 30_000,
    });
    await page.type("#note-search", "locker code");
    await page.keyboard.press("Enter");
    await page.waitForSelector(".results .hit", { timeout: 30_000 });
    assert.equal(await text(page, ".results .hit .link"), "Locker");
    const marked = await page.$$eval(".results .hit mark", (marks) => marks.map((mark) => mark.innerText.toLowerCase()));
    assert.ok(marked.includes("locker"), `the matching words are marked: ${marked}`);
    await screenshot(page, "firefox-notes");
    await page.keyboard.press("Escape");
    await page.waitForSelector("#panel", { hidden: true });

    await page.click("#open-settings");
    await page.waitForSelector('#panel[data-panel="settings"]');
    await page.$eval("#speech-rate", (input) => {
      input.value = "1.5";
      input.dispatchEvent(new Event("input", { bubbles: true }));
    });
    await page.reload();
    await waitForState(page, "ready");
    await page.click("#open-settings");
    await page.waitForSelector('#panel[data-panel="settings"]');
    assert.equal(Number(await page.$eval("#speech-rate", (input) => input.value)), 1.5, "the rate is kept");
    await screenshot(page, "firefox-settings");
    assert.ok(!consoleLines.some((line) => line.startsWith("pageerror")), consoleLines.join("\n"));
  });

  test("hold the mic, ask, release: the spoken question is heard and answered aloud", async (t) => {
    const { page, consoleLines } = await openPage(browser, server.url, spokenQuestion(QUESTION));
    t.after(() => page.close());
    const mic = await page.$("#mic");
    const box = await mic.boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await waitForState(page, "listening", 5_000);
    // Let go once the question has been said (its clock is the sound server's, which may start late on a busy
    // machine), and a moment after, as a person would.
    await page.waitForFunction(() => window.__micEnded === true, { timeout: 20_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await page.mouse.up();
    await page.waitForSelector('.app[data-playback="ended"]', { timeout: 90_000 });
    await waitForState(page, "ready");
    const seen = await states(page);
    assertPassedThrough(seen, ["ready", "listening", "thinking", "speaking", "ready"]);
    assert.ok(!seen.includes("error"), `no error: ${seen.join(" -> ")}\n${consoleLines.join("\n")}`);
    assert.equal(await page.evaluate(() => window.__micStarted), 1, "the page's microphone was opened once");
    assert.match(await lastText(page, ".exchange .bubble.user"), /capital \w+ france/i, "the question was heard");
    assert.ok((await lastText(page, ".exchange .answer-text")).trim().length > 0, "and answered");
    const released = await page.evaluate(() => window.__streams.every((stream) => stream.getAudioTracks().every((track) => track.readyState === "ended")));
    assert.ok(released, "the microphone is released after the question");
    await screenshot(page, "firefox-voice-answered");
    const { scrollWidth, innerWidth } = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth }));
    assert.ok(scrollWidth <= innerWidth, `nothing runs past a phone's screen (${scrollWidth} px wide in ${innerWidth})`);
  });
});
