// The docs themselves: every relative link in README.md and docs/ points at a
// file that exists (and at a heading of it, with `#`); every TypeScript block
// is a module the checker can take; every run marker names a scenario; and
// the type-check machinery reports a bad block at its markdown line. The
// type-check of all the blocks is part of `npm run check` (tests/docs/check_snippets.ts).
import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { describe, it } from "node:test";
import { allBlocks, blocksOf, headingAnchors, markdownFiles, parseRunMarker, relativeLinks, root, tsBlocks } from "./_markdown.ts";
import { checkersFor, packageEntries, rewriteImports, typeCheck } from "./_snippets.ts";
import { SCENARIOS } from "./_scenarios.ts";

const read = (file: string) => readFileSync(join(root, file), "utf8");

describe("docs: links", () => {
  it("README.md and docs/ are found", () => {
    const files = markdownFiles();
    for (const expected of ["README.md", "docs/README.md", "docs/getting-started/node.md", "docs/engine.md"]) {
      assert.ok(files.includes(expected), `${expected} is missing from ${files.join(", ")}`);
    }
  });

  it("every relative link points at an existing file and heading", () => {
    const broken: string[] = [];
    for (const file of markdownFiles()) {
      for (const link of relativeLinks(file, read(file))) {
        const [path = "", anchor] = link.target.split("#");
        const target = path === "" ? file : normalize(join(dirname(file), decodeURIComponent(path))).split("\\").join("/");
        const where = `${link.file}:${link.line}: ${link.target}`;
        if (target.startsWith("..")) {
          broken.push(`${where} (outside the repository)`);
          continue;
        }
        if (!existsSync(join(root, target))) {
          broken.push(`${where} (no such file: ${target})`);
          continue;
        }
        if (anchor === undefined || anchor === "") continue;
        if (statSync(join(root, target)).isDirectory() || !target.endsWith(".md")) {
          broken.push(`${where} (an anchor into a file that is not markdown)`);
          continue;
        }
        if (!headingAnchors(read(target)).has(anchor)) broken.push(`${where} (no heading #${anchor} in ${target})`);
      }
    }
    assert.deepEqual(broken, []);
  });

  it("reads relative links outside code, and leaves URLs alone", () => {
    const links = relativeLinks("docs/a.md", "See [b](b.md#x) and [c](../c.md).\n`[no](d.md)`\n```md\n[no](e.md)\n```\n[web](https://x.dev) [top](#a)\n");
    assert.deepEqual(links.map((l) => `${l.line}:${l.target}`), ["1:b.md#x", "1:../c.md", "6:#a"]);
  });

  it("the anchors are GitHub's", () => {
    const anchors = headingAnchors("# Compression (permessage-deflate)\n## Across processes: Redis\n## `ctx.peer` and more\n## Run\n## Run\n");
    assert.deepEqual([...anchors], ["compression-permessage-deflate", "across-processes-redis", "ctxpeer-and-more", "run", "run-1"]);
  });
});

describe("docs: code blocks", () => {
  it("finds the TypeScript blocks, each with its markdown line", () => {
    const blocks = tsBlocks();
    assert.ok(blocks.length >= 20, `only ${blocks.length} TypeScript blocks`);
    for (const block of blocks) {
      const lines = read(block.file).split("\n");
      assert.match(lines[block.line - 2]!, /^```(ts|typescript)\b/, `${block.file}:${block.line} does not follow a fence`);
      assert.equal(lines[block.line - 1], block.code.split("\n")[0]);
    }
  });

  it("reads run markers, and refuses a stray one", () => {
    const [block] = blocksOf("x.md", "text\n<!-- run: echo deno bun -->\n```ts\nconst a = 1;\n```\n");
    assert.deepEqual(block?.run, { scenario: "echo", runtimes: ["deno", "bun"] });
    assert.deepEqual(parseRunMarker("echo", "x").runtimes, ["node", "deno", "bun"]);
    assert.throws(() => blocksOf("x.md", "<!-- run: echo -->\ntext\n```ts\n```\n"), /right before a code block/);
    assert.throws(() => parseRunMarker("echo node20", "x.md:1"), /unknown runtime "node20"/);
  });

  it("every run marker is on a TypeScript block and names a scenario", () => {
    const marked = allBlocks().filter((b) => b.run !== undefined);
    assert.ok(marked.length >= 5, `only ${marked.length} blocks are run`);
    for (const block of marked) {
      assert.equal(block.lang, "ts", `${block.file}:${block.line}: a run marker on a ${block.lang} block`);
      assert.ok(block.run!.scenario in SCENARIOS, `${block.file}:${block.line}: unknown scenario ${block.run!.scenario}`);
    }
    // The scenarios issue 25 asks for are run from the docs.
    const scenarios = new Set(marked.map((b) => b.run!.scenario));
    for (const scenario of ["broadcast-race", "rooms-isolation", "hono-binary"]) assert.ok(scenarios.has(scenario), scenario);
  });

  it("imports only entry points of the package", () => {
    const entries = packageEntries();
    for (const block of tsBlocks()) {
      assert.doesNotThrow(() => rewriteImports(block.code, 2, entries), `${block.file}:${block.line}`);
    }
    assert.equal(rewriteImports(`import { serve } from "@duplex/ws";\nimport { Engine } from '@duplex/ws/core';`, 2, entries),
      `import { serve } from "../../mod.ts";\nimport { Engine } from '../../core/mod.ts';`);
    assert.match(rewriteImports(`import { attach } from "@duplex/ws/hono";`, 2, entries), /"\.\.\/\.\.\/runtimes\/hono\.ts"/);
    assert.match(rewriteImports(`import { RedisBackplane } from "@duplex/ws/redis";`, 2, entries), /"\.\.\/\.\.\/plugins\/redis\.ts"/);
    assert.throws(() => rewriteImports(`import "@duplex/ws/nope";`, 2, entries), /not an entry point/);
  });

  it("sends Deno's globals to deno check only, and Bun's to tsc only", () => {
    assert.deepEqual(checkersFor("Deno.serve(app.fetch);"), { tsc: false, deno: true });
    assert.deepEqual(checkersFor("Bun.serve({ fetch });"), { tsc: true, deno: false });
    assert.deepEqual(checkersFor("await serve(echo);"), { tsc: true, deno: true });
  });
});

// Two child processes (tsc, deno check) whose verdict does not depend on the
// runtime that runs this file. `npm test` runs tests/ under both deno test and
// bun test: once, outside Bun, is enough on a shared 2-core machine.
const machinerySkip = "Bun" in globalThis && "tsc and deno check are child processes: their verdict is the same under every runtime, and deno test runs this already";
describe("docs: the type-check machinery", { skip: machinerySkip }, () => {
  it("passes a good block and reports a bad one at its markdown line, with both checkers", () => {
    const good = { file: "docs/x.md", line: 10, lang: "ts", run: undefined, code: `import { serve } from "@duplex/ws";\nawait serve({ message: (c, d) => void c.send(d) }, { port: 0 });\n` };
    const bad = { file: "docs/y.md", line: 20, lang: "ts", run: undefined, code: `import { serve } from "@duplex/ws";\n\nconst port: number = "8080";\nawait serve({}, { port });\n` };
    const passed = typeCheck([good]);
    assert.equal(passed.ok, true, passed.output);
    assert.deepEqual(passed.checked, { tsc: 1, deno: 1 });
    const failed = typeCheck([good, bad]);
    assert.equal(failed.ok, false);
    assert.match(failed.output, /^tsc:\ndocs\/y\.md:22:7: error TS2322/m);
    assert.match(failed.output, /deno check:[\s\S]*TS2322[\s\S]*at docs\/y\.md:22:7/);
    assert.doesNotMatch(failed.output, /docs\/x\.md/);
  });
});
