/**
 * Node module hooks for the benchmark: Duplex's own modules (`mod.ts`,
 * `core/`, `plugins/`, `runtimes/`) resolve to the compiled package in
 * `dist/` (`npm run build`, what npm installs), so Node servers measure the
 * JavaScript that Node users run. Only the server files themselves go
 * through tsx. Without this, tsx's esbuild transform (`keepNames`) calls
 * `Object.defineProperty(fn, "name")` on every named function it creates,
 * which turns each per-connection closure into a dictionary-mode object
 * (about 1.3 KiB per idle connection in a heap snapshot), a cost the
 * published package does not have.
 *
 *   node --import tsx --import ./bench/_dist_hooks.mjs bench/servers/duplex.ts
 *
 * @module
 */

import { register } from "node:module";
import { isMainThread } from "node:worker_threads";

const ROOT = new URL("../", import.meta.url).href;
const SOURCE = /^(mod|(core|plugins|runtimes)\/[^/]+)\.ts$/;

/**
 * Maps a resolved Duplex source module to its compiled twin in `dist/`.
 *
 * @param {string} specifier
 * @param {unknown} context
 * @param {(specifier: string, context: unknown) => Promise<{ url: string }>} nextResolve
 */
export async function resolve(specifier, context, nextResolve) {
  const result = await nextResolve(specifier, context);
  if (result.url.startsWith(ROOT)) {
    const path = result.url.slice(ROOT.length);
    if (SOURCE.test(path)) return { ...result, url: `${ROOT}dist/${path.slice(0, -3)}.js`, format: "module" };
  }
  return result;
}

if (isMainThread) register(import.meta.url);
