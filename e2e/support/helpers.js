// What the scenarios check again and again.

import assert from "node:assert/strict";

/// Whether `expected` appears in `seen` in order (other states may come in between).
export function assertPassedThrough(seen, expected) {
  let next = 0;
  for (const state of seen) if (state === expected[next]) next += 1;
  assert.equal(next, expected.length, `expected the status to pass through ${expected.join(" -> ")}, saw ${seen.join(" -> ")}`);
}

export async function states(page) {
  return page.evaluate(() => window.__states);
}

export async function waitForState(page, state, timeout = 30_000) {
  await page.waitForSelector(`#status[data-state="${state}"]`, { timeout });
}

export async function ask(page, text) {
  await page.fill("#question", text);
  await page.press("#question", "Enter");
}
