// The fault cases (_faults.ts) against every adapter and path this runtime
// has (see _targets.ts), with listeners for unhandled rejections and uncaught
// exceptions for the whole file: a fault that escapes Duplex fails the file
// even where the runtime would not crash on it. (A test that watches for a
// hook's own error claims it, and fails itself when it escaped.)
import assert from "node:assert/strict";
import { after, before, describe } from "node:test";
import { escapes, runFaults } from "./_faults.ts";
import { targets } from "./_targets.ts";

describe("faults", () => {
  before(() => escapes.listen());

  after(() => {
    escapes.stop();
    assert.deepEqual(escapes.describe(), [], "no unhandled rejection and no uncaught exception in the whole file");
  });

  for (const target of targets) runFaults(target);
});
