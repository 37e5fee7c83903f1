// Property-based fuzzing of the handshake parser, the frame decoder and the
// encoders (the properties are in _fuzz_props.ts). A fixed seed keeps
// `npm test` reproducible; FUZZ_SEED=<n> runs another one, and a failure
// prints its seed and shrunk counterexample. For the long run: `npm run fuzz`.
import { describe, it } from "node:test";
import { checkProperty, fuzzSeed, PROPERTIES, wsReceiverMissing } from "./_fuzz_props.ts";

const seed = fuzzSeed();

describe(`fuzz (seed ${seed})`, () => {
  for (const p of PROPERTIES.filter((p) => !p.ws)) {
    it(`${p.name} (${p.runs} runs)`, () => checkProperty(p, p.runs, seed));
  }
});

// ws's receiver is loaded from node_modules by path on every runtime; should
// it not load somewhere, say why rather than pass silently.
const wsMissing = wsReceiverMissing();
describe(`fuzz against ws's receiver (seed ${seed})`, { skip: wsMissing }, () => {
  for (const p of PROPERTIES.filter((p) => p.ws)) {
    it(`${p.name} (${p.runs} runs)`, () => checkProperty(p, p.runs, seed));
  }
});
