// Debian's Chromium, headless, driven by playwright-core (never `npx playwright install`: no downloads here).

import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { chromium } from "playwright-core";

import { REPO } from "./server.js";

export const SCREENSHOTS = join(REPO, "e2e/screenshots");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const BASE_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"];

/// `microphone`: a WAV file the fake microphone plays in a loop; with `grant: false` the permission prompt is
/// not auto-accepted, so Chromium answers getUserMedia with NotAllowedError, as when a user clicks "Block".
/// Without a microphone but with `grant`, permission is given and there is no device to record from.
/// `hostAlias`: a host name resolved to 127.0.0.1, for pages that must not count as a secure context.
/// `once`: the fake microphone plays its file a single time (Chromium's `%noloop`) and is silent after it.
/// `autoplay`: audio may start without a user gesture (for a test's own stand-in microphone).
export async function launch({ microphone, once = false, grant = true, hostAlias, autoplay = false } = {}) {
  const args = [...BASE_ARGS];
  if (autoplay) args.push("--autoplay-policy=no-user-gesture-required");
  if (microphone) args.push("--use-fake-device-for-media-stream", `--use-file-for-fake-audio-capture=${microphone}${once ? "%noloop" : ""}`);
  if (grant) args.push("--use-fake-ui-for-media-stream");
  if (hostAlias) args.push(`--host-resolver-rules=MAP ${hostAlias} 127.0.0.1`);
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args });
}

/// Installed before any page script: records every status the app shows (a MutationObserver on the status
/// line's data-state), every clip the app starts playing through Web Audio and when it ends, and when the
/// mic button first becomes usable (time to interactive).
export const OBSERVERS = () => {
  window.__states = [];
  window.__played = [];
  window.__streams = [];
  // The live connection's traffic: every event the server sent (parsed), every message the app sent (JSON
  // parsed, binary frames as their size), and when.
  window.__wsEvents = [];
  window.__wsSent = [];
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class extends NativeWebSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (message) => {
        if (typeof message.data === "string") window.__wsEvents.push({ at: performance.now(), ...JSON.parse(message.data) });
      });
    }
    send(data) {
      window.__wsSent.push(typeof data === "string" ? { at: performance.now(), ...JSON.parse(data) } : { at: performance.now(), type: "binary", bytes: data.byteLength });
      return super.send(data);
    }
  };
  const push = (state) => {
    if (state && window.__states[window.__states.length - 1] !== state) window.__states.push(state);
  };
  new MutationObserver((records) => {
    // Old values too: two changes inside one task arrive as one batch, and each must be counted.
    for (const record of records) {
      if (record.type === "attributes" && record.target.id === "status") push(record.oldValue);
    }
    const status = document.getElementById("status");
    push(status?.dataset.state);
    if (status && window.__interactiveAt === undefined) window.__interactiveAt = performance.now();
  }).observe(document, { subtree: true, childList: true, attributes: true, attributeOldValue: true, attributeFilter: ["data-state"] });
  // Keeps the microphone streams the app opens, so the test can check they were released after the turn.
  if (navigator.mediaDevices?.getUserMedia) {
    const getUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    navigator.mediaDevices.getUserMedia = async (constraints) => {
      const stream = await getUserMedia(constraints);
      window.__streams.push(stream);
      return stream;
    };
  }
  const start = AudioBufferSourceNode.prototype.start;
  AudioBufferSourceNode.prototype.start = function (...args) {
    const clip = { duration: this.buffer?.duration ?? 0, startedAt: performance.now(), ended: false };
    window.__played.push(clip);
    this.addEventListener("ended", () => {
      clip.ended = true;
      clip.endedAt = performance.now();
    });
    return start.apply(this, args);
  };
};

const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 };

export async function newPage(browser) {
  const context = await browser.newContext(PHONE);
  return preparePage(context);
}

/// A browser with a real (fresh) profile: Chromium never offers to install an app from an incognito context,
/// which is what `browser.newContext()` makes.
export async function launchWithProfile() {
  const profile = mkdtempSync(join(tmpdir(), "parlance-e2e-profile-"));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: BASE_ARGS, ...PHONE });
  return { context, ...(await preparePage(context)) };
}

async function preparePage(context) {
  await context.addInitScript(OBSERVERS);
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleLines = [];
  page.on("console", (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => consoleLines.push(`pageerror: ${error.message}`));
  return { context, page, consoleLines };
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/// A spoken question as a WAV file, made with espeak-ng like a person saying it into the microphone.
export function spokenQuestion(text) {
  const dir = mkdtempSync(join(tmpdir(), "parlance-e2e-mic-"));
  const file = join(dir, "question.wav");
  const made = spawnSync("espeak-ng", ["-s", "150", "-w", file, text]);
  if (made.status !== 0) throw new Error(`espeak-ng failed: ${made.stderr}`);
  return file;
}

/// A spoken question with silence before and after it, as a person pausing, talking and waiting: for the
/// hands-free detector, which must find the start and the end by itself.
export function spokenQuestionInSilence(text, { before = 1.5, after = 4 } = {}) {
  const file = spokenQuestion(text);
  const wav = readFileSync(file);
  // espeak-ng writes a plain 44-byte PCM header: mono, 16-bit, its rate at byte 24.
  const rate = wav.readUInt32LE(24);
  const speech = wav.subarray(44);
  const silence = (seconds) => Buffer.alloc(Math.round(seconds * rate) * 2);
  const data = Buffer.concat([silence(before), speech, silence(after)]);
  const header = Buffer.from(wav.subarray(0, 44));
  header.writeUInt32LE(36 + data.length, 4);
  header.writeUInt32LE(data.length, 40);
  const padded = file.replace(/\.wav$/, "-in-silence.wav");
  writeFileSync(padded, Buffer.concat([header, data]));
  return padded;
}
