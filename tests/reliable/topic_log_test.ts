// MemoryTopicLog: offsets and epochs, the count, byte and age bounds, a gap
// answer for each cause, idempotency keys, watch order, idle topics.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UsageError } from "../../core/errors.ts";
import { type LogEntry, MemoryTopicLog } from "../../plugins/topic_log.ts";

class Clock {
  t = 1_000;
  now(): number {
    return this.t;
  }
}

const offsets = (entries: readonly LogEntry[]) => entries.map((e) => e.offset);
const isUsage = (code: string) => (e: unknown) => e instanceof UsageError && e.code === code;

describe("MemoryTopicLog", () => {
  it("numbers entries 1, 2, 3… within a random epoch per topic, and reads after a position", () => {
    const log = new MemoryTopicLog();
    const a = log.append("t", "one");
    const b = log.append("t", new Uint8Array([2]));
    assert.deepEqual([a.offset, b.offset, a.duplicate], [1, 2, false]);
    assert.equal(a.epoch, b.epoch);
    assert.notEqual(log.append("u", "x").epoch, a.epoch, "each topic has its own epoch");
    assert.notEqual(new MemoryTopicLog().append("t", "x").epoch, a.epoch, "a new log is a new history");
    const read = log.read("t", { epoch: a.epoch, offset: 1 }, 10);
    assert.deepEqual(read.entries, [{ epoch: a.epoch, offset: 2, data: new Uint8Array([2]) }]);
    assert.equal(read.last, 2);
    assert.equal(read.gap, undefined);
    assert.deepEqual(offsets(log.read("t", "start", 10).entries), [1, 2]);
    assert.deepEqual(offsets(log.read("t", "start", 1).entries), [1], "at most limit");
    assert.deepEqual(log.read("t", "now", 10), { epoch: a.epoch, entries: [], last: 2 });
    assert.deepEqual(log.read("t", { epoch: a.epoch, offset: 2 }, 10).entries, [], "up to date");
    const empty = log.read("new", "start", 10);
    assert.deepEqual([empty.entries, empty.last], [[], 0]);
  });

  it("trims by count and answers a trimmed gap naming what is lost", () => {
    const log = new MemoryTopicLog({ maxMessages: 3 });
    let epoch = "";
    for (let i = 1; i <= 5; i++) epoch = log.append("t", `m${i}`).epoch;
    assert.deepEqual(offsets(log.read("t", "start", 10).entries), [3, 4, 5]);
    const read = log.read("t", { epoch, offset: 0 }, 10);
    assert.deepEqual(read.gap, { reason: "trimmed", epoch, from: 1, to: 2 });
    assert.deepEqual(offsets(read.entries), [3, 4, 5], "then what is held");
    assert.equal(log.read("t", { epoch, offset: 2 }, 10).gap, undefined, "nothing lost after 2");
  });

  it("trims by bytes (UTF-8), and refuses an entry larger than the bound", () => {
    const log = new MemoryTopicLog({ maxBytes: 10 });
    const { epoch } = log.append("t", "aaaa");
    log.append("t", "ééé"); // 6 bytes
    log.append("t", new Uint8Array(3));
    assert.deepEqual(offsets(log.read("t", "start", 10).entries), [2, 3]);
    assert.deepEqual(log.read("t", { epoch, offset: 0 }, 10).gap, { reason: "trimmed", epoch, from: 1, to: 1 });
    assert.throws(() => log.append("t", "x".repeat(11)), isUsage("ERR_TOO_LARGE"));
    assert.equal(log.read("t", "now", 0).last, 3, "the refused entry took no offset");
  });

  it("expires by age on its clock and answers an expired gap", () => {
    const clock = new Clock();
    const log = new MemoryTopicLog({ maxAgeMs: 100, clock });
    const { epoch } = log.append("t", "old");
    clock.t += 60;
    log.append("t", "newer");
    clock.t += 50; // the first is 110 ms old
    const read = log.read("t", { epoch, offset: 0 }, 10);
    assert.deepEqual(read.gap, { reason: "expired", epoch, from: 1, to: 1 });
    assert.deepEqual(offsets(read.entries), [2]);
    clock.t += 80; // everything expired; the topic was used 80 ms ago, so it is still known
    const later = log.read("t", { epoch, offset: 1 }, 10);
    assert.deepEqual(later.gap, { reason: "expired", epoch, from: 2, to: 2 });
    assert.deepEqual([later.entries, later.last, later.epoch], [[], 2, epoch], "empty, same epoch, same last");
  });

  it("tells trimmed from expired per lost offset", () => {
    const clock = new Clock();
    const log = new MemoryTopicLog({ maxMessages: 2, maxAgeMs: 100, clock });
    const { epoch } = log.append("t", "1");
    log.append("t", "2");
    log.append("t", "3"); // trims 1
    clock.t += 60;
    log.read("t", "now", 0); // a use: the topic stays known once empty
    clock.t += 50; // expires 2 and 3
    log.append("t", "4");
    assert.equal(log.read("t", { epoch, offset: 0 }, 10).gap?.reason, "trimmed");
    assert.equal(log.read("t", { epoch, offset: 1 }, 10).gap?.reason, "expired");
    assert.deepEqual(log.read("t", { epoch, offset: 1 }, 10).gap, { reason: "expired", epoch, from: 2, to: 3 });
  });

  it("answers an epoch gap for another epoch, and for an offset beyond the last (no crash)", () => {
    const log = new MemoryTopicLog();
    const { epoch } = log.append("t", "a");
    log.append("t", "b");
    const other = log.read("t", { epoch: "gone", offset: 7 }, 10);
    assert.deepEqual(other.gap, { reason: "epoch", epoch: "gone", from: 8 });
    assert.deepEqual(offsets(other.entries), [1, 2], "from the oldest held");
    assert.equal(other.epoch, epoch);
    const absurd = log.read("t", { epoch, offset: Number.MAX_SAFE_INTEGER - 1 }, 10);
    assert.equal(absurd.gap?.reason, "epoch");
    assert.deepEqual(offsets(absurd.entries), [1, 2]);
  });

  it("stores a retried key once, answering the first offset, while its entry is held", () => {
    const log = new MemoryTopicLog({ maxMessages: 2 });
    const first = log.append("t", "a", "k1");
    assert.deepEqual(log.append("t", "a again", "k1"), { ...first, duplicate: true });
    assert.equal(log.append("u", "other topic", "k1").duplicate, false, "keys are per topic");
    log.append("t", "b", "k2");
    log.append("t", "c", "k3"); // k1's entry is trimmed
    const again = log.append("t", "a", "k1");
    assert.deepEqual([again.offset, again.duplicate], [4, false], "forgotten with its entry");
    assert.deepEqual(offsets(log.read("t", "start", 10).entries), [3, 4]);
  });

  it("hands new entries to watchers synchronously, in offset order, even when a watcher appends", () => {
    const log = new MemoryTopicLog();
    const seen: [string, number][] = [];
    const stopA = log.watch("t", (e) => {
      seen.push(["a", e.offset]);
      if (e.offset === 1) log.append("t", "from a watcher");
    });
    log.watch("t", (e) => void seen.push(["b", e.offset]));
    log.watch("t", () => {
      throw new Error("a watcher's fault is its own");
    });
    log.append("t", "one");
    assert.deepEqual(seen, [["a", 1], ["b", 1], ["a", 2], ["b", 2]]);
    stopA();
    stopA();
    log.append("t", "three");
    assert.deepEqual(seen.slice(4), [["b", 3]]);
    assert.deepEqual(offsets(log.read("t", "start", 10).entries), [1, 2, 3]);
  });

  it("keeps a watched topic's epoch, and forgets an idle empty topic after maxAgeMs", () => {
    const clock = new Clock();
    const log = new MemoryTopicLog({ maxAgeMs: 100, clock });
    const stop = log.watch("w", () => {});
    const { epoch } = log.append("w", "x");
    log.append("idle", "y");
    clock.t += 1000;
    for (let i = 0; i < 3; i++) log.read(`other${i}`, "now", 0); // the next use runs the sweep
    assert.equal(log.read("w", "now", 0).epoch, epoch, "watched: kept");
    assert.equal(log.topics, 4, "w and other0..2; idle was forgotten");
    stop();
    clock.t += 1000;
    log.read("other0", "now", 0);
    assert.notEqual(log.read("w", "now", 0).epoch, epoch, "forgotten once unwatched and idle: a new history");
  });

  it("checks its options and refuses use after close", async () => {
    assert.throws(() => new MemoryTopicLog({ maxMessages: 0 }), isUsage("ERR_INVALID_OPTION"));
    assert.throws(() => new MemoryTopicLog({ maxAge: 5 } as never), isUsage("ERR_INVALID_OPTION"));
    assert.throws(() => new MemoryTopicLog({ clock: {} as never }), isUsage("ERR_INVALID_OPTION"));
    const log = new MemoryTopicLog();
    await log.close();
    assert.throws(() => log.append("t", "x"), isUsage("ERR_CLOSED"));
  });

  it("stays bounded over many appends", () => {
    const log = new MemoryTopicLog({ maxMessages: 100 });
    for (let i = 0; i < 20_000; i++) log.append("t", `m${i}`, `k${i}`);
    const read = log.read("t", "start", 1000);
    assert.deepEqual([read.entries.length, read.entries[0]!.offset, read.last], [100, 19_901, 20_000]);
    assert.equal(log.append("t", "dup", "k19999").duplicate, true);
    assert.equal(log.append("t", "old key", "k0").duplicate, false);
  });
});
