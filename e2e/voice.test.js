// A spoken turn end to end: Chromium's fake microphone plays an espeak-ng question, the app records it with
// MediaRecorder, the real Parlance server answers, and the app plays the spoken answer through Web Audio.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { launch, newPage, screenshot, spokenQuestion, SCREENSHOTS } from "./support/browser.js";
import { assertPassedThrough, states, waitForState } from "./support/helpers.js";
import { BACKENDS, startParlance } from "./support/server.js";

const QUESTION = "What is the capital of France?";

describe("talking to Parlance", () => {
  let server;
  let browser;
  before(async () => {
    server = await startParlance({ heard: QUESTION });
    browser = await launch({ microphone: spokenQuestion(QUESTION) });
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    console.log(`screenshots of each state: ${SCREENSHOTS}`);
  });

  test("hold the mic, ask, release: transcript, answer and spoken reply; the conversation survives a reload", async (t) => {
    const { page, consoleLines } = await newPage(browser);
    t.after(() => page.context().close());
    const navigationStart = Date.now();
    await page.goto(server.url);
    await waitForState(page, "ready");
    const interactiveMs = await page.evaluate(() => window.__interactiveAt);
    t.diagnostic(`time to interactive (mic button rendered, localhost, cold cache): ${interactiveMs.toFixed(0)} ms after navigation start; ${Date.now() - navigationStart} ms wall clock`);
    await screenshot(page, "voice-1-ready");

    const box = await page.locator("#mic").boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await waitForState(page, "listening", 5_000);
    await page.waitForTimeout(1200);
    const level = await page.evaluate(() => getComputedStyle(document.querySelector(".level-bar")).transform);
    await screenshot(page, "voice-2-listening");
    await page.waitForTimeout(1000);
    await page.mouse.up();
    assert.notEqual(level, "none", "the level meter is drawn while listening");
    assert.notEqual(level, "matrix(0, 0, 0, 1, 0, 0)", "the level meter moves with the spoken question");

    await page.waitForSelector('.app[data-playback="playing"]', { timeout: 60_000 });
    await screenshot(page, "voice-3-speaking");
    await page.waitForSelector('.app[data-playback="ended"]', { timeout: 60_000 });
    await waitForState(page, "ready");
    await screenshot(page, "voice-4-answered");

    const seen = await states(page);
    assertPassedThrough(seen, ["ready", "listening", "thinking", "speaking", "ready"]);
    assert.ok(!seen.includes("error"), `no error on the way: ${seen.join(" -> ")}\n${consoleLines.join("\n")}`);

    const transcript = await page.locator(".exchange .bubble.user").last().innerText();
    assert.match(transcript, /capital \w+ france/i, "the transcript of the spoken question is shown (a word may be misheard, as in tests/it/local_stt.rs)");
    const answer = await page.locator(".exchange .answer-text").last().innerText();
    assert.ok(answer.trim().length > 0, "an answer is shown");
    assert.match(await page.locator(".exchange .timings").last().innerText(), /^[\d.]+ (ms|s) total/);

    // Over the live connection the answer comes sentence by sentence, one clip each; over HTTP as one clip.
    const chunks = await page.evaluate(() => window.__wsEvents.filter((event) => event.type === "audio_chunk").length);
    const played = await page.evaluate(() => window.__played.filter((clip) => clip.duration > 0.05));
    assert.equal(played.length, Math.max(chunks, 1), "the spoken answer was played, every chunk of it");
    assert.ok(played.every((clip) => clip.ended), "to its end");
    const released = await page.evaluate(() => window.__streams.every((s) => s.getTracks().every((track) => track.readyState === "ended")));
    assert.ok(released, "the microphone is released after the turn");

    if (BACKENDS === "fake") {
      const [upload] = server.fake.requests.filter((r) => r.path === "/v1/audio/transcriptions");
      // Streamed 16 kHz PCM reaches the speech-to-text stage as WAV; an HTTP upload as the recorder's WebM.
      const streamed = (await page.evaluate(() => window.__wsSent)).some((message) => message.type === "start");
      assert.equal(upload.audioMagic, streamed ? "52494646" : "1a45dfa3", "the browser's recording reached the server intact");
      assert.ok(upload.audioBytes > 4000, `a real recording arrived (${upload.audioBytes} bytes)`);
      assert.match(answer, /capital of France/, "the stand-in model answered the transcript");
    }

    // A reload continues the same conversation, fetched from the server.
    const session = await page.evaluate(() => localStorage.getItem("parlance.session_id"));
    assert.ok(session, "the session id is kept in localStorage");
    await page.reload();
    await page.waitForSelector(".exchange .answer-text", { timeout: 10_000 });
    assert.match(await page.locator(".exchange .bubble.user").first().innerText(), /capital \w+ france/i);
    assert.equal(await page.locator(".exchange .answer-text").first().innerText(), answer);
    await screenshot(page, "voice-5-after-reload");

    // "New conversation" clears it here and for the next reload; the server keeps it in the conversations list
    // (deleting is done there: e2e/app_views.test.js).
    await page.click("text=New conversation");
    await page.waitForSelector(".empty");
    assert.equal(await page.evaluate(() => localStorage.getItem("parlance.session_id")), null);
    const kept = await page.request.get(`${server.url}/api/sessions`);
    const listed = (await kept.json()).sessions.map((summary) => summary.session_id);
    assert.ok(listed.includes(session), "the old conversation is still listed, to reopen");
  });

  test("tap to start, tap to stop; Space is push-to-talk; a new question interrupts playback; Enter taps", async (t) => {
    const { page } = await newPage(browser);
    t.after(() => page.context().close());
    await page.goto(server.url);
    await waitForState(page, "ready");

    await page.click("#mic");
    await waitForState(page, "listening", 5_000);
    await page.waitForTimeout(1500);
    assert.equal(await page.getAttribute("#status", "data-state"), "listening", "a tap keeps recording");
    await page.click("#mic");
    await page
      .waitForSelector('.app[data-playback="playing"]', { timeout: 60_000 })
      .catch(async (error) => {
        const seen = (await states(page)).join(" -> ");
        const status = await page.locator("#status").innerText();
        const traffic = JSON.stringify(await page.evaluate(() => [...window.__wsSent.filter((m) => m.type !== "binary"), ...window.__wsEvents.map((e) => e.type)]));
        throw new Error(`${error.message}\nstates: ${seen}\nstatus: ${status}\nsocket: ${traffic}`);
      });

    // Space while the answer plays: interrupts it and records the next question. (The stand-in's answers take
    // seconds to speak; a local model's may be over before the key goes down.)
    const speakingWhenPressed = (await page.getAttribute("#status", "data-state")) === "speaking";
    await page.keyboard.down("Space");
    await waitForState(page, "listening", 5_000);
    if (BACKENDS === "fake" || speakingWhenPressed) {
      assert.equal(await page.getAttribute(".app", "data-playback"), "stopped", "playback stopped at once");
    }
    await page.waitForTimeout(2000);
    await page.keyboard.up("Space");
    await page.waitForSelector('.app[data-playback="playing"]', { timeout: 60_000 });
    assert.equal(await page.locator(".exchange").count(), 2);
    if (BACKENDS === "fake") {
      // The second question went out with the first one's session: the model saw the earlier exchange.
      assert.match(await page.locator(".exchange .answer-text").last().innerText(), /shown 2 earlier messages/);
    }
    await page.click("button.stop");
    await waitForState(page, "ready");
    assert.equal(await page.getAttribute(".app", "data-playback"), "stopped");
    await screenshot(page, "voice-6-two-turns");

    // Keyboard only: Enter on the focused mic button taps it (start, then stop).
    await page.focus("#mic");
    await page.keyboard.press("Enter");
    await waitForState(page, "listening", 5_000);
    await page.waitForTimeout(1500);
    await page.keyboard.press("Enter");
    await page.waitForSelector(".exchange:nth-of-type(3) .answer-text", { timeout: 60_000 });
    assert.equal(await page.locator(".exchange").count(), 3);
  });

  test("the microphone going away mid-question: a clear message, the recording dropped, the mic free again", async (t) => {
    const { page } = await newPage(browser);
    t.after(() => page.context().close());
    await page.goto(server.url);
    await waitForState(page, "ready");
    await page.click("#mic");
    await waitForState(page, "listening", 5_000);
    await page.waitForFunction(() => window.__streams.length === 1);
    // What the browser reports when a USB microphone is unplugged or the permission is revoked.
    await page.evaluate(() => window.__streams[0].getAudioTracks()[0].dispatchEvent(new Event("ended")));
    await waitForState(page, "error", 5_000);
    assert.match(await page.locator("#status").innerText(), /The recording failed \(the microphone was disconnected/);
    assert.ok(await page.evaluate(() => window.__streams[0].getTracks().every((track) => track.readyState === "ended")));
    assert.equal(await page.locator(".exchange").count(), 0, "nothing was sent");
    await screenshot(page, "mic-lost");
  });
});
