// Type-checks every TypeScript block of README.md and docs/ (tsc and deno
// check; see _snippets.ts), and reports errors at their markdown lines.
// Part of `npm run check`:
//
//   node --import tsx tests/docs/check_snippets.ts [FILE.md...]
import process from "node:process";
import { tsBlocks } from "./_markdown.ts";
import { typeCheck } from "./_snippets.ts";

const only = process.argv.slice(2);
const blocks = tsBlocks().filter((b) => only.length === 0 || only.includes(b.file));
if (blocks.length === 0) {
  console.error("no TypeScript blocks found");
  process.exit(1);
}
const result = typeCheck(blocks);
if (!result.ok) {
  console.error(result.output);
  console.error(`docs snippets: type errors in ${blocks.length} blocks checked`);
  process.exit(1);
}
console.log(`docs snippets: ${blocks.length} TypeScript blocks type-check (tsc: ${result.checked.tsc}, deno check: ${result.checked.deno})`);
