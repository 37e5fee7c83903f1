// The long fuzz run: every property of tests/core/_fuzz_props.ts, for
// FUZZ_SECONDS (default 180) shared out between them, or FUZZ_RUNS runs each.
// Each batch has its own seed, printed on failure with the counterexample.
// Not a *_test.ts file, so `npm test` on no runtime picks it up.
//
//   npm run fuzz
//   FUZZ_SECONDS=600 npm run fuzz
//   FUZZ_RUNS=100000 FUZZ_SEED=42 npm run fuzz
import process from "node:process";
import { checkProperty, fuzzSeed, PROPERTIES, wsReceiverMissing } from "../core/_fuzz_props.ts";

const BATCH = 500;

function envInteger(name: string): number | undefined {
  const value = process.env[name];
  if (value === undefined || value === "") return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`Invalid ${name}: expected a positive integer, got ${value}`);
  return n;
}

const runs = envInteger("FUZZ_RUNS");
const seconds = envInteger("FUZZ_SECONDS") ?? 180;
const firstSeed = fuzzSeed();
const wsMissing = wsReceiverMissing();
const properties = PROPERTIES.filter((p) => !p.ws || wsMissing === undefined);
if (wsMissing !== undefined) console.log(`skipping the ws properties: ${wsMissing}`);
console.log(runs !== undefined ? `${runs} runs per property, first seed ${firstSeed}` : `${seconds} s over ${properties.length} properties, first seed ${firstSeed}`);

const start = performance.now();
const rows: { name: string; runs: number; ms: number }[] = [];
let failed = false;
for (const [i, p] of properties.entries()) {
  const began = performance.now();
  // Time left, shared evenly by the properties still to run.
  const budget = (seconds * 1000 - (began - start)) / (properties.length - i);
  let done = 0;
  let batch = 0;
  while (runs !== undefined ? done < runs : performance.now() - began < budget) {
    const n = runs !== undefined ? Math.min(BATCH, runs - done) : BATCH;
    const seed = (firstSeed + i * 1_000_003 + batch++ * 7919) | 0;
    try {
      await checkProperty(p, n, seed);
    } catch (err) {
      // fast-check's report holds the seed and path that replay the failure:
      // fc.assert(property, { seed, path }) on the property of that name.
      console.error(`FAILED: ${p.name} (batch seed ${seed}, ${done} runs passed before it)\n${(err as Error).message}`);
      failed = true;
      break;
    }
    done += n;
  }
  const ms = performance.now() - began;
  rows.push({ name: p.name, runs: done, ms });
  console.log(`${failed ? "FAIL" : "ok  "} ${String(done).padStart(8)} runs ${(ms / 1000).toFixed(1).padStart(6)} s  ${p.name}`);
  if (failed) break;
}
const total = rows.reduce((n, r) => n + r.runs, 0);
console.log(`${failed ? "failed" : "passed"}: ${total} runs over ${rows.length} properties in ${((performance.now() - start) / 1000).toFixed(1)} s`);
if (failed) process.exitCode = 1;
