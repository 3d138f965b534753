// Debian's Chromium, headless, driven by playwright-core (never `npx playwright install`: no downloads here).

import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync } from "node:fs";
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
export async function launch({ microphone, grant = true, hostAlias } = {}) {
  const args = [...BASE_ARGS];
  if (microphone) args.push("--use-fake-device-for-media-stream", `--use-file-for-fake-audio-capture=${microphone}`);
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
