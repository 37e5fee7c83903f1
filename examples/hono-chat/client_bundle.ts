// The browser's copy of the Duplex client: `client/mod.ts` of this package,
// bundled and minified by esbuild when the server starts, and served at
// `/client.js` as an ES module. esbuild runs on Node, Deno and Bun alike (it
// is a dev dependency; tsx brings it too), so the three serve the same bytes.
import { fileURLToPath } from "node:url";

/** The client's source, from this package. */
export const CLIENT_ENTRY: string = fileURLToPath(new URL("../../client/mod.ts", import.meta.url));

/**
 * Bundles `client/mod.ts` for browsers: ESM, minified, ES2022.
 *
 * @returns The module's JavaScript.
 * @throws {Error} When esbuild is not installed, or the build fails.
 */
export async function buildClient(): Promise<string> {
  const { build } = await import("esbuild");
  const result = await build({
    entryPoints: [CLIENT_ENTRY],
    bundle: true,
    minify: true,
    format: "esm",
    target: "es2022",
    platform: "browser",
    write: false,
    logLevel: "silent",
  });
  return result.outputFiles[0]!.text;
}
