// What both browser tests share: where Chromium is, whether CI runs (where a
// missing Chromium fails instead of skipping), and how it is launched.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import process from "node:process";
import type { Browser } from "playwright-core";

/** Whether this is a CI run (`CI` set and not `false`). */
export const inCi = process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false";
/** The Chromium binary: `CHROMIUM_PATH`, or Debian's. */
export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

/** Whether Chromium is missing (only Node runs the browser tests, so only Node looks). */
export function chromiumMissing(on: string): boolean {
  return on === "node" && !existsSync(CHROMIUM);
}

const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** Launches headless Chromium; fails, with how to install it, when it is missing. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) assert.fail(`chromium is not at ${CHROMIUM} and CI is set: .ci/run installs it with apt-get`);
  const { chromium } = await import("playwright-core");
  return await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 15_000 });
}
