// The size a browser pays for @duplex/ws/client: client/mod.ts bundled
// by esbuild (minified, ESM), then gzipped at level 9. The README reports
// it; tests/reliable/client_size_test.ts keeps it under 7.25 KiB.
//
//   node --import tsx bench/client_size.ts
import process from "node:process";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

/** Minified and gzipped bytes of the client bundle. */
export async function clientSize(): Promise<{ minified: number; gzipped: number }> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL("../client/mod.ts", import.meta.url))],
    bundle: true,
    minify: true,
    format: "esm",
    target: "es2022",
    write: false,
    logLevel: "silent",
  });
  const code = result.outputFiles[0]!.contents;
  return { minified: code.byteLength, gzipped: gzipSync(code, { level: 9 }).byteLength };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { minified, gzipped } = await clientSize();
  console.log(`@duplex/ws/client: ${minified} bytes minified, ${gzipped} bytes gzipped`);
}
