// Turns a markdown code block into a module that imports the repository's
// sources, and type-checks many of them at once with tsc and deno check.
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { type Block, root } from "./_markdown.ts";

/** Where the snippet modules are written: inside the repository, so that `hono`, `ws`… resolve from its node_modules. */
export const SNIPPETS_DIR: string = join(root, ".snippets");

/**
 * `@duplex/ws` and its subpaths, to the files they point at: deno.json's
 * `exports`, plus the 0.2.0 subpath `./redis` (plugins/redis.ts) until
 * deno.json has it.
 */
export function packageEntries(): Map<string, string> {
  const config = JSON.parse(readFileSync(join(root, "deno.json"), "utf8")) as { name: string; exports: Record<string, string> };
  const entries = new Map<string, string>();
  for (const [subpath, file] of Object.entries(config.exports)) {
    entries.set(subpath === "." ? config.name : `${config.name}/${subpath.slice(2)}`, file.replace(/^\.\//, ""));
  }
  if (!entries.has(`${config.name}/redis`)) entries.set(`${config.name}/redis`, "plugins/redis.ts");
  return entries;
}

/**
 * Rewrites `from "@duplex/ws…"` (and `import("@duplex/ws…")`) to relative
 * imports of the sources, for a module written `depth` folders below the root.
 * Throws on a subpath the package does not have.
 */
export function rewriteImports(code: string, depth: number, entries: Map<string, string> = packageEntries()): string {
  const up = "../".repeat(depth);
  return code.replace(/(["'])(@duplex\/ws(?:\/[\w-]+)?)\1/g, (_m, quote: string, specifier: string) => {
    const file = entries.get(specifier);
    if (file === undefined) throw new Error(`${specifier} is not an entry point of the package`);
    return `${quote}${up}${file}${quote}`;
  });
}

/** Which checkers a block goes through: Deno's globals need deno check, Bun's need tsc (bun-types). */
export function checkersFor(code: string): { tsc: boolean; deno: boolean } {
  const deno = /\bDeno\./.test(code);
  const bun = /\bBun\./.test(code);
  return { tsc: !deno, deno: !bun };
}

/** The module text for a block: the imports rewritten, and `export {}` so that a block without imports is a module too. */
export function moduleOf(block: Block, depth: number): string {
  return `${rewriteImports(block.code, depth)}\nexport {};\n`;
}

export interface CheckResult {
  ok: boolean;
  /** The checkers' output, file names replaced by the block's markdown file and line. */
  output: string;
  checked: { tsc: number; deno: number };
}

function bin(name: string): string {
  return join(root, "node_modules", ".bin", process.platform === "win32" ? `${name}.cmd` : name);
}

/** Type-checks blocks: each is written as its own module, then one tsc run and one deno check run cover them all. */
export function typeCheck(blocks: readonly Block[]): CheckResult {
  const dir = join(SNIPPETS_DIR, `check-${process.pid}-${Date.now().toString(36)}`);
  mkdirSync(dir, { recursive: true });
  try {
    const names = new Map<string, Block>();
    const forTsc: string[] = [];
    const forDeno: string[] = [];
    blocks.forEach((block, i) => {
      const name = `${block.file.replace(/[^\w]+/g, "_")}_L${block.line}_${i}.ts`;
      names.set(name, block);
      writeFileSync(join(dir, name), moduleOf(block, 2));
      const use = checkersFor(block.code);
      if (use.tsc) forTsc.push(name);
      if (use.deno) forDeno.push(name);
    });
    // The repository's own compiler options (strict, bun-types and node types, .ts imports), on these files only.
    writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ extends: "../../tsconfig.json", include: [], files: forTsc }));
    const mapped = (text: string) =>
      text.replace(/(?:file:\/\/)?[^\s(]*?([\w]+_L(\d+)_\d+\.ts)[:(](\d+)[,:](\d+)\)?/g, (whole, name: string, _l, line: string, col: string) => {
        const block = names.get(name);
        return block === undefined ? whole : `${block.file}:${block.line + Number(line) - 1}:${col}`;
      });
    let output = "";
    let ok = true;
    if (forTsc.length > 0) {
      const tsc = spawnSync(bin("tsc"), ["--noEmit", "-p", join(dir, "tsconfig.json")], { cwd: root, encoding: "utf8" });
      if (tsc.status !== 0) {
        ok = false;
        output += `tsc:\n${mapped(`${tsc.stdout}${tsc.stderr}`)}\n`;
      }
    }
    if (forDeno.length > 0) {
      const deno = spawnSync(bin("deno"), ["check", "-q", ...forDeno.map((n) => join(dir, n))], {
        cwd: root,
        encoding: "utf8",
        env: { ...process.env, NO_COLOR: "1" },
      });
      if (deno.status !== 0) {
        ok = false;
        output += `deno check:\n${mapped(`${deno.stdout}${deno.stderr}`)}\n`;
      }
    }
    return { ok, output, checked: { tsc: forTsc.length, deno: forDeno.length } };
  } finally {
    removeSnippetDir(dir);
  }
}

/** Removes one run's folder, and `.snippets/` itself once no other run uses it. */
export function removeSnippetDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  try {
    rmdirSync(SNIPPETS_DIR); // fails while another run's folder is in it
  } catch {
    // in use, or already gone
  }
}
