// The live connection end to end: hands-free turns found by the browser's voice detector in what Chromium's
// fake microphone plays, answers streamed and played sentence by sentence, and barge-in, against the real
// Parlance server.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";

import { launch, newPage, screenshot, spokenQuestion, spokenQuestionInSilence } from "./support/browser.js";
import { assertPassedThrough, ask, states, waitForState } from "./support/helpers.js";
import { startParlance } from "./support/server.js";

const QUESTION = "What is the capital of France?";
// Asks for something long, so the answer is still playing when the test cuts in.
const LONG_QUESTION = "Tell me a long story about a brave knight, a dragon and a village, in at least ten sentences.";

async function waitForLiveConnection(page) {
  // The app opens the socket at start-up; a turn asked before it is open goes over HTTP instead.
  await page.waitForSelector('.app[data-live="open"]', { timeout: 10_000 });
}

const events = (page) => page.evaluate(() => window.__wsEvents);
const sent = (page) => page.evaluate(() => window.__wsSent);

describe("hands-free over the live connection", () => {
  let server;
  let browser;
  before(async () => {
    server = await startParlance({ heard: QUESTION });
    // Silence, the question, silence; played once (%noloop), as a person would say it.
    browser = await launch({ microphone: spokenQuestionInSilence(QUESTION), once: true });
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test("the detector starts and ends the turn, the answer streams and plays, and the mic opens again", async (t) => {
    const { page, consoleLines } = await newPage(browser);
    t.after(() => page.context().close());
    await page.goto(server.url);
    await waitForState(page, "ready");
    await waitForLiveConnection(page);

    // Every provisional transcript the page shows while the user may still be speaking.
    await page.evaluate(() => {
      window.__provisional = [];
      new MutationObserver(() => {
        for (const bubble of document.querySelectorAll(".bubble.user.provisional")) window.__provisional.push(bubble.innerText);
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    await page.check("#hands-free");
    assert.equal(await page.getAttribute(".app", "data-hands-free"), "true");
    // The longest pause: the server's transcript of the pause most likely comes before the turn ends.
    await page.evaluate(() => {
      const slider = document.querySelector("#silence");
      slider.value = "2000";
      slider.dispatchEvent(new Event("input", { bubbles: true }));
    });
    await waitForState(page, "listening", 5_000);
    await screenshot(page, "hands-free-1-listening");

    // Nobody presses anything from here on: the detector hears the question and the pause after it. The turn
    // can be over (thinking, speaking, listening again) before a check of the current state comes round, so
    // what the page went through is waited for.
    await page.waitForFunction(() => window.__states.includes("thinking"), null, { timeout: 30_000 });
    await page.waitForFunction(() => window.__played.some((clip) => clip.duration > 0.05), null, { timeout: 90_000 });
    await screenshot(page, "hands-free-2-speaking");
    await page.waitForSelector('.app[data-playback="ended"]', { timeout: 90_000 });
    await waitForState(page, "listening", 5_000);
    await screenshot(page, "hands-free-3-listening-again");

    const seen = await states(page);
    assertPassedThrough(seen, ["ready", "listening", "thinking", "speaking", "listening"]);
    assert.ok(!seen.includes("error"), `no error on the way: ${seen.join(" -> ")}\n${consoleLines.join("\n")}`);

    const out = await sent(page);
    const start = out.find((message) => message.type === "start");
    assert.equal(start?.encoding, "pcm16", "the microphone is streamed as 16 kHz PCM16");
    assert.deepEqual(start.turn_detection, { silence_ms: 2000, complete_silence_ms: 600 }, "the server is asked to end the turn");
    const received = await events(page);
    const ended = received.find((event) => event.type === "turn_ended");
    assert.ok(ended, `the server ended the turn by itself: ${JSON.stringify(received.map((e) => e.type))} ${JSON.stringify(out.filter((m) => m.type !== "binary"))}`);
    t.diagnostic(`turn ended after ${ended.silence_ms} ms of silence (end-of-turn probability ${ended.end_of_turn_probability})`);
    assert.ok(!out.some((message) => message.type === "end_turn"), "before the app's own detector would have");
    const startIndex = out.indexOf(start);
    const nextStart = out.findIndex((message, i) => i > startIndex && message.type === "start");
    const frames = out.slice(startIndex, nextStart === -1 ? undefined : nextStart).filter((message) => message.type === "binary");
    const seconds = frames.reduce((sum, frame) => sum + frame.bytes, 0) / 32_000;
    // The spoken question lasts about 2 s; with the pre-roll and the pause it must be 2-6 s, not the whole file
    // (the leading silence is not sent, and nothing is sent once the turn has ended).
    assert.ok(seconds > 2 && seconds < 6, `streamed ${seconds.toFixed(2)} s of audio`);
    assert.ok(frames.every((frame) => frame.bytes <= 3200 * 2), "frames of about 100 ms");

    const chunks = received.filter((event) => event.type === "audio_chunk");
    assert.ok(chunks.length >= 1, "the answer came as audio chunks");
    assert.deepEqual(chunks.map((chunk) => chunk.sequence), chunks.map((_, i) => i));
    const done = received.find((event) => event.type === "done");
    assert.ok(done?.timings.first_audio_ms > 0, "done reports the time to first audio");
    assert.ok(done.timings.first_audio_from_speech_end_ms >= done.timings.first_audio_ms, "and from the end of speech");
    t.diagnostic(`first audio ${done.timings.first_audio_from_speech_end_ms} ms after the end of speech (${done.timings.first_audio_ms} ms after the turn ended)`);

    const played = await page.evaluate(() => window.__played.filter((clip) => clip.duration > 0.05));
    assert.equal(played.length, chunks.length, "every chunk was played");
    assert.ok(played.every((clip) => clip.ended), "and played to its end");
    for (let i = 1; i < played.length; i += 1) {
      assert.ok(played[i].startedAt <= played[i - 1].endedAt + 50, `chunk ${i} was scheduled before chunk ${i - 1} ended (gapless)`);
    }

    assert.match(await page.locator(".exchange .bubble.user").last().innerText(), /capital \w+ france/i, "the transcript is shown (a word may be misheard, as in tests/it/local_stt.rs)");
    // What the server heard at the pause, if that came before it ended the turn (transcribing can take longer
    // than the pause on a busy machine), was shown while listening.
    const partial = received.findIndex((event) => event.type === "transcript" && !event.is_final);
    if (partial !== -1 && partial < received.indexOf(ended)) {
      const provisional = await page.evaluate(() => window.__provisional);
      assert.ok(provisional.some((text) => /capital \w+ france/i.test(text)), `what was heard at the pause was shown while listening: ${JSON.stringify(provisional)}`);
    } else {
      t.diagnostic("the turn ended before the transcript of the pause came");
    }
    const answer = await page.locator(".exchange .answer-text").last().innerText();
    assert.equal(answer.trim(), done.answer.trim(), "the answer shown is the streamed one");
    assert.match(await page.locator(".exchange .timings").last().innerText(), /total · first audio [\d.]+ (ms|s)/);

    const micOpen = await page.evaluate(() => window.__streams.some((s) => s.getAudioTracks().some((track) => track.readyState === "live")));
    assert.ok(micOpen, "the microphone stays open for the next question");
    assert.match(await page.locator("#status").innerText(), /hands-free/i);

    // Switching hands-free off releases the microphone.
    await page.uncheck("#hands-free");
    await waitForState(page, "ready", 5_000);
    const released = await page.evaluate(() => window.__streams.every((s) => s.getTracks().every((track) => track.readyState === "ended")));
    assert.ok(released, "the microphone is released when hands-free is switched off");
    await page.reload();
    await waitForState(page, "ready");
    assert.equal(await page.isChecked("#hands-free"), false, "the choice is remembered");
  });
});

describe("barge-in over the live connection", () => {
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

  test("Space during the answer stops it at once, the server keeps only what was heard, and the next question goes", async (t) => {
    const { page, consoleLines } = await newPage(browser);
    t.after(() => page.context().close());
    await page.goto(server.url);
    await waitForState(page, "ready");
    await waitForLiveConnection(page);

    await ask(page, LONG_QUESTION);
    assert.equal((await sent(page)).filter((m) => m.type === "text").length, 1, "the typed question went over the socket");
    await page.waitForSelector('.app[data-playback="playing"]', { timeout: 90_000 });
    // Let the first sentence play to its end, then cut in while the answer is still going.
    // (Longer than the one-sample clip that unlocks audio in the user's gesture.)
    await page.waitForFunction(() => window.__played.some((clip) => clip.duration > 0.05 && clip.ended), null, { timeout: 60_000 });
    const speakingWhenPressed = (await page.getAttribute("#status", "data-state")) === "speaking";
    assert.ok(speakingWhenPressed, `the long answer was still playing after its first sentence\n${consoleLines.join("\n")}`);
    await screenshot(page, "barge-in-1-speaking");

    // Space belongs to the text box while it has the focus; the user leaves it first.
    await page.evaluate(() => document.activeElement?.blur());
    const pressedAt = await page.evaluate(() => performance.now());
    await page.keyboard.down("Space");
    await waitForState(page, "listening", 5_000);
    assert.equal(await page.getAttribute(".app", "data-playback"), "stopped", "playback stopped at once");
    const stillPlaying = await page.evaluate(() => window.__played.filter((clip) => !clip.ended).length);
    await page.waitForFunction(() => window.__played.every((clip) => clip.ended), null, { timeout: 1_000 });
    t.diagnostic(`clips not yet reported ended right after the press: ${stillPlaying}`);

    const interrupt = (await sent(page)).find((message) => message.type === "interrupt");
    assert.ok(interrupt, "the app told the server");
    assert.ok(interrupt.at >= pressedAt, "when the key went down");
    await page.waitForFunction(() => window.__wsEvents.some((event) => event.type === "interrupted"), null, { timeout: 10_000 });
    const received = await events(page);
    const interrupted = received.find((event) => event.type === "interrupted");
    const firstTurnChunks = received.filter((event) => event.type === "audio_chunk" && event.at < interrupted.at);
    const heard = firstTurnChunks.slice(0, (interrupt.played_through ?? -1) + 1).map((chunk) => chunk.text).join(" ");
    assert.equal(interrupted.kept_answer, heard, "the server kept exactly the sentences played to their end");
    assert.ok(interrupt.played_through >= 0, "at least the first sentence was heard");

    // The cut answer is shown as interrupted with what was kept.
    await page.waitForSelector(".bubble.assistant.interrupted", { timeout: 5_000 });
    assert.equal((await page.locator(".bubble.assistant.interrupted .answer-text").innerText()).trim(), interrupted.kept_answer.trim());
    await screenshot(page, "barge-in-2-interrupted");

    // The next question (the fake microphone's) goes through as usual.
    await page.waitForTimeout(2500);
    await page.keyboard.up("Space");
    await page.waitForSelector(".exchange:nth-of-type(2) .answer-text", { timeout: 90_000 });
    // The looping fake microphone is caught at some point of its question: the key words, not the sentence.
    assert.match(await page.locator(".exchange .bubble.user").nth(1).innerText(), /capital|france/i);
    if ((await page.getAttribute("#status", "data-state")) === "speaking") await page.click("button.stop");
    await waitForState(page, "ready", 90_000);

    // After a reload the history, from the server, keeps only the part that was played, marked as interrupted.
    const session = await page.evaluate(() => localStorage.getItem("parlance.session_id"));
    const historyResponse = await page.request.get(`${server.url}/api/sessions/${encodeURIComponent(session)}`);
    const history = await historyResponse.json();
    t.diagnostic(`session ${session}: ${historyResponse.status()} ${JSON.stringify(history.turns?.map((turn) => [turn.role, turn.interrupted, turn.text.slice(0, 60)]) ?? history)}`);
    t.diagnostic(`sessions named by the server: ${JSON.stringify((await events(page)).filter((event) => event.session_id).map((event) => [event.type, event.session_id]))}`);
    assert.equal(history.turns?.[1]?.text, interrupted.kept_answer, "the server's history keeps only what was heard");
    assert.equal(history.turns?.[1]?.interrupted, true);
    await page.reload();
    await page.waitForSelector(".exchange .bubble.user", { timeout: 10_000 });
    assert.match(await page.locator(".exchange .bubble.user").first().innerText(), /brave knight/);
    assert.equal((await page.locator(".exchange .answer-text").first().innerText()).trim(), interrupted.kept_answer.trim());
    assert.equal(await page.locator(".exchange").first().locator(".bubble.assistant.interrupted").count(), 1);
    await screenshot(page, "barge-in-3-after-reload");
  });

  test("the mic button during the answer interrupts too, and Stop keeps only what was heard", async (t) => {
    const { page } = await newPage(browser);
    t.after(() => page.context().close());
    await page.goto(server.url);
    await waitForState(page, "ready");
    await waitForLiveConnection(page);

    await ask(page, LONG_QUESTION);
    await page.waitForSelector('.app[data-playback="playing"]', { timeout: 90_000 });
    await page.click("button.stop");
    await waitForState(page, "ready", 5_000);
    assert.equal(await page.getAttribute(".app", "data-playback"), "stopped");
    const interrupt = (await sent(page)).find((message) => message.type === "interrupt");
    assert.ok(interrupt, "Stop tells the server what was heard");
    await page.waitForFunction(() => window.__wsEvents.some((event) => event.type === "interrupted" || (event.type === "status" && event.state === "idle")), null, { timeout: 10_000 });

    await ask(page, LONG_QUESTION);
    await page.waitForSelector('.app[data-playback="playing"]', { timeout: 90_000 });
    await page.click("#mic");
    await waitForState(page, "listening", 5_000);
    assert.equal(await page.getAttribute(".app", "data-playback"), "stopped", "the mic button stopped playback");
    assert.equal((await sent(page)).filter((message) => message.type === "interrupt").length, 2);
    await page.waitForTimeout(2000);
    await page.click("#mic");
    await page.waitForSelector(".exchange:nth-of-type(3) .answer-text", { timeout: 90_000 });
  });
});

/// Replaces the microphone with a stream the test speaks into on cue: a MediaStreamAudioDestinationNode fed
/// with WAV files through `window.__say(base64)`. Everything after getUserMedia is the app's real code path
/// (the capture worklet, the voice detector, the socket). Silent until the test says something.
const VOICE_ON_CUE = () => {
  let voice;
  const open = () => {
    if (!voice) {
      const context = new AudioContext();
      voice = { context, destination: context.createMediaStreamDestination() };
    }
    return voice;
  };
  navigator.mediaDevices.getUserMedia = async () => {
    const stream = open().destination.stream;
    window.__streams.push(stream);
    return stream;
  };
  window.__say = async (base64) => {
    const { context, destination } = open();
    await context.resume();
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const buffer = await context.decodeAudioData(bytes.buffer);
    const source = context.createBufferSource();
    source.buffer = buffer;
    source.connect(destination);
    source.start();
    // Not one of the app's clips: keep the playback record to the app's own.
    window.__played.pop();
    return buffer.duration;
  };
};

describe("barge-in by voice in hands-free mode", () => {
  let server;
  let browser;
  before(async () => {
    server = await startParlance({ heard: QUESTION });
    browser = await launch({ autoplay: true });
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test("speaking during the answer cuts it short and starts the next question", async (t) => {
    const { page, consoleLines } = await newPage(browser);
    t.after(() => page.context().close());
    await page.context().addInitScript(VOICE_ON_CUE);
    await page.goto(server.url);
    await waitForState(page, "ready");
    await waitForLiveConnection(page);
    const say = async (text) => page.evaluate((wav) => window.__say(wav), readFileSync(spokenQuestionInSilence(text, { before: 0.2, after: 0.2 })).toString("base64"));

    await page.check("#hands-free");
    await waitForState(page, "listening", 5_000);
    await say(LONG_QUESTION);
    await page.waitForSelector('.app[data-playback="playing"]', { timeout: 90_000 });
    await page.waitForFunction(() => window.__played.some((clip) => clip.duration > 0.05 && clip.ended), null, { timeout: 60_000 });
    assert.equal(await page.getAttribute("#status", "data-state"), "speaking", `the long answer was still playing\n${consoleLines.join("\n")}`);

    const spokeAt = await page.evaluate(() => performance.now());
    await say(QUESTION);
    await page.waitForFunction(() => window.__wsSent.some((message) => message.type === "interrupt"), null, { timeout: 5_000 });
    const out = await sent(page);
    const interrupt = out.find((message) => message.type === "interrupt");
    // The detector needs 250 ms of speech; the rest is the worklet's 20 ms frames and the page's own work.
    t.diagnostic(`barge-in ${(interrupt.at - spokeAt).toFixed(0)} ms after the voice started`);
    assert.ok(interrupt.at - spokeAt >= 250, "not before the minimum speech duration");
    assert.ok(interrupt.at - spokeAt < 2_000, "but soon after");
    assert.equal(await page.getAttribute(".app", "data-playback"), "stopped", "playback stopped");
    const starts = out.filter((message) => message.type === "start");
    assert.equal(starts.length, 2, "the interruption started the next turn");
    assert.ok(out.indexOf(starts[1]) > out.indexOf(interrupt), "after telling the server");
    await screenshot(page, "barge-in-voice-1-interrupted");

    await page.waitForFunction(() => window.__wsEvents.some((event) => event.type === "interrupted"), null, { timeout: 10_000 });
    const kept = (await events(page)).find((event) => event.type === "interrupted").kept_answer;
    await page.waitForSelector(".exchange:nth-of-type(2) .answer-text", { timeout: 90_000 });
    assert.match(await page.locator(".exchange .bubble.user").nth(1).innerText(), /capital \w+ france/i, "the interrupting question was heard");
    assert.equal((await page.locator(".bubble.assistant.interrupted .answer-text").innerText()).trim(), kept.trim());
    assertPassedThrough(await states(page), ["listening", "thinking", "speaking", "listening", "thinking", "speaking"]);
    await screenshot(page, "barge-in-voice-2-next-answer");
  });
});
